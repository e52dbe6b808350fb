"""Background WAL checkpoints for a SQLite ledger, off the commit path.

In WAL mode SQLite copies the log back into the database file (a checkpoint) from
inside whichever commit pushes the WAL past ``wal_autocheckpoint`` pages, and that
commit waits for the copy and its fsync. On ingest that was every second or third
batch, growing from 20 to 45 ms per checkpoint as the file grew, about a twelfth of
ingest's wall time. Here a thread checkpoints after commits instead, while the writer
goes on (``PASSIVE`` never blocks writers or readers, and SQLite releases the GIL
while it copies), and commits only checkpoint themselves if the thread falls far
behind: ``wal_autocheckpoint`` stays on as a safety net, at :data:`SAFETY_NET_PAGES`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from typing import Any

from sqlalchemy import Engine, event

__all__ = ["WalCheckpointer", "SAFETY_NET_PAGES"]

SAFETY_NET_PAGES = 10_000
"""WAL pages (4 KiB each, about 40 MB) at which a commit checkpoints by itself."""

log = logging.getLogger(__name__)


class WalCheckpointer:
    """Checkpoints one SQLite file's WAL on a thread of its own, when poked.

    :meth:`poke` after a commit; the thread starts on the first poke, checkpoints
    once per wake-up however many pokes arrived, and holds no connection while idle.
    It stops when its owner (the object passed to :meth:`for_engine`) is collected.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.checkpoints = 0
        """How many checkpoints ran (for tests and metrics)."""

    @classmethod
    def for_engine(cls, engine: Engine, owner: object) -> WalCheckpointer | None:
        """A checkpointer for ``engine``'s database file, or ``None`` if it has none.

        Connections ``engine`` opens from now on leave checkpoints to the thread up to
        :data:`SAFETY_NET_PAGES`; call this before the engine's first connection.
        """
        path = engine.url.database
        if engine.dialect.name != "sqlite" or not path or path == ":memory:":
            return None

        @event.listens_for(engine, "connect")
        def _leave_checkpoints_to_the_thread(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}")

        checkpointer = cls(path)
        weakref.finalize(owner, checkpointer.stop)
        return checkpointer

    def poke(self) -> None:
        """Ask for a checkpoint soon; returns at once."""
        if self._thread is None:
            with self._start_lock:
                if self._thread is None and not self._stopped.is_set():
                    self._thread = threading.Thread(
                        target=self._run, name="sqlite-wal-checkpoint", daemon=True)
                    self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Let the thread end after any checkpoint in progress."""
        self._stopped.set()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopped.is_set():
                return
            self.checkpoint()

    def checkpoint(self) -> None:
        """One ``PASSIVE`` checkpoint, now, on a connection of its own."""
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, timeout=0)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            finally:
                conn.close()
            self.checkpoints += 1
        except sqlite3.Error as exc:
            # Busy (another checkpoint is running) or the file is gone: the next poke
            # tries again, and the safety net bounds the WAL meanwhile.
            log.debug("WAL checkpoint of %s skipped: %s", self._path, exc)
