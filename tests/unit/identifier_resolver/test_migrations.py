"""The resolver's Alembic migrations make exactly the declared schema, on SQLite and on
PostgreSQL (a fresh database per test, dropped afterwards), adopt a database made by
``create_all`` before migrations existed, and leave a node that works."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from carbon_protocol.suites import PrivateKey
from identifier_resolver import records as R
from identifier_resolver._internal import migrations
from identifier_resolver._internal.db import make_engine, metadata
from identifier_resolver.resolver import Resolver
from identifier_resolver.settings import ResolverSettings

PG_SERVER = os.environ.get("CARBON_TEST_DATABASE_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Factory: the URL of a new empty database of the parametrised backend."""
    made: list[str] = []
    admin: Engine | None = None
    if request.param == "postgresql":
        admin = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT",
                              connect_args={"connect_timeout": 3})
        try:
            with admin.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            pytest.fail(f"needs a PostgreSQL server (CARBON_TEST_DATABASE_URL): {exc.orig}",
                        pytrace=False)

    def make() -> str:
        if admin is None:
            return f"sqlite:///{tmp_path / f'db{len(made)}.sqlite'}"
        name = f"carbon_r_{secrets.token_hex(6)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)

    yield make
    if admin is not None:
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return migrations.schema_differences(conn)


@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_upgrade_makes_the_declared_schema_and_downgrade_removes_it(
        database: Callable[[], str]) -> None:
    engine = make_engine(database())
    try:
        migrations.upgrade(engine)
        assert _differences(engine) == []
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == (
                set(metadata.tables) | {migrations.VERSION_TABLE})
            assert migrations.current_revision(conn) == migrations.head_revision()
        migrations.upgrade(engine)  # at head: nothing to do, nothing fails
        migrations.downgrade(engine)
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == {migrations.VERSION_TABLE}
        migrations.upgrade(engine)
        assert _differences(engine) == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_a_database_made_by_create_all_is_adopted(database: Callable[[], str]) -> None:
    engine = make_engine(database())
    try:
        metadata.create_all(engine)
        migrations.upgrade(engine)
        with engine.connect() as conn:
            assert migrations.current_revision(conn) == migrations.head_revision()
        assert _differences(engine) == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_a_node_runs_on_the_migrated_schema(database: Callable[[], str], tmp_path: Path
                                            ) -> None:
    owner = PrivateKey.generate("intl")
    settings = ResolverSettings(
        data_dir=tmp_path / "node", root=True, log_suite="intl", chain="none",
        database_url=database(), log_prefix="9100.1",
        trust_root_key=f"intl:{owner.public_key().hex()}")
    node = Resolver.open(settings)
    try:
        node.bootstrap(owner, ["86.1000.9"], url="http://root.test")
        ident = "86.1000.9/ent.pg"
        node.submit([R.new_record(ident, "enterprise", ident, owner, data={"name": "PG"})])
        assert node.resolve(ident).record.record.data["name"] == "PG"
        with node.engine.connect() as conn:
            assert migrations.current_revision(conn) == migrations.head_revision()
    finally:
        node.engine.dispose()
