"""The demo CRM: the business system the account-enrichment playbook writes to.

Its own database (SQLite by default, PostgreSQL in production), SQLAlchemy Core only. Two tables:
``accounts`` (the input columns plus the enriched ones) and ``applied_writes``, which records every
idempotency key in the same transaction as the write it belongs to. That is what makes a write
safe to retry: a key that is already there is answered ``duplicate`` and changes nothing.

Everything is bulk (one ``executemany`` per statement per call), because a run writes 100,000
accounts in a few calls, not in 100,000 round trips.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    MetaData,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, InterfaceError, NoSuchModuleError
from sqlalchemy.exc import OperationalError as SqlOperationalError
from sqlalchemy.pool import StaticPool

from airlock.bulk_insert import insert_rows
from airlock.errors import ConfigError, InfrastructureError

INPUT_COLUMNS = ("name", "website", "email", "phone", "country", "city", "employees", "industry", "description")
# ``industry`` is both: the raw text arrives with the account and the taxonomy label replaces it.
ENRICHED_COLUMNS = ("domain", "country_code", "phone_e164", "email_status", "industry", "employee_band")
WriteStatus = Literal["applied", "duplicate", "unchanged"]
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Rows per IN (...) query: well under SQLite's and PostgreSQL's bound-parameter limits.
ID_CHUNK = 5_000

metadata = MetaData()
# Text throughout: the CRM stores what it is given, a length limit would only turn a long value
# into a failed batch.
accounts = Table(
    "accounts",
    metadata,
    Column("id", Text, primary_key=True),
    *(Column(name, Text) for name in INPUT_COLUMNS),
    *(Column(name, Text) for name in ENRICHED_COLUMNS if name not in INPUT_COLUMNS),
    Column("updated_at", DateTime(timezone=True)),
)
applied_writes = Table(
    "applied_writes",
    metadata,
    Column("idempotency_key", Text, primary_key=True),
    Column("account_id", Text, nullable=False, index=True),
    Column("values_hash", Text, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class AccountChange:
    """One idempotent write: the enriched values of one account, under one key."""

    idempotency_key: str
    values_hash: str
    account_id: str
    domain: str | None = None
    country_code: str | None = None
    phone_e164: str | None = None
    email_status: str | None = None
    industry: str | None = None
    employee_band: str | None = None

    def values(self) -> dict[str, str | None]:
        return {column: getattr(self, column) for column in ENRICHED_COLUMNS}


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable URL)"


def _chunks(items: Sequence[str], size: int = ID_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class CrmDatabase:
    """The CRM at one SQLAlchemy URL. Holds one engine (a connection pool): build once, share."""

    def __init__(self, url: str, *, connect_args: Mapping[str, Any] | None = None) -> None:
        self.url = url
        try:
            self._engine = self._make_engine(make_url(url), dict(connect_args or {}))
        except (ArgumentError, NoSuchModuleError, ImportError) as error:
            raise ConfigError(f"CRM database URL {_redacted(url)} is not usable: {error}") from error

    @staticmethod
    def _make_engine(url: URL, connect_args: dict[str, Any]) -> Engine:
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")  # the driver this project ships (psycopg 3)
        if url.get_backend_name() != "sqlite":
            return create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        in_memory = url.database in (None, "", ":memory:") or "mode=memory" in str(url)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, **connect_args},
            **({"poolclass": StaticPool} if in_memory else {}),
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" below decide how transactions start; pysqlite's own
            # implicit BEGIN would defer the write lock and fail on upgrade under concurrency.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            # Writers take the lock up front, so the read-compare-write of apply_updates cannot
            # interleave with another writer; readers stay concurrent under WAL.
            write = connection.get_execution_options().get("crm_write", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @contextmanager
    def _connection(self, action: str, *, write: bool = False) -> Iterator[Connection]:
        """A connection inside one transaction; database trouble becomes a retryable error."""
        try:
            with self._engine.connect() as connection:
                if write:
                    connection.execution_options(crm_write=True)
                with connection.begin():
                    yield connection
        except IntegrityError as error:
            # Our own statements cannot collide; a concurrent writer (same key, same new account, the
            # same schema) got there first, and a retry will see what it wrote.
            raise InfrastructureError(f"CRM {action}: conflicting concurrent write: {error.orig}") from error
        except (SqlOperationalError, InterfaceError) as error:
            raise InfrastructureError(f"CRM {action}: database unavailable: {error.orig}") from error
        except DBAPIError as error:
            if error.connection_invalidated:
                raise InfrastructureError(f"CRM {action}: connection lost: {error.orig}") from error
            raise

    def create_schema(self) -> None:
        with self._connection("create schema", write=True) as connection:
            metadata.create_all(connection)
        self._schema_ready = True

    def _ensure_schema(self) -> None:
        # The demo CRM is created on its first write, so nothing needs the business system before then.
        if not getattr(self, "_schema_ready", False):
            self.create_schema()

    def dispose(self) -> None:
        self._engine.dispose()

    def _existing(self, connection: Connection, column: Any, values: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(values):
            found.update(connection.execute(select(column).where(column.in_(chunk))).scalars())
        return found

    def seed(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert the accounts (input columns) that are not in the CRM yet; returns how many."""
        by_id: dict[str, dict[str, Any]] = {}
        for row in rows:
            account_id = str(row["id"])
            by_id.setdefault(account_id, {"id": account_id, **{c: row.get(c) for c in INPUT_COLUMNS}})
        if not by_id:
            return 0
        with self._connection("seed", write=True) as connection:
            existing = self._existing(connection, accounts.c.id, list(by_id))
            new_rows = [row for account_id, row in by_id.items() if account_id not in existing]
            if new_rows:
                connection.execute(insert(accounts), new_rows)
        return len(new_rows)

    def get(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = list(dict.fromkeys(ids))
        result: dict[str, dict[str, Any]] = {}
        with self._connection("read") as connection:
            for chunk in _chunks(wanted):
                for row in connection.execute(select(accounts).where(accounts.c.id.in_(chunk))).mappings():
                    result[row["id"]] = dict(row)
        return result

    def count_applied(self) -> int:
        with self._connection("count") as connection:
            return int(connection.execute(select(func.count()).select_from(applied_writes)).scalar_one())

    def count_accounts(self) -> int:
        with self._connection("count") as connection:
            return int(connection.execute(select(func.count()).select_from(accounts)).scalar_one())

    def apply_updates(self, updates: Sequence[AccountChange]) -> list[WriteStatus]:
        """Apply a batch in one transaction; one status per update, in order.

        A key already recorded (earlier or in this batch) is ``duplicate`` and changes nothing.
        Otherwise values equal to the stored ones are ``unchanged``, different ones (or a missing
        account, which is inserted) ``applied``; both record the key, in the same transaction."""
        return [status for status, _ in self.apply_updates_with_before(updates)]

    def apply_updates_with_before(
        self, updates: Sequence[AccountChange]
    ) -> list[tuple[WriteStatus, dict[str, str | None] | None]]:
        """``apply_updates``, with the enriched values each applied update replaced (its before-image,
        read in the same transaction), so that a compensation can put them back."""
        if not updates:
            return []
        self._ensure_schema()
        now = datetime.now(UTC)
        with self._connection("apply updates", write=True) as connection:
            done = self._existing(
                connection, applied_writes.c.idempotency_key, list(dict.fromkeys(u.idempotency_key for u in updates))
            )
            current = self._current_values(connection, list(dict.fromkeys(u.account_id for u in updates)))
            in_db = set(current)
            statuses: list[tuple[WriteStatus, dict[str, str | None] | None]] = []
            changed: dict[str, dict[str, str | None]] = {}
            keys: list[dict[str, Any]] = []
            for change in updates:
                if change.idempotency_key in done:
                    statuses.append(("duplicate", None))
                    continue
                done.add(change.idempotency_key)
                values = change.values()
                before = current.get(change.account_id)
                if before == values:
                    statuses.append(("unchanged", None))
                else:
                    statuses.append(("applied", dict(before) if before is not None
                                     else dict.fromkeys(ENRICHED_COLUMNS)))
                    current[change.account_id] = changed[change.account_id] = values
                keys.append({"idempotency_key": change.idempotency_key, "account_id": change.account_id,
                             "values_hash": change.values_hash, "applied_at": now})
            self._write(connection, changed, in_db, now)
            insert_rows(connection, applied_writes, keys)
        return statuses

    def _current_values(self, connection: Connection, ids: Sequence[str]) -> dict[str, dict[str, str | None]]:
        columns = [accounts.c[name] for name in ENRICHED_COLUMNS]
        current: dict[str, dict[str, str | None]] = {}
        for chunk in _chunks(ids):
            for row in connection.execute(select(accounts.c.id, *columns).where(accounts.c.id.in_(chunk))):
                current[row[0]] = dict(zip(ENRICHED_COLUMNS, row[1:], strict=True))
        return current

    def _write(
        self, connection: Connection, changed: Mapping[str, Mapping[str, str | None]], in_db: set[str], now: datetime
    ) -> None:
        inserts = [{"id": i, **v, "updated_at": now} for i, v in changed.items() if i not in in_db]
        updates = [{"b_id": i, **{f"b_{k}": x for k, x in v.items()}, "b_updated_at": now}
                   for i, v in changed.items() if i in in_db]
        insert_rows(connection, accounts, inserts)
        if updates:
            statement = (
                update(accounts)
                .where(accounts.c.id == bindparam("b_id"))
                .values({name: bindparam(f"b_{name}") for name in (*ENRICHED_COLUMNS, "updated_at")})
            )
            connection.execute(statement, updates)
