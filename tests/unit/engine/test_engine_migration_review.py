"""Migration 0003_review on a store that already holds data at 0001: users and sessions appear,
decisions gain ``edits``, and decisions stay append-only (the column is added in place, so the
triggers survive)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from airlock.errors import ConfigError
from airlock.store import Store, make_engine
from airlock.store.db import _alembic_config, current_revision, head_revision


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    from tests.conftest import create_pg_database, drop_pg_database

    admin = request.getfixturevalue("pg_server")
    name = create_pg_database(admin)
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        drop_pg_database(admin, name)


def test_upgrading_an_old_store_keeps_decisions_append_only(url: str) -> None:
    engine = make_engine(url)
    try:
        command.upgrade(_alembic_config(engine), "0001")
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO runs (id, playbook, plan_hash, status, started_by, started_at, updated_at, input_hash,"
                " record_count, chunk_size, chunk_count, dry_run, review_timeout, spec_hashes) VALUES ('r1', 'p',"
                " 'h', 'completed', 'a', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'i', 1, 1, 1, false, 0, '{}')"))
            connection.execute(sa.text(
                "INSERT INTO review_items (run_id, record_id, proposal_hash, reasons, risk, status, created_at,"
                " committed) VALUES ('r1', 'A', 'h1', '[]', 0.5, 'approved', CURRENT_TIMESTAMP, false)"))
            connection.execute(sa.text(
                "INSERT INTO decisions (item_id, run_id, record_id, decision, actor, source, proposal_hash, note, at)"
                " SELECT id, 'r1', 'A', 'approved', 'alice', 'cli', 'h1', '', CURRENT_TIMESTAMP FROM review_items"))
        with pytest.raises(ConfigError, match=f"needs {head_revision()}: run 'airlock db upgrade'"):
            Store.open(url)  # an old store is upgraded on purpose, never silently
        command.upgrade(_alembic_config(engine), "head")
        assert current_revision(engine) == head_revision()
        store = Store.open(url)
        assert store.has_users() is False
        [decision] = store.decisions_for("r1")
        assert decision["actor"] == "alice" and decision["edits"] is None
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(sa.text("UPDATE decisions SET actor = 'mallory'"))
        store.engine.dispose()
    finally:
        engine.dispose()
