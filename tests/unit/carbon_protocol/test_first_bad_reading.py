"""Signatures checked in threads fail where a loop in order would."""

from __future__ import annotations

import threading
from typing import NoReturn

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbon_protocol import signing
from carbon_protocol.errors import ProtocolError, SignatureError
from carbon_protocol.models import Domain, SignedReading
from carbon_protocol.signing import check_readings_in_order, first_bad_reading, verify_reading
from carbon_protocol.suites import PrivateKey, PublicKey
from tests.conftest import Device

DOMAIN = Domain(chain_id=1337, contract="0x" + "ab" * 20, log_id="86.1000.1/log.test")
POOL = 600
"""Readings signed once for the whole module (half SM2, half Ed25519)."""


def _pool() -> tuple[list[tuple[SignedReading, PublicKey]], list[str]]:
    items, forged = [], []
    for suite in ("sm", "intl"):
        device = Device(f"86.1000.1/dev.{suite}", PrivateKey.generate(suite), DOMAIN)
        for _ in range(POOL // 2):
            signed = device.signed()
            items.append((signed, device.key.public_key()))
        # A valid signature of another reading: well-formed, and wrong for every reading.
        forged.append(device.signed().signature)
    return items, forged


ITEMS, FORGED = _pool()


def _in_order(items: list[tuple[SignedReading, PublicKey]]) -> tuple[int, str] | None:
    for i, (signed, key) in enumerate(items):
        try:
            verify_reading(signed, key)
        except ProtocolError as exc:
            return i, str(exc)
    return None


@settings(max_examples=40)
@given(n=st.integers(0, POOL), bad=st.sets(st.integers(0, POOL - 1), max_size=4),
       threads=st.integers(1, 4), chunk=st.sampled_from([1, 7, 64, 512]))
def test_answers_as_a_loop_in_order(n: int, bad: set[int], threads: int, chunk: int) -> None:
    items = list(ITEMS[:n])
    for i in bad & set(range(n)):
        signed, key = items[i]
        forged = FORGED[0] if signed.reading.suite == "sm" else FORGED[1]
        items[i] = (signed.model_copy(update={"signature": forged}), key)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(signing, "_CHUNK", chunk)
        found = first_bad_reading(items, threads=threads)
    expected = _in_order(items)
    assert (None if found is None else (found[0], str(found[1]))) == expected
    if expected is not None:
        assert expected[0] == min(bad & set(range(n)))
        assert isinstance(found[1], SignatureError)  # type: ignore[index]


def test_more_than_one_thread_does_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: set[str] = set()
    real = signing.verify_reading

    def spy(signed: SignedReading, key: PublicKey) -> None:
        seen.add(threading.current_thread().name)
        real(signed, key)

    monkeypatch.setattr(signing, "verify_reading", spy)
    monkeypatch.setattr(signing, "_CHUNK", 16)
    assert first_bad_reading(ITEMS, threads=3) is None
    assert len(seen) > 1 and all(name.startswith("verify-signatures") for name in seen)


class _Fact(Exception):
    pass


@settings(max_examples=40)
@given(n=st.integers(0, 200), bad=st.sets(st.integers(0, 199), max_size=3),
       fact_before=st.sets(st.integers(0, 199), max_size=2),
       fact_after=st.sets(st.integers(0, 199), max_size=2), threads=st.integers(1, 3))
def test_facts_and_signatures_fail_where_the_loop_would(
        n: int, bad: set[int], fact_before: set[int], fact_after: set[int], threads: int) -> None:
    items = list(ITEMS[:n])
    for i in bad & set(range(n)):
        signed, key = items[i]
        forged = FORGED[0] if signed.reading.suite == "sm" else FORGED[1]
        items[i] = (signed.model_copy(update={"signature": forged}), key)

    def before(pos: int) -> tuple[SignedReading, PublicKey]:
        if pos in fact_before:
            raise _Fact(f"before {pos}")
        return items[pos]

    def after(pos: int) -> None:
        if pos in fact_after:
            raise _Fact(f"after {pos}")

    def bad_signature(pos: int, exc: ProtocolError) -> NoReturn:
        raise _Fact(f"signature {pos}")

    def loop() -> str:
        for pos in range(n):
            signed, key = before(pos)
            try:
                verify_reading(signed, key)
            except ProtocolError as exc:
                bad_signature(pos, exc)
            after(pos)
        return "ok"

    try:
        expected = loop()
    except _Fact as exc:
        expected = str(exc)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(signing, "_CHUNK", 8)
        try:
            check_readings_in_order(n, before, after, bad_signature, threads=threads)
            found = "ok"
        except _Fact as exc:
            found = str(exc)
    assert found == expected
