"""Structured logs: one JSON object per line with ts, level, logger, msg and the extra
fields, chosen by ``LEDGER_LOG_FORMAT`` and used by ``carbon-ledger serve``."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger_service._internal import logging_setup
from ledger_service._internal.logging_setup import (
    SERVER_LOGGERS,
    LogSettings,
    configure_logging,
    route_server_logs,
)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo what configure_logging and route_server_logs change on the global loggers."""
    root = logging.getLogger()
    level = root.level
    saved = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).propagate)
             for n in SERVER_LOGGERS}
    yield
    for h in [h for h in root.handlers if isinstance(h, logging_setup._OwnHandler)]:
        root.removeHandler(h)
    root.setLevel(level)
    for name, (handlers, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate = propagate
    logging_setup._configured = None


def test_format_comes_from_ledger_log_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_LOG_FORMAT", raising=False)
    assert LogSettings().log_format == "text"
    monkeypatch.setenv("LEDGER_LOG_FORMAT", "json")
    assert LogSettings().log_format == "json"
    monkeypatch.setenv("LEDGER_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        LogSettings()


def test_json_lines_carry_core_and_extra_fields(restore_logging: None) -> None:
    out = io.StringIO()
    assert configure_logging("json", stream=out) == "json"
    log = logging.getLogger("ledger_service.test")
    log.info("anchor %s is %s", 512, "final",
             extra={"tree_size": 512, "tx_hash": "0xab", "path": Path("/x"), "level": "clash"})
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        log.exception("tick failed")

    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the multi-line traceback stays inside one line
    first, second = (json.loads(line) for line in lines)
    assert list(first)[:4] == ["ts", "level", "logger", "msg"]
    assert first["level"] == "INFO" and first["logger"] == "ledger_service.test"
    assert first["msg"] == "anchor 512 is final"
    assert first["tree_size"] == 512 and first["tx_hash"] == "0xab"
    assert first["path"] == "/x"            # not JSON-native: written as str()
    assert first["extra_level"] == "clash"  # an extra named like a core field is kept aside
    stamp = datetime.fromisoformat(first["ts"].replace("Z", "+00:00"))
    assert first["ts"].endswith("Z") and abs(stamp.timestamp() - time.time()) < 60
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exc"]


def test_reconfiguring_replaces_only_our_handler(restore_logging: None) -> None:
    root = logging.getLogger()
    others = [h for h in root.handlers if not isinstance(h, logging_setup._OwnHandler)]
    configure_logging("json", stream=io.StringIO())
    out = io.StringIO()
    configure_logging("text", stream=out)
    logging.getLogger("x").warning("plain")

    ours = [h for h in root.handlers if isinstance(h, logging_setup._OwnHandler)]
    assert len(ours) == 1
    assert [h for h in root.handlers if not isinstance(h, logging_setup._OwnHandler)] == others
    assert out.getvalue().rstrip().endswith("WARNING x: plain")


def test_server_loggers_are_routed_only_after_configuring(restore_logging: None) -> None:
    uv = logging.getLogger("uvicorn.error")
    uv.handlers[:] = [logging.NullHandler()]
    uv.propagate = False
    route_server_logs()  # not configured: leaves uvicorn alone
    assert not uv.propagate and len(uv.handlers) == 1

    out = io.StringIO()
    configure_logging("json", stream=out)
    route_server_logs()
    uv.error("Exception in ASGI application")

    assert uv.propagate and uv.handlers == []
    assert json.loads(out.getvalue())["logger"] == "uvicorn.error"


@pytest.mark.slow
def test_serve_writes_json_lines(tmp_path: Path, seeded_ledger: Any,
                                 device_factory: Any) -> None:
    """``carbon-ledger serve`` with LEDGER_LOG_FORMAT=json: what the service logs on start
    (its embedded chain forgot the previous run's anchor) and while anchoring is JSON."""
    from ledger_service.devchain import free_port

    data = tmp_path / "ledger"
    led = seeded_ledger(data_dir=data, chain="embedded", database_url=None)
    led.ingest([device_factory(led).signed()])
    led.anchor_tick(force=True)
    assert led.anchors()[-1].status == "final"
    led.engine.dispose()

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "CARBON_"))}
    env |= {"LEDGER_DATA_DIR": str(data), "LEDGER_LOG_FORMAT": "json",
            "LEDGER_ANCHOR_EVERY_SECONDS": "0.2"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "carbon-ledger"), "serve",
                             "--port", str(port), "--anchor-interval", "0.2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1].decode()
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
                if body["components"]["anchoring"]["anchored_tree_size"] == 1:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service did not re-anchor within 60 s"
            time.sleep(0.1)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)

    records = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    assert records, "no log lines"
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    by_logger = {r["logger"]: r for r in records}
    assert "no longer on chain" in by_logger["ledger_service.anchoring"]["msg"]
    assert by_logger["ledger_service.anchoring"]["level"] == "WARNING"
    assert any(r["logger"] == "ledger_service._internal.anchor_loop"
               and "is final" in r["msg"] for r in records)
