"""Inventory reports: structure, determinism, hash, PDF with the hash and a decodable QR.

Inventories are computed by :mod:`carbon_rules.inventory` from readings (unsigned:
signatures are tested with the wire format); the numbers are checked by hand.
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from pypdf import PdfReader

from carbon_protocol.canonical import canonical_json
from carbon_protocol.inventory import Inventory, Period
from carbon_protocol.models import AnchorRef, Domain, Reading
from carbon_protocol.suites import hash_fn
from carbon_rules.errors import QuotaInputError, ReportError
from carbon_rules.factors import default_factors
from carbon_rules.fixed_point import parse
from carbon_rules.inventory import LoggedReading, compute_inventory
from carbon_rules.models import Methodology, MethodologyVersion, VersionDraft
from carbon_rules.offsets import CN_ETS_RULES, CcerClaim, GreenPowerClaim
from carbon_rules.offsets_ledger import OffsetLedger, gross_of
from carbon_rules.quotas import InternalQuota, QuotaBook
from carbon_rules.quotas_client import QuotaRegistryClient
from carbon_rules.quotas_reconcile import monthly_totals, reconcile
from carbon_rules.reports import (
    Boundary,
    EnterpriseInfo,
    InventoryReport,
    LoggedInventory,
    ReportInput,
    SiteInfo,
    build_report,
    proof_link,
    report_bytes,
    report_hash,
    report_id,
)
from carbon_rules.reports.pdf import qr_matrix, render_pdf
from carbon_rules.reports.verify import ReportMismatchError, verify_report

MID = "cn.enterprise-ghg"
DOMAIN = Domain(chain_id=1337, contract="0x" + "ab" * 20, log_id="86.1000.1/log.main")
ELEC = "86.1000.1/dev.plant.electricity-01"
GAS = "86.1000.1/dev.plant.gas-01"
SITE = "86.1000.1/site.plant"
MONTHS = [("2026-01", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-01-05"),
          ("2026-02", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-02-05"),
          ("2026-03", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", "2026-03-05")]


def methodology() -> Methodology:
    draft = VersionDraft("IPCC-AR5-GWP100", "doc v1", tuple(default_factors()))
    return Methodology(MID, (MethodologyVersion(
        MID, 1, 1_672_531_200, 1_672_531_200, "0x" + "11" * 20, draft.parameters_hash,
        draft.gwp_set, draft.document, draft.factors),))


def readings(device: str, values: Sequence[str], day: str, first_leaf: int, first_seq: int,
             quantity: str, unit: str) -> list[LoggedReading]:
    return [LoggedReading(first_leaf + n, Reading(
        suite="intl", key_id="00" * 16, device=device, seq=first_seq + n,
        measured_at=f"{day}T{15 * (n + 1) // 60:02d}:{15 * (n + 1) % 60:02d}:00Z",
        quantity=quantity,  # type: ignore[arg-type]
        unit=unit, value=v, quality="measured", salt=secrets.token_hex(16), domain=DOMAIN))
        for n, v in enumerate(values)]


def month_inventory(n: int, kwh: Sequence[str], nm3: Sequence[str]) -> Inventory:
    label, start, end, day = MONTHS[n]
    leaf = 100 * n
    return compute_inventory(
        methodology(), Period(label=label, start=start, end=end),
        {ELEC: readings(ELEC, kwh, day, leaf, 10 * n + 1, "active_energy", "kWh"),
         GAS: readings(GAS, nm3, day, leaf + 50, 10 * n + 1, "gas_volume", "Nm3")},
        chain_id=1337, registry="0x" + "cd" * 20, gateway="86.1000.1/gw.plant", domain=DOMAIN,
        suite="intl", key_id="00" * 16, sites={ELEC: SITE, GAS: SITE},
        computed_at=datetime(2026, 4, 1, tzinfo=UTC))


def anchor(n: int) -> AnchorRef:
    return AnchorRef(chain_id=1337, contract="0x" + "ab" * 20, log_key="01" * 32,
                     tree_size=1000 + n, root_hash="02" * 32,
                     tx_hash="0x" + f"{n:02x}" * 32,
                     block_number=10 + n, block_hash="0x" + "03" * 32,
                     block_timestamp=1_775_000_000 + n, submitter="0x" + "ef" * 20)


@pytest.fixture(scope="module")
def inventories() -> list[LoggedInventory]:
    # electricity 1000 + 1200 + 800 MWh (as kWh), gas 10,000 Nm3 each month
    elec = [["600000", "400000"], ["1200000"], ["500000", "300000"]]
    gas = [["10000"], ["6000", "4000"], ["10000"]]
    return [LoggedInventory(id=f"86.1000.1/inv.{n:032x}", leaf_index=900 + n, anchor=anchor(n),
                            inventory=month_inventory(n, elec[n], gas[n])) for n in range(3)]


def report_input(inventories: list[LoggedInventory], **kw: object) -> ReportInput:
    base: dict[str, object] = {
        "enterprise": EnterpriseInfo(id="86.1000.1/ent.acme", name="Acme 钢铁 Co.",
                                  credit_code="91110000MA01ABCD2X", industry="steel"),
        "boundary": Boundary(sites=[SiteInfo(id=SITE, name="Plant")],
                          exclusions=["scope 3: not reported"]),
        "period": Period(label="2026-Q1", start="2026-01-01T00:00:00Z",
                      end="2026-04-01T00:00:00Z"),
        "inventories": inventories, "prepared_by": "Acme energy office",
        "proof_base": "https://ledger.example/v1/reports"}
    base.update(kw)
    return ReportInput.model_validate(base)


def test_report_structure_and_hand_checked_totals(inventories: list[LoggedInventory]) -> None:
    report = build_report(report_input(inventories))
    body = json.loads(report_bytes(report))
    assert list(body) == sorted(body)  # RFC 8785 orders keys
    for section in ("enterprise", "reporting_period", "boundary", "scopes_reported",
                    "methodology", "emission_sources", "activity_data", "emission_factors",
                    "emissions", "data_quality", "anchors", "quota", "offsets"):
        assert section in body
    # 3,000 MWh x 0.5703 = 1,710.9 t scope 2
    assert body["emissions"]["by_scope"]["scope2"] == "1710.9"
    assert [p["label"] for p in body["emissions"]["by_period"]] == ["2026-01", "2026-02",
                                                                     "2026-03"]
    assert body["emissions"]["by_period"][1]["scope2"] == "684.36"  # 1,200 x 0.5703
    scope1 = sum(parse(inv.inventory.totals.scope1) for inv in inventories)
    assert parse(body["emissions"]["by_scope"]["scope1"]) == scope1 > 0
    first = body["activity_data"][0]
    assert (first["ref"], first["value"], first["unit"]) == (
        "86.1000.1/inv." + "0" * 32 + "#1", "1000", "MWh")
    assert first["leaves"] == [{"first": 0, "last": 1}]
    assert first["anchor_tx"] == "0x" + "00" * 32
    grid = [f for f in body["emission_factors"] if f["id"] == "ef.grid.CN"]
    assert len(grid) == 1 and grid[0]["value"] == "0.5703" and len(grid[0]["used_by"]) == 3
    assert grid[0]["year"] == 2023 and "生态环境部" in grid[0]["source"]
    assert body["data_quality"]["readings"] == 9  # 5 electricity + 4 gas readings
    assert body["data_quality"]["measured_share"] == "1"
    assert body["methodology"][0]["rule"]["methodology_id"] == MID


def test_report_json_is_deterministic_and_hashed(inventories: list[LoggedInventory]) -> None:
    a = build_report(report_input(inventories))
    b = build_report(report_input(list(reversed(inventories))))
    assert report_bytes(a) == report_bytes(b)
    assert report_bytes(a) == canonical_json(json.loads(report_bytes(a)))
    assert report_hash(a, "intl") == hash_fn("intl")(report_bytes(a))
    assert report_hash(a) == hash_fn("sm")(report_bytes(a))
    assert report_id(a) == "86.1000.1/rpt." + report_hash(a)[:16].hex()
    other = build_report(report_input(inventories[:2]))
    assert report_hash(other) != report_hash(a)


def test_quota_and_offsets_sit_beside_gross(inventories: list[LoggedInventory]) -> None:
    monthly = {n + 1: parse(i.inventory.totals.total) for n, i in enumerate(inventories)}
    quota = QuotaBook(None, [InternalQuota(enterprise="86.1000.1/ent.acme", year=2026,
                                           allocation="12000")]).effective(
        "86.1000.1/ent.acme", 2026)
    rec = reconcile(quota, monthly)
    gross = gross_of(i.inventory for i in inventories)
    net = OffsetLedger().claim("86.1000.1/ent.acme/2026-Q1", gross, [
        GreenPowerClaim(purchase_id="GP-1", purchased_mwh="500", mwh="500"),
        CcerClaim(serial="CCER-1", tco2e="10", project="P-1")], CN_ETS_RULES)
    body = json.loads(report_bytes(build_report(report_input(inventories, quota=rec,
                                                             offsets=net))))
    assert body["offsets"]["gross"]["scope2"] == "1710.9"
    assert body["offsets"]["green_reduction"] == "285.15"  # 500 MWh x 0.5703
    assert body["emissions"]["by_scope"]["scope2"] == "1710.9"  # gross stays gross
    assert body["quota"]["quota"]["origin"] == "internal"
    assert body["quota"]["forecast_method"] == "run_rate"


def test_inputs_that_do_not_fit_are_refused(inventories: list[LoggedInventory]) -> None:
    with pytest.raises(ReportError):  # a month outside the reporting period
        build_report(report_input(inventories, period=Period(
            label="2026-01", start="2026-01-01T00:00:00Z", end="2026-02-01T00:00:00Z")))
    with pytest.raises(ReportError):  # the same inventory twice
        build_report(report_input([inventories[0], inventories[0]]))
    twin = inventories[0].model_copy(update={"id": "86.1000.1/inv.twin"})
    with pytest.raises(ReportError):  # one device counted twice over one month
        build_report(report_input([inventories[0], twin]))
    with pytest.raises(ReportError):  # a site outside the boundary
        build_report(report_input(inventories, boundary=Boundary(
            sites=[SiteInfo(id="86.1000.1/site.other", name="Other")])))


def _qr_payloads(pdf: bytes) -> list[str]:
    found = []
    for image in PdfReader(io.BytesIO(pdf)).pages[0].images:
        gray = np.array(PILImage.open(io.BytesIO(image.data)).convert("L"))
        text, _, _ = cv2.QRCodeDetector().detectAndDecode(gray)
        if text:
            found.append(text)
    return found


def test_pdf_carries_the_hash_and_a_qr_of_the_proof_link(
        inventories: list[LoggedInventory]) -> None:
    monthly = {n + 1: parse(i.inventory.totals.total) for n, i in enumerate(inventories)}
    quota = QuotaBook(None, [InternalQuota(enterprise="86.1000.1/ent.acme", year=2026,
                                           allocation="12000")]).effective(
        "86.1000.1/ent.acme", 2026)
    report = build_report(report_input(inventories, quota=reconcile(quota, monthly)))
    pdf = render_pdf(report)
    assert pdf.startswith(b"%PDF-")
    assert render_pdf(report) == pdf  # deterministic
    reader = PdfReader(io.BytesIO(pdf))
    digest = "sm3:" + report_hash(report).hex()
    text = "".join(page.extract_text() for page in reader.pages)
    assert digest in text.replace("\n", "")
    assert reader.metadata is not None and reader.metadata.subject == digest
    assert _qr_payloads(pdf) == [proof_link(report)]
    assert proof_link(report) == ("https://ledger.example/v1/reports/" + report_id(report)
                                  + "/proof")
    matrix = qr_matrix(proof_link(report))
    assert len(matrix) == len(matrix[0]) and len(matrix) >= 21 + 8


def test_pdf_hash_changes_with_the_report(inventories: list[LoggedInventory]) -> None:
    a = render_pdf(build_report(report_input(inventories)), "intl")
    b = render_pdf(build_report(report_input(inventories[:1])), "intl")
    text_a = "".join(p.extract_text() for p in PdfReader(io.BytesIO(a)).pages)
    assert "sha256:" + report_hash(build_report(report_input(inventories)), "intl").hex() in (
        text_a.replace("\n", ""))
    assert a != b


def test_a_stranger_rebuilds_the_report_from_its_inventories(
        inventories: list[LoggedInventory]) -> None:
    report = build_report(report_input(inventories))
    verify_report(report, list(reversed(inventories)))
    raw = report.model_dump(mode="json")
    raw["emissions"]["by_scope"]["total"] = "1"
    with pytest.raises(ReportMismatchError) as edited:
        verify_report(InventoryReport.model_validate(raw), inventories)
    assert edited.value.details["section"] == "emissions"
    with pytest.raises(ReportMismatchError) as missing:
        verify_report(report, inventories[:2])
    assert missing.value.details["missing"] == [inventories[2].id]
    other = inventories[1].inventory.model_copy(update={"totals": inventories[0].inventory.totals})
    swapped = [inventories[0], inventories[1].model_copy(update={"inventory": other}),
               inventories[2]]
    with pytest.raises(ReportMismatchError):
        verify_report(report, swapped)


def test_the_stated_on_chain_quota_is_checked_against_the_registry(
        inventories: list[LoggedInventory]) -> None:
    chain = QuotaRegistryClient.embedded()
    ent = "86.1000.1/ent.acme"
    chain.issue(ent, 2026, parse("9000"), "notice 2026-001")
    monthly = {n + 1: parse(i.inventory.totals.total) for n, i in enumerate(inventories)}
    quota = QuotaBook(chain).effective(ent, 2026)
    report = build_report(report_input(inventories, quota=reconcile(quota, monthly)))
    chain.adjust(ent, 2026, parse("9500"), "notice 2026-007")  # later: the report stays right
    verify_report(report, inventories, quotas=chain)
    raw = report.model_dump(mode="json")
    raw["quota"]["quota"]["allocation"] = "19000"
    raw["quota"]["quota"]["chain"]["allocation"] = "19000"
    inflated = InventoryReport.model_validate(raw)
    verify_report(inflated, inventories)  # the inventories alone cannot tell...
    with pytest.raises(ReportMismatchError) as err:  # ...the registry can
        verify_report(inflated, inventories, quotas=chain)
    assert err.value.details["section"] == "quota"


def test_monthly_totals_for_reconciliation(inventories: list[LoggedInventory]) -> None:
    months = monthly_totals((i.inventory for i in inventories), 2026)
    assert months == {n + 1: parse(i.inventory.totals.total) for n, i in enumerate(inventories)}
    assert monthly_totals((i.inventory for i in inventories), 2025) == {}
    # two gateways reporting the same month add up
    doubled = monthly_totals([inventories[0].inventory, inventories[0].inventory], 2026)
    assert doubled == {1: 2 * parse(inventories[0].inventory.totals.total)}
    day = inventories[0].inventory.model_copy(update={"period": Period(
        label="2026-01-05", start="2026-01-05T00:00:00Z", end="2026-01-06T00:00:00Z")})
    with pytest.raises(QuotaInputError):
        monthly_totals([day], 2026)
