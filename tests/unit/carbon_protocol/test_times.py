"""Protocol times: ``YYYY-MM-DDTHH:MM:SSZ`` and nothing looser, both ways."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbon_protocol.models import DeviceKeyInfo, format_utc, parse_utc


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59),
                    timezones=st.just(UTC)))
def test_format_and_parse_are_inverse(moment: datetime) -> None:
    whole = moment.replace(microsecond=0)
    assert parse_utc(format_utc(whole)) == whole
    assert parse_utc(format_utc(whole)).tzinfo is UTC


@pytest.mark.parametrize("text", [
    "2026-1-05T01:02:03Z",  # one-digit month (strptime takes it)
    "2026-01-05T1:02:03Z",  # one-digit hour
    "\uff12026-01-05T01:02:03Z",  # a fullwidth digit (strptime takes it)
    "2026-01-05T01:02:03",  # no zone
    "2026-01-05T01:02:03+00:00",  # another spelling of UTC
    "2026-01-05T01:02:03.5Z",  # fractional seconds
    "2026-01-05 01:02:03Z",
    "2026-01-05T01:02:03Z\n",
    "2026-02-30T00:00:00Z",  # no such day
    "2026-01-05T24:00:00Z",
    "2016-12-31T23:59:60Z",  # leap seconds are not protocol times
])
def test_other_forms_and_impossible_times_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_utc(text)


def test_a_device_key_is_valid_from_its_start_until_just_before_its_revocation() -> None:
    key = DeviceKeyInfo(suite="intl", key_id="ab" * 16, public_key="cd" * 32,
                        device="86.1000.1/dev.m1", valid_from="2026-01-01T00:00:00Z",
                        revoked_at="2026-02-01T00:00:00Z")
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    revoked = int(datetime(2026, 2, 1, tzinfo=UTC).timestamp())
    assert [key.valid_at(t) for t in (start - 1, start, revoked - 1, revoked)] == [
        False, True, True, False]
    assert key.model_copy(update={"revoked_at": None}).valid_at(revoked + 10**9)
