"""Structured logs: one JSON object per line (``LEDGER_LOG_FORMAT=json``) or plain text.

A JSON line holds ``ts`` (RFC 3339 UTC, milliseconds), ``level``, ``logger`` and ``msg``,
then every field passed through ``extra=`` (values JSON cannot hold are written as
``str()``), then ``exc`` / ``stack`` when present. Nothing is ever split across lines,
so a collector can parse the stream line by line::

    log.info("anchor final", extra={"tree_size": 512, "tx_hash": "0x…"})
    {"ts":"2026-11-24T17:00:00.123Z","level":"INFO","logger":"ledger_service.anchoring",
     "msg":"anchor final","tree_size":512,"tx_hash":"0x…"}

:func:`configure_logging` owns one handler on the root logger and replaces only that
handler when called again, so pytest's capture handlers and anything else attached to
the root logger stay in place. uvicorn configures its own loggers after the command line
has configured ours; :func:`route_server_logs` (called by the app when it starts) sends
them through the same handler, so server errors come out in the same format.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LogFormat", "LogSettings", "JsonFormatter", "configure_logging",
           "route_server_logs"]

LogFormat = Literal["json", "text"]

#: uvicorn's loggers, which it configures with handlers of its own.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_CORE = ("ts", "level", "logger", "msg")
# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


class LogSettings(BaseSettings):
    """The log format, from ``LEDGER_LOG_FORMAT`` (``text`` unless set).

    Kept apart from :class:`ledger_service.settings.Settings` so that logging can be set
    up before, and whether or not, the service settings validate.
    """

    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore", frozen=True)

    log_format: LogFormat = "text"


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "ts": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key in _STANDARD_ATTRS or key.startswith("_"):
                continue
            out[f"extra_{key}" if key in _CORE else key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False, separators=(",", ":"))


class _OwnHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_logging` installs (so it can find and replace it)."""


_configured: LogFormat | None = None


def configure_logging(fmt: LogFormat | None = None, *, level: int = logging.INFO,
                      stream: TextIO | None = None) -> LogFormat:
    """Send the root logger's records to ``stream`` (default stderr) as ``fmt`` (default
    ``LEDGER_LOG_FORMAT``); returns the format used. Safe to call more than once."""
    global _configured
    chosen: LogFormat = fmt or LogSettings().log_format
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OwnHandler)]:
        root.removeHandler(old)
    handler = _OwnHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(_TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    _configured = chosen
    return chosen


def route_server_logs() -> None:
    """If :func:`configure_logging` ran, make uvicorn's loggers use its handler too.

    uvicorn installs its own text handlers when it starts; this drops them and lets the
    records propagate to the root logger, keeping uvicorn's levels. A no-op otherwise
    (tests, or an app served by something that configures logging itself).
    """
    if _configured is None:
        return
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
