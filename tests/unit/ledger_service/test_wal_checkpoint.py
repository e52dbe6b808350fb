"""WAL checkpoints happen on a thread of their own, not inside ingest's commits."""

from __future__ import annotations

import gc
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from ledger_service._internal.db import make_engine
from ledger_service._internal.wal_checkpoint import SAFETY_NET_PAGES, WalCheckpointer
from tests.conftest import Device


def _readings_in_main_file(db: Path, tmp: Path) -> int:
    """Readings held by the database file alone, without its WAL."""
    copy = tmp / "main-file-only.db"
    shutil.copyfile(db, copy)
    try:
        with sqlite3.connect(copy) as conn:
            return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
    except sqlite3.OperationalError:  # the schema itself is still only in the WAL
        return 0
    finally:
        copy.unlink()


def test_ingested_readings_reach_the_database_file_without_a_commit_checkpointing(
    ledger: Any, make_device: Callable[..., Device], tmp_path: Path,
) -> None:
    if ledger.engine.dialect.name != "sqlite":
        assert ledger._checkpointer is None  # PostgreSQL checkpoints by itself
        return
    with ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == SAFETY_NET_PAGES
    dev = make_device("intl")
    for _ in range(3):
        result = ledger.ingest([dev.signed() for _ in range(100)])
        assert result.accepted == 100
    # 300 readings are a few hundred WAL pages, far below the safety net: only the
    # thread can have copied them into the main file.
    db = Path(ledger.engine.url.database)
    deadline = time.monotonic() + 20
    while _readings_in_main_file(db, tmp_path) < 300:
        assert time.monotonic() < deadline, "the checkpoint thread never copied the WAL"
        time.sleep(0.05)
    assert ledger._checkpointer.checkpoints >= 1


def test_the_thread_ends_with_its_owner(tmp_path: Path) -> None:
    class Owner:
        pass

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    owner = Owner()
    checkpointer = WalCheckpointer.for_engine(engine, owner)
    assert checkpointer is not None
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    checkpointer.poke()
    thread = checkpointer._thread
    assert thread is not None and thread.is_alive()
    del owner
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()
    engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_no_thread_for_a_database_without_a_file(url: str) -> None:
    assert WalCheckpointer.for_engine(create_engine(url), object()) is None


def test_a_busy_or_missing_file_is_skipped_not_raised(tmp_path: Path) -> None:
    checkpointer = WalCheckpointer(str(tmp_path / "gone" / "x.db"))
    checkpointer.checkpoint()  # cannot open: logged, the next poke tries again
    assert checkpointer.checkpoints == 0
