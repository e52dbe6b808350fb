"""``RuleRegistry`` on the in-process EVM: behaviour, exact errors and events, and the
property that the contract and ``carbon_rules`` compute the same numbers.

Behaviours assert the exact custom error with its arguments (decoded from the revert,
see :mod:`carbon_rules._internal.evm`) and the exact events of each receipt. The
properties draw random inputs, near and beyond the overflow bound included, and require
the contract's ``view`` to return exactly the Python result, or both to fail with the
same error and arguments (``--hypothesis-show-statistics`` shows the mix of results
and errors drawn). ``max_examples`` is kept at 60 so the module runs in about 20 s.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from carbon_rules.errors import (
    ContractRuleError,
    ImplausibleFactorError,
    InvalidParameterError,
    InvalidRuleError,
    NoVersionInForceError,
    PublicationRefusedError,
    RegistryError,
    UnknownRuleError,
    VersionNotYetInForceError,
    VersionSupersededError,
)
from carbon_rules.factors import default_draft
from carbon_rules.fixed_point import HALF, MAX_VALUE, SCALE, parse
from carbon_rules.formulas import (
    FuelLine,
    ProcessLine,
    fuel_combustion,
    process_emissions,
    project_reductions,
    purchased_energy,
)
from carbon_rules.models import (
    Factor,
    FuelUse,
    Methodology,
    Param,
    ProcessUse,
    RuleRef,
    VersionDraft,
    VersionStatus,
    encode_name,
    hex32,
)
from carbon_rules.registry_client import (
    ASSOCIATION_ROLE,
    DEFAULT_ADMIN_ROLE,
    RuleRegistryClient,
)

#: eth-tester's genesis funds the accounts of private keys 1..10.
DEV_KEYS = [f"0x{i:064x}" for i in range(1, 11)]
ZERO_ADDRESS = "0x" + "00" * 20
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


@pytest.fixture(scope="module")
def registry() -> RuleRegistryClient:
    return RuleRegistryClient.embedded(DEV_KEYS[0])


def fresh_id(label: str) -> str:
    """A methodology id no other test uses (at most 32 ASCII bytes)."""
    return f"t.{label[:16]}.{uuid.uuid4().hex[:12]}"


def pending_time(client: RuleRegistryClient) -> int:
    """The timestamp the next block (and ``eth_call``/``estimateGas``) runs at."""
    return int(client.w3.eth.get_block("pending")["timestamp"])


def events_of(receipt: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, e.args) for e in receipt.events]


def outcome(call: Callable[[], int]) -> tuple[Any, ...]:
    """``("ok", value)`` or ``("error", class, name, args, message)``."""
    try:
        return ("ok", call())
    except ContractRuleError as exc:
        return ("error", type(exc), exc.error, exc.error_args, str(exc))


def agree(on_chain: Callable[[], int], in_python: Callable[[], int]) -> None:
    """Both sides give the same value, or the same error with the same arguments."""
    want = outcome(in_python)
    assert outcome(on_chain) == want
    event(want[0] if want[0] == "ok" else want[2])  # --hypothesis-show-statistics


def expect_error(call: Callable[[], Any], cls: type[ContractRuleError], name: str,
                 args: dict[str, Any]) -> None:
    with pytest.raises(cls) as info:
        call()
    assert (info.value.error, info.value.error_args) == (name, args), repr(info.value)


MEE_2023 = "生态环境部办公厅; 关于做好2023—2025年发电行业企业温室气体排放报告管理有关工作的通知"


def grid(value: str = "0.5703") -> Factor:
    return Factor("ef.grid.CN", parse(value), parse("0.1"), parse("1.5"), "tCO2/MWh", "CN",
                  2023, MEE_2023)


# -- deployment and roles -----------------------------------------------------------------


def test_deploy_grants_admin_and_association_roles(registry: RuleRegistryClient) -> None:
    assert registry.account is not None
    assert registry.has_role(DEFAULT_ADMIN_ROLE, registry.account)
    assert registry.has_role(ASSOCIATION_ROLE, registry.account)
    other = Account.from_key(DEV_KEYS[1]).address
    assert not registry.has_role(ASSOCIATION_ROLE, other)
    expect_error(lambda: RuleRegistryClient.deploy(registry.w3, DEV_KEYS[0], admin=ZERO_ADDRESS),
                 RegistryError, "RuleRegistryInvalidAdmin", {"admin": ZERO_ADDRESS})


def test_publishing_requires_the_association_role(registry: RuleRegistryClient) -> None:
    other = registry.with_signer(DEV_KEYS[2])
    assert other.account is not None and registry.account is not None
    mid = fresh_id("role")
    draft = VersionDraft("", "doc", (grid(),))
    expect_error(lambda: other.publish_version(mid, 0, draft), RegistryError,
                 "AccessControlUnauthorizedAccount",
                 {"account": other.account, "neededRole": "0x" + ASSOCIATION_ROLE.hex()})
    assert registry.version_count(mid) == 0

    granted = registry.grant_role(ASSOCIATION_ROLE, other.account)
    role_args = {"role": "0x" + ASSOCIATION_ROLE.hex(), "account": other.account,
                 "sender": registry.account}
    assert events_of(granted) == [("RoleGranted", role_args)]
    assert events_of(registry.grant_role(ASSOCIATION_ROLE, other.account)) == []  # no-op
    try:
        assert other.publish_version(mid, 0, draft).version == 1
        assert registry.version_info(mid, 1).publisher == other.account
    finally:
        revoked = registry.revoke_role(ASSOCIATION_ROLE, other.account)
    assert events_of(revoked) == [("RoleRevoked", role_args)]
    expect_error(lambda: other.publish_version(mid, 2**40, draft), RegistryError,
                 "AccessControlUnauthorizedAccount",
                 {"account": other.account, "neededRole": "0x" + ASSOCIATION_ROLE.hex()})


# -- publication ---------------------------------------------------------------------------


def test_first_version_is_stored_exactly_with_one_event(registry: RuleRegistryClient) -> None:
    mid = fresh_id("first")
    draft = default_draft()
    published = registry.publish_version(mid, 1_672_531_200, draft)  # back-dated: first
    assert published.version == 1 and published.receipt.status == 1
    assert events_of(published.receipt) == [("MethodologyVersionPublished", {
        "methodologyId": hex32(mid), "version": 1, "effectiveFrom": 1_672_531_200,
        "parametersHash": "0x" + draft.parameters_hash.hex(), "publisher": registry.account,
    })]
    info = registry.version_info(mid, 1)
    block_time = int(registry.w3.eth.get_block(published.receipt.block_number)["timestamp"])
    assert (info.effective_from, info.effective_to, info.published_at) == (
        1_672_531_200, None, block_time)
    assert (info.gwp_set, info.document) == (draft.gwp_set, draft.document)
    assert info.factor_ids == tuple(f.id for f in draft.factors)
    assert info.parameters_hash == draft.parameters_hash == registry.parameters_hash_of(draft)
    fetched = registry.methodology(mid)
    assert fetched.versions[0].factors == draft.factors  # provenance strings included
    assert registry.factor(mid, 1, "gwp.SF6").value == parse("23500")


def test_a_new_version_supersedes_from_its_effective_date(registry: RuleRegistryClient) -> None:
    mid = fresh_id("supersede")
    v1 = VersionDraft("", "MEE 2022 notice", (grid("0.5810"),))
    v2 = VersionDraft("", "MEE 2023 notice", (grid("0.5703"),))
    registry.publish_version(mid, 0, v1)
    start = pending_time(registry) + 10_000
    published = registry.publish_version(mid, start, v2)
    assert published.version == 2
    assert events_of(published.receipt) == [
        ("MethodologyVersionPublished", {
            "methodologyId": hex32(mid), "version": 2, "effectiveFrom": start,
            "parametersHash": "0x" + v2.parameters_hash.hex(), "publisher": registry.account}),
        ("MethodologyVersionSuperseded", {
            "methodologyId": hex32(mid), "version": 1, "supersededBy": 2,
            "supersededFrom": start}),
    ]
    # Version 1 is unchanged but for its end.
    old = registry.version_info(mid, 1)
    assert (old.effective_to, old.parameters_hash) == (start, v1.parameters_hash)
    assert registry.factor(mid, 1, "ef.grid.CN").value == parse("0.5810")
    assert registry.version_at(mid, start - 1) == 1
    assert registry.version_at(mid, start) == 2
    assert registry.status_at(mid, 1, start - 1) is VersionStatus.IN_FORCE
    assert registry.status_at(mid, 1, start) is VersionStatus.SUPERSEDED
    assert registry.status_at(mid, 2, start - 1) is VersionStatus.PENDING
    assert registry.status_at(mid, 2, 2**64 - 1) is VersionStatus.IN_FORCE

    # Failures: the old version after supersession, the new one before it takes effect.
    expect_error(lambda: registry.compute_purchased_energy(
        RuleRef(mid, 1, start), parse("1000"), Param("ef.grid.CN")),
        VersionSupersededError, "RuleRegistryVersionSuperseded",
        {"methodologyId": hex32(mid), "version": 1, "supersededFrom": start, "at": start})
    expect_error(lambda: registry.compute_purchased_energy(
        RuleRef(mid, 2, start - 1), parse("1000"), Param("ef.grid.CN")),
        VersionNotYetInForceError, "RuleRegistryVersionNotYetInForce",
        {"methodologyId": hex32(mid), "version": 2, "effectiveFrom": start, "at": start - 1})
    assert registry.compute_purchased_energy(
        RuleRef(mid, 1, start - 1), parse("1000"), Param("ef.grid.CN")) == parse("581")
    assert registry.compute_purchased_energy(
        RuleRef(mid, 2, start), parse("1000"), Param("ef.grid.CN")) == parse("570.3")


def test_a_pending_version_can_be_replaced_before_it_takes_effect(
    registry: RuleRegistryClient,
) -> None:
    mid = fresh_id("replace")
    registry.publish_version(mid, 0, VersionDraft("", "v1", (grid("0.58"),)))
    start = pending_time(registry) + 10_000
    registry.publish_version(mid, start, VersionDraft("", "v2 typo", (grid("0.7503"),)))
    fixed = registry.publish_version(mid, start, VersionDraft("", "v3", (grid("0.57"),)))
    assert events_of(fixed.receipt)[1] == ("MethodologyVersionSuperseded", {
        "methodologyId": hex32(mid), "version": 2, "supersededBy": 3, "supersededFrom": start})
    assert registry.version_at(mid, start) == 3
    assert registry.status_at(mid, 2, start - 1) is VersionStatus.PENDING
    assert registry.status_at(mid, 2, start) is VersionStatus.SUPERSEDED  # never in force


def test_versions_cannot_be_back_dated_or_reordered(registry: RuleRegistryClient) -> None:
    mid = fresh_id("retro")
    draft = VersionDraft("", "doc", (grid(),))
    registry.publish_version(mid, 1_000, draft)
    now = pending_time(registry) + 1_000
    registry.w3.provider.ethereum_tester.time_travel(now)  # type: ignore[attr-defined]
    assert pending_time(registry) == now
    for start in (0, 999, 1_000, now):
        expect_error(lambda start=start: registry.publish_version(mid, start, draft),  # type: ignore[misc]
                     PublicationRefusedError, "RuleRegistryRetroactiveVersion",
                     {"methodologyId": hex32(mid), "effectiveFrom": start, "currentTime": now})
    registry.publish_version(mid, now + 500, draft)
    expect_error(lambda: registry.publish_version(mid, now + 499, draft),
                 PublicationRefusedError, "RuleRegistryEffectiveFromBeforePrevious",
                 {"methodologyId": hex32(mid), "previous": now + 500, "got": now + 499})
    with pytest.raises(InvalidRuleError, match="must not be empty"):
        registry.publish_version("", 0, draft)
    expect_error(lambda: registry.publish_raw(bytes(32), 0, bytes(32), "doc", []),
                 PublicationRefusedError, "RuleRegistryEmptyMethodologyId", {})
    assert registry.version_count(mid) == 2


def _raw(factor: Factor, **override: Any) -> tuple[Any, ...]:
    values = dict(zip(("id", "value", "min", "max", "unit", "region", "year", "source"),
                      factor.to_abi(), strict=True))
    values.update(override)
    return tuple(values.values())


@pytest.mark.parametrize(
    ("factors", "cls", "error", "args"),
    [
        (lambda g, h: [_raw(h), _raw(g)], PublicationRefusedError,
         "RuleRegistryFactorIdsNotIncreasing",
         {"previous": hex32("ef.heat.CN"), "got": hex32("ef.grid.CN")}),
        (lambda g, h: [_raw(g), _raw(g)], PublicationRefusedError,
         "RuleRegistryFactorIdsNotIncreasing",
         {"previous": hex32("ef.grid.CN"), "got": hex32("ef.grid.CN")}),
        (lambda g, h: [_raw(g, id=bytes(32))], PublicationRefusedError,
         "RuleRegistryFactorIdsNotIncreasing", {"previous": hex32(""), "got": hex32("")}),
        (lambda g, h: [_raw(g, min=parse("2"))], ImplausibleFactorError,
         "RuleRegistryInvalidFactorBounds",
         {"factor": hex32("ef.grid.CN"), "minValue": parse("2"), "maxValue": parse("1.5")}),
        (lambda g, h: [_raw(g, max=MAX_VALUE + 1)], ImplausibleFactorError,
         "RuleRegistryInvalidFactorBounds",
         {"factor": hex32("ef.grid.CN"), "minValue": parse("0.1"), "maxValue": MAX_VALUE + 1}),
        (lambda g, h: [_raw(g, value=parse("570.3"))], ImplausibleFactorError,
         "RuleRegistryFactorOutOfRange",
         {"factor": hex32("ef.grid.CN"), "value": parse("570.3"), "minValue": parse("0.1"),
          "maxValue": parse("1.5")}),
    ],
    ids=["unsorted", "duplicate", "zero-id", "empty-range", "range-above-max",
         "implausible-default"],
)
def test_malformed_factors_are_refused(
    registry: RuleRegistryClient, factors: Callable[[Factor, Factor], list[tuple[Any, ...]]],
    cls: type[ContractRuleError], error: str, args: dict[str, Any],
) -> None:
    heat = Factor("ef.heat.CN", parse("0.11"), parse("0.05"), parse("0.2"), "tCO2/GJ", "CN",
                  2015, "src")
    mid = fresh_id("malformed")
    expect_error(lambda: registry.publish_raw(encode_name(mid), 0, bytes(32), "doc",
                                              factors(grid(), heat)), cls, error, args)
    assert registry.version_count(mid) == 0


def test_the_python_draft_check_refuses_what_the_contract_refuses(
    registry: RuleRegistryClient,
) -> None:
    bad = Factor("ef.grid.CN", parse("570.3"), parse("0.1"), parse("1.5"), "tCO2/MWh", "CN",
                 2023, "src")
    draft = VersionDraft("", "doc", (bad,))
    mid = fresh_id("check")
    python = outcome(lambda: registry.publish_version(mid, 0, draft).version)
    chain = outcome(lambda: registry.publish_version(mid, 0, draft, check=False).version)
    assert python[:4] == chain[:4] and python[2] == "RuleRegistryFactorOutOfRange"


def test_lookups_of_what_does_not_exist(registry: RuleRegistryClient) -> None:
    mid = fresh_id("lookup")
    expect_error(lambda: registry.version_at(mid, 0), NoVersionInForceError,
                 "RuleRegistryNoVersionInForce", {"methodologyId": hex32(mid), "at": 0})
    registry.publish_version(mid, 100, VersionDraft("", "doc", (grid(),)))
    expect_error(lambda: registry.version_at(mid, 99), NoVersionInForceError,
                 "RuleRegistryNoVersionInForce", {"methodologyId": hex32(mid), "at": 99})
    for number in (0, 2):
        expect_error(lambda number=number: registry.version_info(mid, number),  # type: ignore[misc]
                     UnknownRuleError, "RuleRegistryUnknownVersion",
                     {"methodologyId": hex32(mid), "version": number})
    expect_error(lambda: registry.factor(mid, 1, "ef.grid.XX"), UnknownRuleError,
                 "RuleRegistryUnknownFactor",
                 {"methodologyId": hex32(mid), "version": 1, "factor": hex32("ef.grid.XX")})
    rule = RuleRef(mid, 1, 100)
    expect_error(lambda: registry.compute_purchased_energy(
        rule, SCALE, Param.measured_value("ef.grid.CN", parse("570.3"))),
        ImplausibleFactorError, "RuleRegistryFactorOutOfRange",
        {"factor": hex32("ef.grid.CN"), "value": parse("570.3"), "minValue": parse("0.1"),
         "maxValue": parse("1.5")})
    expect_error(lambda: registry.compute_purchased_energy(rule, SCALE, Param("ef.grid.CN",
                                                                              False, 1)),
                 InvalidParameterError, "RuleRegistryDefaultWithValue",
                 {"factor": hex32("ef.grid.CN"), "value": 1})
    expect_error(lambda: registry.compute_purchased_energy(
        rule, MAX_VALUE + 1, Param("ef.grid.CN")), ContractRuleError,
        "EmissionFormulasOverflow", {"value": MAX_VALUE + 1})
    registry.require_in_force(rule)


# -- worked examples on chain ----------------------------------------------------------------


def test_worked_examples_on_chain(registry: RuleRegistryClient) -> None:
    # Case 20 and the fuel example of tests/unit/carbon_rules/test_formulas.py.
    assert registry.purchased_energy_emissions(parse("1000"), parse("0.997")) == parse("997")
    diesel = FuelLine(parse("120"), parse("42.652"), parse("0.0202"), parse("0.98"))
    gas = FuelLine(parse("50"), parse("389.31"), parse("0.0153"), parse("0.99"))
    assert registry.fuel_combustion_emissions([diesel, gas]) == parse("1452.60356098")
    one_diesel = FuelLine(parse("1"), parse("42.652"), parse("0.0202"), parse("0.98"))
    assert registry.fuel_combustion_emissions([one_diesel]) == parse("3.095909637333333333")
    sf6 = ProcessLine(parse("0.012"), parse("1"), parse("23500"))
    assert registry.process_emissions([sf6]) == parse("282")
    # Case 3: 45,421.8 - 2,652.70915648 - 0
    assert registry.project_reductions(parse("45421.8"), parse("2652.70915648"), 0) == parse(
        "42769.09084352")
    assert registry.project_reductions(0, parse("1"), parse("2")) == -parse("3")


# -- properties: the contract and Python agree to the last digit -----------------------------

#: Values around every interesting edge: small realistic decimals, large ones, the
#: rounding tie, the overflow bound on both sides, and up to the uint256 limit.
values = st.one_of(
    st.integers(0, 10**24),
    st.integers(0, MAX_VALUE),
    st.integers(MAX_VALUE - 10**3, MAX_VALUE + 10**3),
    st.integers(0, 2**256 - 1),
    st.sampled_from([0, 1, HALF - 1, HALF, SCALE, MAX_VALUE, MAX_VALUE + 1]),
)
realistic = st.integers(0, 10**22)  # up to 10,000 units with all 18 decimals
fuel_lines = st.builds(FuelLine, values | realistic, values | realistic, values | realistic,
                       values | realistic)
process_lines = st.builds(ProcessLine, values | realistic, values | realistic,
                          values | realistic)


@PROPERTY_SETTINGS
@given(values, values)
def test_property_purchased_energy(registry: RuleRegistryClient, ad: int, ef: int) -> None:
    agree(lambda: registry.purchased_energy_emissions(ad, ef),
          lambda: purchased_energy(ad, ef))


@PROPERTY_SETTINGS
@given(st.lists(fuel_lines, max_size=4))
def test_property_fuel_combustion(registry: RuleRegistryClient, lines: list[FuelLine]) -> None:
    agree(lambda: registry.fuel_combustion_emissions(lines),
          lambda: fuel_combustion(lines))


@PROPERTY_SETTINGS
@given(st.lists(process_lines, max_size=4))
def test_property_process_emissions(registry: RuleRegistryClient,
                                    lines: list[ProcessLine]) -> None:
    agree(lambda: registry.process_emissions(lines),
          lambda: process_emissions(lines))


@PROPERTY_SETTINGS
@given(values, values, values)
def test_property_project_reductions(registry: RuleRegistryClient, baseline: int,
                                     project: int, leakage: int) -> None:
    agree(lambda: registry.project_reductions(baseline, project, leakage),
          lambda: project_reductions(baseline, project, leakage))


@pytest.fixture(scope="module")
def two_versions(registry: RuleRegistryClient) -> tuple[Methodology, int]:
    """A methodology with the shipped defaults (v1, back-dated) and a second version
    in the future; fetched back from the chain for the Python side."""
    mid = fresh_id("property")
    registry.publish_version(mid, 1_600_000_000, default_draft())
    start = pending_time(registry) + 100_000
    registry.publish_version(mid, start, default_draft("defaults, second edition"))
    return registry.methodology(mid), start


FACTOR_IDS = ["ef.grid.CN", "ef.heat.CN", "ncv.diesel", "cc.diesel", "of.diesel",
              "ncv.natural_gas", "ef.direct_release", "gwp.SF6", "gwp.CH4", "gwp.HFC-134a",
              "ef.missing"]


@st.composite
def params(draw: st.DrawFn, methodology: Methodology) -> Param:
    """Mostly defaults and plausible measured values, sometimes what must fail."""
    factor = draw(st.sampled_from(FACTOR_IDS))
    kind = draw(st.sampled_from(["default"] * 3 + ["measured"] * 2 + ["default-with-value"]))
    if kind == "default":
        return Param(factor)
    if kind == "default-with-value":
        return Param(factor, False, draw(st.integers(1, 10**18)))
    known = {f.id: f for f in methodology.versions[0].factors}.get(factor)
    in_range = (st.integers(known.min_value, known.max_value) if known is not None
                else st.integers(0, 10**22))
    return Param.measured_value(factor, draw(in_range | in_range | values))


@st.composite
def rules(draw: st.DrawFn, history: tuple[Methodology, int]) -> RuleRef:
    """Mostly the version in force at the drawn time; sometimes any version at all."""
    methodology, start = history
    at = draw(st.sampled_from([0, 1_599_999_999, 1_600_000_000, start - 1, start, 2**64 - 1])
              | st.integers(1_600_000_000, start + 10**6) | st.integers(0, 2**64 - 1))
    if at >= 1_600_000_000 and draw(st.integers(0, 3)) > 0:
        return RuleRef(methodology.id, methodology.version_at(at), at)
    return RuleRef(methodology.id, draw(st.sampled_from([0, 1, 1, 2, 3])), at)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_property_rule_bound_computations(
    registry: RuleRegistryClient, two_versions: tuple[Methodology, int], data: st.DataObject,
) -> None:
    methodology, _ = two_versions
    rule_ref = data.draw(rules(two_versions))
    amounts = realistic | values
    ef = data.draw(params(methodology))
    amount = data.draw(amounts)
    agree(lambda: registry.compute_purchased_energy(rule_ref, amount, ef),
          lambda: methodology.compute_purchased_energy(rule_ref, amount, ef))
    p = params(methodology)
    fuels = data.draw(st.lists(st.builds(FuelUse, amounts, p, p, p), max_size=3))
    agree(lambda: registry.compute_fuel_combustion(rule_ref, fuels),
          lambda: methodology.compute_fuel_combustion(rule_ref, fuels))
    uses = data.draw(st.lists(st.builds(ProcessUse, amounts, p, p), max_size=3))
    agree(lambda: registry.compute_process_emissions(rule_ref, uses),
          lambda: methodology.compute_process_emissions(rule_ref, uses))
    for number in (0, 1, 2, 3):
        agree(lambda n=number: int(registry.status_at(  # type: ignore[misc]
                  methodology.id, n, rule_ref.at)),
              lambda n=number: int(methodology.status_at(n, rule_ref.at)))  # type: ignore[misc]
    agree(lambda: registry.version_at(methodology.id, rule_ref.at),
          lambda: methodology.version_at(rule_ref.at))


def test_property_covers_real_defaults(two_versions: tuple[Methodology, int]) -> None:
    methodology, start = two_versions
    rule_ref = RuleRef(methodology.id, 2, start)
    uses = [FuelUse.with_defaults("diesel", parse("120")),
            FuelUse.with_defaults("natural_gas", parse("50"))]
    assert methodology.compute_fuel_combustion(rule_ref, uses) == parse("1452.60356098")


# -- invariant: published versions never change, history answers stay consistent ---------------


class RegistryHistory(RuleBasedStateMachine):
    """Publish versions with random effective times; after every step the chain's
    answers equal the offline :class:`Methodology` fetched from it, and every version
    published earlier is still exactly what it was."""

    client: RuleRegistryClient

    def __init__(self) -> None:
        super().__init__()
        self.mid = fresh_id("machine")
        self.seen: dict[int, Any] = {}

    @rule(delay=st.integers(1, 10_000), value=st.sampled_from(["0.5", "0.5703", "1.2"]))
    def publish(self, delay: int, value: str) -> None:
        count = self.client.version_count(self.mid)
        if count == 0:
            start = delay
        else:
            last = self.client.version_info(self.mid, count).effective_from
            start = max(last, pending_time(self.client)) + delay
        draft = VersionDraft("", f"edition {count + 1}", (grid(value),))
        assert self.client.publish_version(self.mid, start, draft).version == count + 1

    @rule(delay=st.integers(0, 10))
    def back_date(self, delay: int) -> None:
        if self.client.version_count(self.mid) == 0:
            return
        draft = VersionDraft("", "late", (grid(),))
        with pytest.raises(PublicationRefusedError):
            self.client.publish_version(self.mid, max(pending_time(self.client) - delay, 0),
                                        draft)

    @invariant()
    def versions_never_change(self) -> None:
        methodology = self.client.methodology(self.mid)
        for v in methodology.versions:
            frozen = self.seen.setdefault(v.version, v)
            assert frozen == v
        for v in methodology.versions:
            for at in (v.effective_from - 1, v.effective_from):
                if at < 0:
                    continue
                assert outcome(lambda at=at: self.client.version_at(self.mid, at)) == outcome(  # type: ignore[misc]
                    lambda at=at: methodology.version_at(at))  # type: ignore[misc]


def test_invariant_registry_history(registry: RuleRegistryClient) -> None:
    RegistryHistory.client = registry
    runner = RegistryHistory.TestCase
    runner.settings = settings(max_examples=8, stateful_step_count=6, deadline=None)
    runner().runTest()


# -- gas -------------------------------------------------------------------------------------


def test_gas_per_line_is_bounded_and_flat(
    registry: RuleRegistryClient, two_versions: tuple[Methodology, int],
    request: pytest.FixtureRequest,
) -> None:
    methodology, start = two_versions
    rule_ref = RuleRef(methodology.id, 2, start).to_abi()
    diesel = FuelUse.with_defaults("diesel", parse("120")).to_abi()
    line = FuelLine(parse("120"), parse("42.652"), parse("0.0202"), parse("0.98")).to_abi()
    pure = [registry.gas_of("fuelCombustionEmissions", [line] * n) for n in (1, 2, 10)]
    bound = [registry.gas_of("computeFuelCombustion", rule_ref, [diesel] * n)
             for n in (1, 2, 10)]
    per_line_pure = pure[1] - pure[0]
    per_line_bound = bound[1] - bound[0]
    request.node.user_properties.extend([
        ("fuel_line_gas_pure", per_line_pure), ("fuel_line_gas_rule_bound", per_line_bound)])
    # Linear in the number of lines (memory expansion adds a few gas per line at most).
    assert abs((pure[2] - pure[0]) - 9 * per_line_pure) <= 9 * 20
    assert abs((bound[2] - bound[0]) - 9 * per_line_bound) <= 9 * 20
    assert per_line_pure < 4_000, per_line_pure
    assert per_line_bound < 20_000, per_line_bound  # three factor reads per line
