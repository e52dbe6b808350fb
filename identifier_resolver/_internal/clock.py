"""One clock for the resolver, so tests can pin time by passing ``now`` explicitly."""

from __future__ import annotations

from datetime import UTC, datetime

from carbon_protocol.models import format_utc


def utc_now() -> datetime:
    """The current time, aware, in UTC, truncated to whole seconds like protocol times."""
    return datetime.now(UTC).replace(microsecond=0)


def utc_text(moment: datetime | None = None) -> str:
    """``moment`` (default now) as protocol text ``YYYY-MM-DDTHH:MM:SSZ``."""
    return format_utc(moment or utc_now())
