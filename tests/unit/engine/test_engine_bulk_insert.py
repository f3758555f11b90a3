"""airlock.bulk_insert: rows inserted through the driver read back as SQLAlchemy's own insert gives them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from airlock.bulk_insert import insert_rows


def _table(metadata: sa.MetaData, name: str) -> sa.Table:
    return sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("at", sa.DateTime(timezone=True), nullable=False), sa.Column("data", sa.JSON),
                    sa.Column("note", sa.String, nullable=True))


def test_driver_rows_read_back_as_sqlalchemys_with_shared_and_distinct_timestamps() -> None:
    engine = sa.create_engine("sqlite://")
    metadata = sa.MetaData()
    ours, theirs = _table(metadata, "ours"), _table(metadata, "theirs")
    metadata.create_all(engine)
    now = datetime(2026, 11, 28, 9, 30, 15, 123456, tzinfo=UTC)
    rows: list[dict[str, Any]] = [
        {"id": i, "at": now if i % 3 else now + timedelta(seconds=i), "data": {"n": i, "tags": ["a", "ü"]},
         "note": None if i % 2 else f"row {i}"}
        for i in range(50)
    ]
    with engine.begin() as connection:
        insert_rows(connection, ours, rows)
        connection.execute(theirs.insert(), rows)
        read = [connection.execute(sa.select(t).order_by(t.c.id)).all() for t in (ours, theirs)]
    assert len(read[0]) == 50 and read[0] == read[1]


def test_a_column_left_to_a_python_default_goes_through_sqlalchemy() -> None:
    engine = sa.create_engine("sqlite://")
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("kind", sa.String, default="plain"))
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        insert_rows(connection, table, [{"id": 1}, {"id": 2}])
        insert_rows(connection, table, [])
        assert connection.execute(sa.select(table).order_by(table.c.id)).all() == [(1, "plain"), (2, "plain")]
