"""Offsets netting: hand-checked reductions, the CCER cap, and no double counting."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from carbon_rules.errors import (
    OffsetCapExceededError,
    OffsetDoubleClaimError,
    OffsetError,
    OffsetNotAllowedError,
    OverclaimedConsumptionError,
)
from carbon_rules.fixed_point import parse
from carbon_rules.offsets import (
    CN_ETS_RULES,
    CcerClaim,
    CertificateClaim,
    GreenPowerClaim,
    NettingRule,
    NettingRules,
    load_netting_rules,
)
from carbon_rules.offsets_ledger import GrossEmissions, OffsetLedger

# 1,000 MWh x 0.5703 tCO2/MWh = 570.3 t (scope 2) plus 429.7 t of gas (scope 1).
GROSS = GrossEmissions(scope1="429.7", scope2="570.3", total="1000", electricity_mwh="1000",
                       electricity_emissions="570.3")
KEY = "86.1000.1/ent.acme/2026-10"


def green(purchase: str = "GP-2026-0007", mwh: str = "200", of: str = "500") -> GreenPowerClaim:
    return GreenPowerClaim(purchase_id=purchase, purchased_mwh=of, mwh=mwh)


def test_gross_offsets_and_net_side_by_side() -> None:
    ledger = OffsetLedger()
    r = ledger.claim(KEY, GROSS, [
        green(),
        CertificateClaim(serials=["GEC-1", "GEC-2", "GEC-3"]),
        CcerClaim(serial="CCER-2026-000001", tco2e="50", project="CCER-03-001"),
    ], CN_ETS_RULES)
    # green: 203 MWh x 0.5703 = 115.7709 t off scope 2; CCER 50 t = exactly the 5 % cap.
    assert (r.green_mwh, r.green_reduction) == ("203", "115.7709")
    assert (r.ccer, r.ccer_cap, r.allowed_offsets) == ("50", "50", "165.7709")
    assert (r.net_scope1, r.net_scope2, r.net_total) == ("429.7", "454.5291", "834.2291")
    assert r.gross == GROSS
    assert [(a.kind, a.reduction) for a in r.offsets] == [
        ("green_power", "114.06"), ("gec", "1.7109"), ("ccer", "50")]
    # the netting is derived from what is recorded: the same answer later, claiming nothing
    assert ledger.result(KEY, GROSS, CN_ETS_RULES) == r


def test_a_certificate_serial_is_consumed_once(tmp_path: Path) -> None:
    path = tmp_path / "offsets.sqlite"
    OffsetLedger(path).claim(KEY, GROSS, [CertificateClaim(serials=["GEC-9"])], CN_ETS_RULES)
    reopened = OffsetLedger(path)  # the record survives the process
    with pytest.raises(OffsetDoubleClaimError) as err:
        reopened.claim(KEY + "-other", GROSS, [CertificateClaim(serials=["GEC-10", "GEC-9"])],
                       CN_ETS_RULES)
    assert err.value.details["claimed_against"] == KEY
    # all or nothing: GEC-10 was not consumed by the refused claim
    assert reopened.result(KEY + "-other", GROSS, CN_ETS_RULES).offsets == []
    with pytest.raises(OffsetDoubleClaimError):
        reopened.claim(KEY, GROSS, [CertificateClaim(serials=["GEC-11", "GEC-11"])],
                       CN_ETS_RULES)
    # a retry of the recorded claim is not double counting
    again = reopened.claim(KEY, GROSS, [CertificateClaim(serials=["GEC-9"])], CN_ETS_RULES)
    assert again.green_mwh == "1"


def test_a_ccer_serial_is_consumed_once() -> None:
    ledger = OffsetLedger()
    credit = CcerClaim(serial="CCER-7", tco2e="10", project="P")
    ledger.claim(KEY, GROSS, [credit], CN_ETS_RULES)
    with pytest.raises(OffsetDoubleClaimError):
        ledger.claim("another/2026-11", GROSS, [credit], CN_ETS_RULES)
    with pytest.raises(OffsetDoubleClaimError):  # same serial, another amount
        ledger.claim(KEY, GROSS, [credit.model_copy(update={"tco2e": "11"})], CN_ETS_RULES)


def test_green_power_mwh_cannot_be_claimed_twice() -> None:
    ledger = OffsetLedger()
    ledger.claim(KEY, GROSS, [green(mwh="400")], CN_ETS_RULES)
    with pytest.raises(OffsetDoubleClaimError):  # 400 + 200 > the 500 MWh bought
        ledger.claim("86.1000.1/ent.acme/2026-11", GROSS, [green(mwh="200")], CN_ETS_RULES)
    ledger.claim("86.1000.1/ent.acme/2026-11", GROSS, [green(mwh="100")], CN_ETS_RULES)
    with pytest.raises(OffsetDoubleClaimError):  # the same purchase, same consumption, again
        ledger.claim(KEY, GROSS, [green(mwh="50")], CN_ETS_RULES)
    with pytest.raises(OffsetError):  # the purchase's size cannot change between claims
        ledger.claim("x/2026-12", GROSS, [green(mwh="1", of="900")], CN_ETS_RULES)


def test_green_mwh_cannot_exceed_the_electricity_consumed() -> None:
    ledger = OffsetLedger()
    ledger.claim(KEY, GROSS, [green("GP-A", mwh="990", of="990")], CN_ETS_RULES)
    with pytest.raises(OverclaimedConsumptionError) as err:
        ledger.claim(KEY, GROSS, [CertificateClaim(serials=[f"G{i}" for i in range(11)])],
                     CN_ETS_RULES)
    assert (err.value.details["claimed"], err.value.details["consumed"]) == ("1001", "1000")
    full = ledger.claim(KEY, GROSS, [CertificateClaim(serials=[f"G{i}" for i in range(10)])],
                        CN_ETS_RULES)
    assert (full.net_scope2, full.green_reduction) == ("0", "570.3")


def test_ccer_is_capped_at_five_percent_of_gross() -> None:
    ledger = OffsetLedger()
    ledger.claim(KEY, GROSS, [CcerClaim(serial="C-1", tco2e="30", project="P")], CN_ETS_RULES)
    with pytest.raises(OffsetCapExceededError) as err:
        ledger.claim(KEY, GROSS, [CcerClaim(serial="C-2", tco2e="20.000000000000000001",
                                            project="P")], CN_ETS_RULES)
    assert (err.value.details["cap"], err.value.details["claimed"]) == (
        "50", "50.000000000000000001")
    assert ledger.result(KEY, GROSS, CN_ETS_RULES).ccer == "30"


def test_ccer_from_project_reductions() -> None:
    # case 3 shape: baseline 12,000 t, project 1,500 t, leakage 500 t -> 10,000 t
    credit = CcerClaim.from_project("CCER-M-1", "CCER-methane-01", parse("12000"),
                                    parse("1500"), parse("500"))
    assert credit.tco2e == "10000"
    with pytest.raises(OffsetError):
        CcerClaim.from_project("CCER-M-2", "p", parse("1"), parse("1"), parse("0"))


def test_netting_rules_are_configuration(tmp_path: Path) -> None:
    no_ccer = NettingRules(name="site-policy", rules=[
        NettingRule(kind="gec", scopes=[2], basis="internal policy 7")])
    path = tmp_path / "rules.json"
    path.write_text(no_ccer.model_dump_json())
    rules = load_netting_rules(path)
    with pytest.raises(OffsetNotAllowedError):
        OffsetLedger().claim(KEY, GROSS, [CcerClaim(serial="C", tco2e="1", project="P")], rules)
    with pytest.raises(OffsetNotAllowedError):
        NettingRules(name="x", rules=[NettingRule(kind="gec", scopes=[1], basis="b")]).rule(
            "gec", 2)
    path.write_text('{"name": "bad"}')
    with pytest.raises(OffsetError):
        load_netting_rules(path)


_KEYS = ["ent/2026-10", "ent/2026-11", "other/2026-10"]
_claim = st.one_of(
    st.builds(lambda p, mwh: GreenPowerClaim(purchase_id=f"GP-{p}", purchased_mwh="300",
                                             mwh=str(mwh)),
              st.integers(0, 2), st.integers(1, 400)),
    st.builds(lambda serials: CertificateClaim(serials=[f"GEC-{s}" for s in serials]),
              st.lists(st.integers(0, 30), min_size=1, max_size=5)),
    st.builds(lambda s, t: CcerClaim(serial=f"C-{s}", tco2e=str(t), project="P"),
              st.integers(0, 5), st.integers(1, 40)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_KEYS), st.lists(_claim, min_size=1, max_size=3)),
                min_size=1, max_size=12))
def test_no_sequence_of_claims_counts_anything_twice(
        requests: list[tuple[str, list[GreenPowerClaim | CertificateClaim | CcerClaim]]]
) -> None:
    ledger = OffsetLedger()
    accepted = 0
    for key, claims in requests:
        before = {k: ledger.result(k, GROSS, CN_ETS_RULES) for k in _KEYS}
        try:
            ledger.claim(key, GROSS, claims, CN_ETS_RULES)
            accepted += 1
        except OffsetError:
            # refused claims change nothing anywhere
            assert {k: ledger.result(k, GROSS, CN_ETS_RULES) for k in _KEYS} == before
    event(f"claims accepted: {min(accepted, 3)}{'+' if accepted >= 3 else ''}")
    owners: dict[tuple[str, str], str] = {}
    purchased: dict[str, int] = {}
    for k in _KEYS:
        r = ledger.result(k, GROSS, CN_ETS_RULES)
        assert parse(r.green_mwh) <= parse(GROSS.electricity_mwh)
        assert r.ccer_cap is not None and parse(r.ccer) <= parse(r.ccer_cap)
        assert parse(r.net_total) == parse(GROSS.total) - parse(r.allowed_offsets)
        assert parse(r.net_scope2) == parse(GROSS.scope2) - parse(r.green_reduction)
        for offset in r.offsets:
            if offset.kind == "green_power":
                purchase = offset.references[0]
                purchased[purchase] = purchased.get(purchase, 0) + parse(offset.quantity)
                continue
            for ref in offset.references:
                assert (offset.kind, ref) not in owners, f"{ref} counted twice"
                owners[(offset.kind, ref)] = k
    assert all(total <= parse("300") for total in purchased.values())
