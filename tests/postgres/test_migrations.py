"""The Alembic migrations make exactly the declared schema, on SQLite and PostgreSQL, and
two processes starting at once on an empty database both come up on it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, select

from ledger_service._internal import migrations
from ledger_service._internal.db import api_keys, log_state, make_engine, metadata
from ledger_service._internal.log_store import MerkleLog
from ledger_service.auth import KeyCreate, Role, authenticate, create_key

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Engine]:
    """Factory: an engine on a new empty database of the parametrised backend."""
    engines: list[Engine] = []

    def make() -> Engine:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / f'db{len(engines)}.sqlite'}"
        else:
            url = request.getfixturevalue("fresh_pg")()
        engines.append(make_engine(url))
        return engines[-1]

    yield make  # type: ignore[misc]
    for engine in engines:
        engine.dispose()


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def _differences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return migrations.schema_differences(conn)


@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_upgrade_head_matches_metadata(database: Callable[[], Engine]) -> None:
    engine = database()
    migrations.upgrade(engine)
    assert _differences(engine) == []
    assert _tables(engine) == set(metadata.tables) | {"alembic_version"}
    with engine.connect() as conn:
        assert migrations.current_revision(conn) == migrations.head_revision()


@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_downgrade_base_then_upgrade_head(database: Callable[[], Engine]) -> None:
    engine = database()
    migrations.upgrade(engine)
    migrations.downgrade(engine, "base")
    assert _tables(engine) <= {"alembic_version"}
    with engine.connect() as conn:
        assert migrations.current_revision(conn) is None
    migrations.upgrade(engine)
    assert _differences(engine) == []
    migrations.upgrade(engine)  # at head already: nothing to do
    assert _differences(engine) == []


@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_database_made_by_create_all_is_adopted(database: Callable[[], Engine]) -> None:
    """A database from before migrations (``metadata.create_all``) is stamped, not
    re-created: its rows stay."""
    engine = database()
    metadata.create_all(engine)
    with engine.begin() as conn:
        MerkleLog("86.1000.1/log.main", "sm").ensure_state(conn)
    migrations.upgrade(engine)
    with engine.connect() as conn:
        assert migrations.current_revision(conn) == migrations.head_revision()
        assert conn.execute(select(log_state.c.log_id)).scalar_one() == "86.1000.1/log.main"
    assert _differences(engine) == []


@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_0006_adds_the_key_party_and_keeps_the_keys(database: Callable[[], Engine]) -> None:
    """Down to 0005 the party column goes and the keys stay (SQLite rebuilds the table in
    a batch); back up, the old keys have no party and a new one stores its own."""
    engine = database()
    migrations.upgrade(engine)
    with engine.begin() as conn:
        old = create_key(conn, KeyCreate(role=Role.BANK, party="86.1000.1/bank.a"))
    migrations.downgrade(engine, "0005")
    with engine.connect() as conn:
        assert migrations.current_revision(conn) == "0005"
        assert "party" not in {c["name"] for c in inspect(conn).get_columns("api_keys")}
        assert conn.execute(select(api_keys.c.key_id)).scalars().all() == [old.key_id]
    migrations.upgrade(engine)
    assert _differences(engine) == []
    with engine.begin() as conn:
        assert authenticate(conn, f"Bearer {old.api_key}").party is None
        new = create_key(conn, KeyCreate(role=Role.VERIFIER, party="86.1000.1/vfr.b"))
        assert authenticate(conn, f"Bearer {new.api_key}").party == "86.1000.1/vfr.b"


# A process that upgrades the database at URL, then makes the log state row, as
# ``Ledger.__init__`` does; it waits for "go" on stdin after its imports so that all
# start together. NOLOCK=1 removes the migration lock (to see the race it prevents).
_STARTER = """
import os, sys
from ledger_service._internal import db, migrations
from ledger_service._internal.db import make_engine
from ledger_service._internal.log_store import MerkleLog
if os.environ.get("NOLOCK"):
    db.advisory_xact_lock = lambda conn, name: None
engine = make_engine(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
migrations.upgrade(engine)
with engine.begin() as conn:
    MerkleLog("86.1000.1/log.main", "sm").ensure_state(conn)
engine.dispose()
"""


def start_together(url: str, count: int, **env: str) -> list[tuple[int, str]]:
    """Run ``count`` starter processes released at the same moment; (exit code, stderr)
    of each."""
    procs = [subprocess.Popen([sys.executable, "-c", _STARTER, url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **env})
             for _ in range(count)]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.communicate()[1]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        results.append((proc.returncode, err[-2000:]))
    return results


@pytest.mark.slow
@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_simultaneous_starts_on_an_empty_database(database: Callable[[], Engine]) -> None:
    """Four processes start at once on an empty database: the migration lock lets one
    create the schema, the others find it at head, and the log state row is made once."""
    engine = database()
    results = start_together(engine.url.render_as_string(hide_password=False), 4)
    assert results == [(0, "")] * 4
    assert _differences(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(log_state.c.tree_size)).scalars().all() == [0]
