"""``QuotaRegistry`` on the in-process EVM: who may issue, exact errors, events, history."""

from __future__ import annotations

import pytest
from eth_account import Account

from carbon_rules.errors import (
    QuotaAlreadyIssuedError,
    QuotaNotIssuedError,
    QuotaRefusedError,
    QuotaUnauthorizedError,
)
from carbon_rules.fixed_point import parse
from carbon_rules.quotas_client import REGULATOR_ROLE, QuotaRegistryClient, enterprise_key

ENT = "86.1000.1/ent.acme-steel"


@pytest.fixture(scope="module")
def regulator() -> QuotaRegistryClient:
    return QuotaRegistryClient.embedded()


def _funded(reg: QuotaRegistryClient) -> QuotaRegistryClient:
    acct = Account.create()
    tx = reg.w3.eth.send_transaction({"from": reg.w3.eth.accounts[0], "to": acct.address,
                                      "value": 10**20})  # type: ignore[typeddict-item]
    reg.w3.eth.wait_for_transaction_receipt(tx)
    return reg.with_signer(acct.key)


def test_issue_adjust_and_history(regulator: QuotaRegistryClient) -> None:
    ent = ENT + ".1"
    rc = regulator.issue(ent, 2026, parse("10000"), "GHG-ALLOC-2026-001")
    (issued,) = [e for e in rc.events if e.name == "QuotaIssued"]
    assert issued.args["enterprise"] == ent
    assert issued.args["allocation"] == parse("10000")
    assert issued.args["enterpriseKey"] == "0x" + enterprise_key(ent).hex()
    adjusted = regulator.adjust(ent, 2026, parse("10500.5"), "GHG-ALLOC-2026-017")
    assert adjusted.revision == 2
    (event,) = [e for e in adjusted.receipt.events if e.name == "QuotaAdjusted"]
    assert (event.args["previous"], event.args["allocation"]) == (parse("10000"),
                                                                   parse("10500.5"))
    quota = regulator.quota(ent, 2026)
    assert (quota.revision, quota.allocation, quota.document) == (
        2, parse("10500.5"), "GHG-ALLOC-2026-017")
    assert quota.regulator == regulator.account
    history = regulator.history(ent, 2026)
    assert [h.allocation for h in history] == [parse("10000"), parse("10500.5")]
    assert regulator.history(ent, 2025) == ()


def test_non_regulator_cannot_issue_or_adjust(regulator: QuotaRegistryClient) -> None:
    outsider = _funded(regulator)
    assert outsider.account is not None
    assert not outsider.has_role(REGULATOR_ROLE, outsider.account)
    with pytest.raises(QuotaUnauthorizedError) as err:
        outsider.issue(ENT + ".2", 2026, parse("1"), "forged")
    assert err.value.error == "AccessControlUnauthorizedAccount"
    assert err.value.error_args["account"] == outsider.account
    regulator.issue(ENT + ".2", 2026, parse("5"), "GHG-ALLOC-2026-002")
    with pytest.raises(QuotaUnauthorizedError):
        outsider.adjust(ENT + ".2", 2026, parse("500"), "forged")
    assert regulator.quota(ENT + ".2", 2026).allocation == parse("5")
    regulator.grant_regulator(outsider.account)
    assert outsider.adjust(ENT + ".2", 2026, parse("6"), "GHG-ALLOC-2026-003").revision == 2


def test_refusals_are_typed(regulator: QuotaRegistryClient) -> None:
    ent = ENT + ".3"
    with pytest.raises(QuotaNotIssuedError) as missing:
        regulator.quota(ent, 2026)
    assert missing.value.error == "QuotaRegistryNotIssued"
    assert missing.value.error_args == {"enterpriseKey": "0x" + enterprise_key(ent).hex(),
                                        "year": 2026}
    with pytest.raises(QuotaNotIssuedError):
        regulator.adjust(ent, 2026, parse("1"), "doc")
    regulator.issue(ent, 2026, parse("1"), "doc")
    with pytest.raises(QuotaAlreadyIssuedError):
        regulator.issue(ent, 2026, parse("2"), "doc")
    with pytest.raises(QuotaRefusedError) as year:
        regulator.issue(ent, 0, parse("1"), "doc")
    assert year.value.error == "QuotaRegistryInvalidYear"
    with pytest.raises(QuotaRefusedError) as doc:
        regulator.issue(ent, 2027, parse("1"), "")
    assert doc.value.error == "QuotaRegistryEmptyDocument"
    with pytest.raises(QuotaRefusedError):
        regulator.issue("", 2027, parse("1"), "doc")
    assert regulator.revision_count(ent, 2027) == 0
