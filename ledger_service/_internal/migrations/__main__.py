"""Developer commands for the schema migrations (no ``alembic.ini`` needed)::

    python -m ledger_service._internal.migrations URL upgrade [REV]
    python -m ledger_service._internal.migrations URL downgrade REV
    python -m ledger_service._internal.migrations URL current
    python -m ledger_service._internal.migrations URL sql [REV]        # print upgrade SQL
    python -m ledger_service._internal.migrations URL revision -m "add x"  # autogenerate

``revision`` compares ``metadata`` with a database at head (use a scratch one) and
writes the next numbered script into ``versions/``; read it before committing.
"""

from __future__ import annotations

import argparse
import sys

from alembic import command
from alembic.script import ScriptDirectory

from ..db import make_engine
from . import alembic_config, current_revision, downgrade, upgrade


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger_service._internal.migrations",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="SQLAlchemy database URL")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("upgrade").add_argument("revision", nargs="?", default="head")
    sub.add_parser("downgrade").add_argument("revision")
    sub.add_parser("current")
    sub.add_parser("sql").add_argument("revision", nargs="?", default="head")
    rev = sub.add_parser("revision")
    rev.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)

    if args.command == "sql":
        command.upgrade(alembic_config(url=args.url), args.revision, sql=True)
        return 0
    engine = make_engine(args.url)
    try:
        if args.command == "upgrade":
            upgrade(engine, args.revision)
        elif args.command == "downgrade":
            downgrade(engine, args.revision)
        elif args.command == "current":
            with engine.connect() as conn:
                sys.stdout.write(f"{current_revision(conn) or '(none)'}\n")
        else:
            head = ScriptDirectory.from_config(alembic_config()).get_current_head() or "0000"
            with engine.begin() as conn:
                command.revision(alembic_config(conn), message=args.message, autogenerate=True,
                                 rev_id=f"{int(head) + 1:04d}")
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
