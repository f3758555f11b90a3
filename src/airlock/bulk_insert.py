"""Inserting many rows of one table at once, for the store and the CRM.

SQLAlchemy's ``execute(insert(), rows)`` builds every row's parameters through the compiled
statement, which for the tens of thousands of rows of a large chunk costs more than the database's
own work. On SQLite the rows go to the driver's executemany instead, their values converted by the
bind processors SQLAlchemy would use (JSON, datetimes). PostgreSQL keeps SQLAlchemy's path, whose
batched multi-row INSERTs are what make it fast there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_UNSET = object()


def insert_rows(connection: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts of column values) into ``table`` in the caller's transaction."""
    if not rows:
        return
    if connection.dialect.name == "sqlite" and _insert_through_driver(connection, table, rows):
        return
    connection.execute(table.insert(), list(rows))


def _insert_through_driver(connection: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> bool:
    """Answers False, having done nothing, for rows it cannot take (differing keys, a column left to
    a Python-side default)."""
    names = tuple(rows[0])
    if any(len(row) != len(names) for row in rows) or not set(names) <= set(table.c.keys()):
        return False
    if any(column.default is not None for column in table.columns if column.name not in names):
        return False
    processors = [(name, _reusing_last(table.c[name].type._cached_bind_processor(connection.dialect)))
                  for name in names]
    try:
        params = [tuple([process(row[name]) if process else row[name] for name, process in processors])
                  for row in rows]
    except KeyError:  # the same number of keys, not the same keys
        return False
    quote = connection.dialect.identifier_preparer
    statement = (f"INSERT INTO {quote.format_table(table)} ({', '.join(quote.quote(name) for name in names)}) "
                 f"VALUES ({', '.join('?' * len(names))})")
    connection.exec_driver_sql(statement, params)
    return True


def _reusing_last(process: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """``process``, converting a value once when consecutive rows hold the very same object: a
    batch's rows share one timestamp, and formatting a datetime for SQLite takes microseconds."""
    if process is None:
        return None
    last: list[Any] = [_UNSET, None]

    def convert(value: Any) -> Any:
        if value is not last[0]:
            last[0], last[1] = value, process(value)
        return last[1]

    return convert
