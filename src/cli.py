"""`inkwell serve | worker | migrate | rebuild-read-models [--check] | promote-admin EMAIL |
purge-idempotency`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from src import server
from src.settings import Settings

# The migrations ship inside the package (src/migrations), so an installed wheel migrates from
# any directory; Alembic finds them as a package resource, not through a path to a checkout.
MIGRATIONS = "src:migrations"


def alembic_config(database_url: str) -> AlembicConfig:
    """Alembic's configuration, built in code: nothing is read from alembic.ini (that file is
    for developers' `alembic revision` in a checkout)."""
    config = AlembicConfig()
    config.set_main_option("script_location", MIGRATIONS)
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    alembic_command.upgrade(alembic_config(database_url), revision)
    if make_url(database_url).get_backend_name() == "sqlite":
        _persist_wal_mode(database_url)


def _persist_wal_mode(database_url: str) -> None:
    """Leave a migrated SQLite database in WAL mode (the mode is stored in the file).

    Every connection of the service asks for WAL when it opens; switching a database *into* WAL
    needs it to itself, so on a database still in rollback mode the first connections opened
    together (a request's and the outbox runner's, at start) could fail at once with "database
    is locked" — the first requests after `make run` on a fresh database answered 503. Once
    the file is in WAL, asking again is a no-op that takes no lock.
    """
    database = make_url(database_url).database
    if not database or database == ":memory:":
        return
    uri = database.startswith("file:")
    with contextlib.closing(sqlite3.connect(database, timeout=30, uri=uri)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def prepare_multiprocess_metrics(settings: Settings) -> None:
    """With several workers, make prometheus-client aggregate them through a shared folder.

    prometheus-client decides at import time, from `PROMETHEUS_MULTIPROC_DIR` in the process
    environment, whether samples go to files; the workers inherit the variable from here. The
    folder is emptied first: files left by an earlier run would be counted again.
    """
    folder = settings.prometheus_multiproc_dir
    if folder is None and settings.web_concurrency > 1:
        folder = tempfile.mkdtemp(prefix="inkwell-metrics-")
    if folder is None:
        return
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def serve(settings: Settings) -> None:
    prepare_multiprocess_metrics(settings)
    if settings.is_sqlite and settings.database_url == settings.effective_read_database_url:
        # The embedded default migrates itself; real databases are migrated by `inkwell migrate`
        # (a Kubernetes Job / compose service), never by every replica racing at start-up.
        migrate(settings.database_url)
    # SIGTERM drains before uvicorn's graceful shutdown: see src/probes/lifecycle.py.
    # The server's limits (head size, timeouts, connections): see src/server.py.
    server.serve(settings)


async def _rebuild(settings: Settings, check: bool) -> int:
    from src.core.db.engines import create_engine
    from src.read_models import rebuild_read_models

    # Set-based rebuilds of large tables may legitimately run longer than a request may.
    unbounded = settings.model_copy(update={"db_command_timeout_seconds": None})
    engine = create_engine(settings.database_url, unbounded, "write")
    try:
        report = await rebuild_read_models(engine, check=check)
    finally:
        await engine.dispose()
    for table, count in report.rows.items():
        print(f"{table}: {count} rows")
    if check:
        for lines in report.differences.values():
            for line in lines:
                print(line)
        print("read models match the write tables" if report.clean else "read models DIFFER")
        return 0 if report.clean else 1
    return 0


async def _promote_admin(settings: Settings, email: str) -> int:
    from src.core.db.engines import create_engine
    from src.core.db.uow import SqlUnitOfWork, command_transaction
    from src.main import build_dispatcher, build_recorder
    from src.slices.users.commands import PromoteAdmin, PromoteAdminCommand
    from src.slices.users.errors import UserNotFound

    engine = create_engine(settings.database_url, settings, "write")
    try:
        async with command_transaction(
            SqlUnitOfWork(engine, build_dispatcher(), (build_recorder(),))
        ) as uow:
            await PromoteAdmin(uow).execute(PromoteAdminCommand(email))
    except UserNotFound:
        print(f"no user with e-mail {email}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    print(f"{email} is now an admin")
    return 0


async def _purge_idempotency(settings: Settings) -> int:
    from src.core.db.engines import create_engine
    from src.middleware.idempotency.store import purge_expired

    engine = create_engine(settings.database_url, settings, "write")
    try:
        removed = await purge_expired(engine)
    finally:
        await engine.dispose()
    print(f"removed {removed} expired idempotency records")
    return 0


def configuration_errors(error: ValidationError) -> str:
    """What is wrong with the environment, one variable a line, without a traceback."""
    lines = ["inkwell: invalid configuration"]
    for problem in error.errors():
        name = "_".join(str(part) for part in problem["loc"]).upper() or "(settings)"
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"  {name}: {message}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inkwell", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP server (uvicorn)")
    commands.add_parser(
        "worker", help="relay the outbox to Redis and deliver events to handlers (REDIS_URL)"
    )
    migrate_parser = commands.add_parser("migrate", help="apply database migrations")
    migrate_parser.add_argument("revision", nargs="?", default="head")
    rebuild_parser = commands.add_parser(
        "rebuild-read-models", help="re-project the read tables from the write tables"
    )
    rebuild_parser.add_argument(
        "--check", action="store_true", help="only compare; exit 1 if the read models differ"
    )
    promote_parser = commands.add_parser("promote-admin", help="give a user the admin role")
    promote_parser.add_argument("email")
    commands.add_parser(
        "purge-idempotency", help="delete expired idempotency records (safe while serving)"
    )
    args = parser.parse_args(argv)

    try:
        settings = Settings()
    except ValidationError as error:
        print(configuration_errors(error), file=sys.stderr)
        return 2
    if args.command == "serve":
        serve(settings)
        return 0
    if args.command == "worker":
        if not settings.redis_url:
            print(
                "inkwell worker needs REDIS_URL; without Redis, inkwell serve delivers the "
                "events itself",
                file=sys.stderr,
            )
            return 2
        from src.worker import run_worker

        return run_worker(settings)
    if args.command == "migrate":
        migrate(settings.database_url, args.revision)
        return 0
    if args.command == "rebuild-read-models":
        return asyncio.run(_rebuild(settings, args.check))
    if args.command == "promote-admin":
        return asyncio.run(_promote_admin(settings, args.email))
    if args.command == "purge-idempotency":
        return asyncio.run(_purge_idempotency(settings))
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
