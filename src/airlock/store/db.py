"""Engines for the store, its Alembic migrations, and the schema-version check every command runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine, make_url

from airlock.errors import ConfigError, InfrastructureError

MIGRATIONS = Path(__file__).parent / "migrations"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(url: str) -> Engine:
    """An engine tuned for the backend: SQLite gets WAL and a busy timeout so the CLI in a second
    terminal can read while a run writes."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as error:
        raise ConfigError(f"not a database URL: {url!r}") from error
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed, json_serializer=_json_dumps, json_deserializer=orjson.loads,
            connect_args={"timeout": 30, "check_same_thread": False},
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(
        parsed, json_serializer=_json_dumps, json_deserializer=orjson.loads,
        pool_pre_ping=True, pool_size=8, max_overflow=8, connect_args={"connect_timeout": 10},
    )


def describe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


@contextmanager
def reachable(engine: Engine, what: str) -> Iterator[None]:
    """Turn 'cannot connect' into one clear, retryable error."""
    try:
        yield
    except sa.exc.OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise InfrastructureError(f"cannot reach the {what} at {describe_url(str(engine.url))}: {reason}") from error


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config(sa.create_engine("sqlite://"))).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with reachable(engine, "store"), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> str:
    with reachable(engine, "store"):
        command.upgrade(_alembic_config(engine), "head")
    return head_revision()


def ensure_schema(engine: Engine, *, create_if_empty: bool = True) -> None:
    """Every command calls this first. An empty store is created; an old one must be upgraded
    on purpose (``airlock db upgrade``), since that may be a shared production database."""
    revision = current_revision(engine)
    head = head_revision()
    if revision == head:
        return
    if revision is None and create_if_empty:
        with reachable(engine, "store"):
            existing = sa.inspect(engine).get_table_names()
        if not existing:
            upgrade(engine)
            return
    raise ConfigError(
        f"the store at {describe_url(str(engine.url))} is at schema {revision or 'unknown'}, "
        f"this Airlock needs {head}: run 'airlock db upgrade'"
    )
