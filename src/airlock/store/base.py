"""The shared core of the store's repositories: the engine, a clock, bulk helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from airlock.bulk_insert import insert_rows
from airlock.store.db import reachable


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything Airlock stores is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class StoreBase:
    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.now = clock

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        with reachable(self.engine, "store"), self.engine.begin() as connection:
            yield connection

    def _insert_many(self, table: sa.Table, rows: Sequence[dict[str, Any]],
                     connection: Connection | None = None) -> None:
        if not rows:
            return
        if connection is not None:
            insert_rows(connection, table, rows)
            return
        with self.tx() as conn:
            insert_rows(conn, table, rows)

    def _rows(self, statement: sa.Executable) -> list[dict[str, Any]]:
        with self.tx() as connection:
            return [
                {k: as_utc(v) if isinstance(v, datetime) else v for k, v in row._mapping.items()}
                for row in connection.execute(statement)
            ]
