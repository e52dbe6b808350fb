"""Quota book (regulator on chain overrides internal planning quotas) and monthly
reconciliation, with hand-checked numbers."""

from __future__ import annotations

import pytest

from carbon_rules.errors import QuotaInputError, QuotaNotIssuedError
from carbon_rules.fixed_point import parse
from carbon_rules.quotas import InternalQuota, QuotaBook
from carbon_rules.quotas_client import QuotaRegistryClient
from carbon_rules.quotas_reconcile import reconcile

ENT = "86.1000.1/ent.acme"


@pytest.fixture(scope="module")
def chain() -> QuotaRegistryClient:
    return QuotaRegistryClient.embedded()


def internal_book(allocation: str = "10000", chain: QuotaRegistryClient | None = None
                  ) -> QuotaBook:
    return QuotaBook(chain, [InternalQuota(enterprise=ENT, year=2026, allocation=allocation,
                                           note="budget 2026")])


def test_nine_months_at_900_against_10000_is_an_800_deficit() -> None:
    quota = internal_book().effective(ENT, 2026)
    r = reconcile(quota, {m: parse("900") for m in range(1, 10)})
    # 9 x 900 = 8,100 to date; run rate 8,100 x 12 / 9 = 10,800; 10,000 - 10,800 = -800.
    assert (r.emissions_to_date, r.forecast_method, r.forecast) == ("8100", "run_rate", "10800")
    assert (r.position, r.balance, r.remaining_to_date) == ("deficit", "800", "1900")
    assert [row.cumulative for row in r.months][-2:] == ["7200", "8100"]


def test_same_months_last_year_when_available() -> None:
    quota = internal_book().effective(ENT, 2026)
    last = {m: parse("600") for m in range(1, 13)}
    r = reconcile(quota, {m: parse("900") for m in range(1, 10)}, previous_year=last)
    # 8,100 + 3 x 600 (October to December last year) = 9,900: 100 t surplus.
    assert (r.forecast_method, r.forecast, r.position, r.balance) == (
        "last_year", "9900", "surplus", "100")
    run_rate = reconcile(quota, {m: parse("900") for m in range(1, 10)}, previous_year=last,
                         method="run_rate")
    assert run_rate.forecast == "10800"
    with pytest.raises(QuotaInputError):
        reconcile(quota, {1: parse("1")}, previous_year={12: parse("1")}, method="last_year")


def test_offsets_reduce_the_forecast_position() -> None:
    quota = internal_book().effective(ENT, 2026)
    r = reconcile(quota, {m: parse("900") for m in range(1, 10)}, offsets=parse("800"))
    assert (r.position, r.balance, r.offsets) == ("balanced", "0", "800")


def test_uneven_run_rate_rounds_half_up_once() -> None:
    quota = internal_book("100").effective(ENT, 2026)
    r = reconcile(quota, {1: parse("1"), 2: parse("1"), 3: parse("0.000000000000000001")},
                  method="run_rate")
    # (2 + 1e-18) x 12 / 3 = 8 + 4e-18 exactly.
    assert r.forecast == "8.000000000000000004"


def test_a_hole_in_the_months_is_refused() -> None:
    quota = internal_book().effective(ENT, 2026)
    with pytest.raises(QuotaInputError) as err:
        reconcile(quota, {1: parse("1"), 3: parse("1")})
    assert err.value.details["missing"] == [2]
    with pytest.raises(QuotaInputError):
        reconcile(quota, {13: parse("1")})
    with pytest.raises(QuotaInputError):
        reconcile(quota, {})


def test_regulator_quota_on_chain_overrides_the_internal_one(chain: QuotaRegistryClient) -> None:
    ent = ENT + ".override"
    book = QuotaBook(chain, [InternalQuota(enterprise=ent, year=2026, allocation="12000")])
    before = book.effective(ent, 2026)
    assert (before.origin, before.allocation, before.chain) == ("internal", "12000", None)
    chain.issue(ent, 2026, parse("10000"), "环气候〔2026〕1号 allocation notice")
    after = book.effective(ent, 2026)
    assert (after.origin, after.allocation) == ("chain", "10000")
    assert after.overridden_internal is not None
    assert after.overridden_internal.allocation == "12000"
    assert after.chain is not None and after.chain.revision == 1
    assert after.chain.document == "环气候〔2026〕1号 allocation notice"
    chain.adjust(ent, 2026, parse("10400"), "supplementary allocation 2026-07")
    adjusted = book.effective(ent, 2026)
    assert adjusted.allocation == "10400" and adjusted.chain is not None
    assert adjusted.chain.revision == 2
    r = reconcile(adjusted, {m: parse("900") for m in range(1, 10)})
    assert (r.position, r.balance) == ("deficit", "400")


def test_no_quota_at_all_is_a_typed_error(chain: QuotaRegistryClient) -> None:
    with pytest.raises(QuotaNotIssuedError):
        QuotaBook(chain).effective(ENT + ".none", 2026)
    with pytest.raises(QuotaInputError):
        QuotaBook().effective(ENT, 0)
