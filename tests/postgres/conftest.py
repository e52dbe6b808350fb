"""Fixtures for tests that need a PostgreSQL server (fresh databases, dropped afterwards)
and, for some, an anvil node.

The server is ``CARBON_TEST_DATABASE_URL`` (as for the rest of the suite), else a local
``postgresql+psycopg://postgres@127.0.0.1:5432/test``; tests are skipped, saying so,
when neither answers.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from ledger_service.devchain import start_node
from ledger_service.errors import ChainUnavailableError

LOCAL_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The URL of a PostgreSQL server database we may create databases from."""
    url = os.environ.get("CARBON_TEST_DATABASE_URL", LOCAL_SERVER)
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        pytest.fail(f"needs a PostgreSQL server (CARBON_TEST_DATABASE_URL), {url} does not "
                    f"answer: {exc.orig}", pytrace=False)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def fresh_pg(pg_server: str) -> Iterator[Callable[[], str]]:
    """Factory: the URL of a new empty database ``carbon_t_<random>``; all are dropped
    (with their connections) when the test ends."""
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"carbon_t_{secrets.token_hex(6)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(pg_server).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[Any]:
    """A fresh anvil node (from the pinned npm package), stopped afterwards."""
    try:
        node = start_node("anvil", tmp_path / "anvil")
    except ChainUnavailableError as exc:
        pytest.fail(f"needs anvil (npm ci): {exc}", pytrace=False)
    with node:
        yield node
