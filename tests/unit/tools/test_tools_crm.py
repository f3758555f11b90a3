"""The demo CRM and crm_update_accounts: idempotent, transactional, bulk writes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text

from airlock.errors import ConfigError, InfrastructureError
from airlock.registry import Phase, SideEffect, ToolSpec
from systems.crm import AccountChange, CrmDatabase
from tools.crm import make_crm_update_accounts

ROWS = [
    {"id": "ACC-1", "name": "Nordwind GmbH", "website": "nordwind.de", "industry": "logistic", "employees": "120"},
    {"id": "ACC-2", "name": "Bluepeak Inc.", "email": "info@bluepeak.com", "country": "USA"},
]
VALUES = {"domain": "nordwind.de", "country_code": "DE", "phone_e164": "+49301234567", "email_status": "valid",
          "industry": "Logistics", "employee_band": "51-200"}


def change(key: str, account_id: str = "ACC-1", **values: str | None) -> AccountChange:
    return AccountChange(idempotency_key=key, values_hash=f"h-{key}", account_id=account_id, **{**VALUES, **values})


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[CrmDatabase]:
    database = CrmDatabase(f"sqlite:///{tmp_path / 'crm.db'}")
    database.create_schema()
    database.seed(ROWS)
    yield database
    database.dispose()


def test_seed_inserts_only_new_accounts(crm: CrmDatabase) -> None:
    assert crm.seed([*ROWS, {"id": "ACC-3", "name": "New"}, {"id": "ACC-3", "name": "Again"}]) == 1
    rows = crm.get(["ACC-1", "ACC-3", "ACC-404"])
    assert set(rows) == {"ACC-1", "ACC-3"}
    assert rows["ACC-1"]["industry"] == "logistic" and rows["ACC-1"]["domain"] is None
    assert rows["ACC-3"]["name"] == "New"
    assert crm.count_accounts() == 3


def test_applied_unchanged_duplicate(crm: CrmDatabase) -> None:
    assert crm.apply_updates([change("k1")]) == ["applied"]
    row = crm.get(["ACC-1"])["ACC-1"]
    assert {k: row[k] for k in VALUES} == VALUES
    assert row["name"] == "Nordwind GmbH" and row["updated_at"] is not None
    assert crm.apply_updates([change("k1")]) == ["duplicate"]
    assert crm.apply_updates([change("k2")]) == ["unchanged"]  # new key, same values
    assert crm.apply_updates([change("k1", industry="Retail")]) == ["duplicate"]  # a known key never writes
    assert crm.get(["ACC-1"])["ACC-1"]["industry"] == "Logistics"
    assert crm.count_applied() == 2  # k1 (applied) and k2 (unchanged)


def test_keys_are_recorded_with_their_hash(crm: CrmDatabase, tmp_path: Path) -> None:
    crm.apply_updates([change("k1"), change("k2", account_id="ACC-2")])
    engine = create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT idempotency_key, account_id, values_hash FROM applied_writes ORDER BY 1")
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("k1", "ACC-1", "h-k1"), ("k2", "ACC-2", "h-k2")]


def test_one_batch_with_every_case(crm: CrmDatabase) -> None:
    crm.apply_updates([change("old")])
    statuses = crm.apply_updates([
        change("old"),  # seen before
        change("a", account_id="ACC-2"),  # new values
        change("a", account_id="ACC-2"),  # same key twice in one batch
        change("b", account_id="ACC-2"),  # equal to what "a" just wrote
        change("c", account_id="ACC-9"),  # account the CRM does not have yet
        change("d", account_id="ACC-9", industry="Energy"),  # second change of the new account
    ])
    assert statuses == ["duplicate", "applied", "duplicate", "unchanged", "applied", "applied"]
    rows = crm.get(["ACC-2", "ACC-9"])
    assert rows["ACC-2"]["domain"] == "nordwind.de" and rows["ACC-2"]["name"] == "Bluepeak Inc."
    assert rows["ACC-9"]["industry"] == "Energy" and rows["ACC-9"]["name"] is None
    assert crm.count_applied() == 5


def test_a_failure_rolls_back_the_whole_batch(crm: CrmDatabase, tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    with engine.begin() as connection:
        connection.execute(text(
            "CREATE TRIGGER refuse BEFORE INSERT ON applied_writes WHEN NEW.idempotency_key = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ))
    engine.dispose()
    with pytest.raises(InfrastructureError) as caught:
        crm.apply_updates([change("fine", account_id="ACC-2"), change("boom", account_id="ACC-1")])
    assert caught.value.retryable
    assert crm.count_applied() == 0
    assert crm.get(["ACC-2"])["ACC-2"]["domain"] is None  # the first update was not kept either


def test_concurrent_writers_of_the_same_keys_apply_once(crm: CrmDatabase, tmp_path: Path) -> None:
    changes = [change(f"k{i}", account_id=f"ACC-{100 + i}", domain=f"d{i}.de") for i in range(300)]
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def write() -> None:
        other = CrmDatabase(f"sqlite:///{tmp_path / 'crm.db'}")
        try:
            results.append(list(other.apply_updates(changes)))
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)
        finally:
            other.dispose()

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(set(r) for r in results) == [{"applied"}] + [{"duplicate"}] * 3
    assert crm.count_applied() == 300


def test_unreachable_database_is_retryable(tmp_path: Path) -> None:
    missing = CrmDatabase(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'crm.db'}")
    tool = make_crm_update_accounts(missing)
    with pytest.raises(InfrastructureError) as caught:
        tool.call_batch([{"idempotency_key": "k", "values_hash": "h", "account_id": "ACC-1"}])
    assert caught.value.retryable


def test_postgresql_that_refuses_connections_is_retryable() -> None:
    # Nothing listens on port 9 here: the connection is refused at once.
    down = CrmDatabase("postgresql://crm@127.0.0.1:9/crm", connect_args={"connect_timeout": 2})
    with pytest.raises(InfrastructureError) as caught:
        down.apply_updates([change("k1")])
    assert caught.value.retryable
    with pytest.raises(InfrastructureError):
        down.get(["ACC-1"])


def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        CrmDatabase("nosuchdriver://x")


@pytest.fixture
def tool(crm: CrmDatabase) -> ToolSpec[Any, Any]:
    return make_crm_update_accounts(crm)


def test_tool_contract(tool: ToolSpec[Any, Any]) -> None:
    assert tool.name == "crm_update_accounts"
    assert tool.effect is SideEffect.WRITE and tool.batched
    assert tool.policy.phase is Phase.COMMIT
    assert "idempotency_key" not in tool.requires
    assert set(VALUES) <= set(tool.requires)
    assert tool.produces == ("account_id", "status", "before")


def test_tool_batch(tool: ToolSpec[Any, Any], crm: CrmDatabase) -> None:
    payloads = [
        {"idempotency_key": "t1", "values_hash": "h1", "account_id": "ACC-1", **VALUES},
        {"idempotency_key": "t2", "values_hash": "h2", "account_id": "ACC-2", "domain": "bluepeak.com"},
    ]
    first = tool.call_batch(payloads)
    assert [(r.account_id, r.status) for r in first] == [("ACC-1", "applied"), ("ACC-2", "applied")]
    # Each applied update reports what it replaced: the before-image a compensation writes back.
    assert first[0].before is not None and set(first[0].before) == set(VALUES) | {"domain"}
    again = tool.call_batch(payloads)
    assert [r.status for r in again] == ["duplicate", "duplicate"]
    assert [r.before for r in again] == [None, None]
    assert tool.call({**payloads[0], "idempotency_key": "t3"}).status == "unchanged"
    assert crm.get(["ACC-2"])["ACC-2"]["country_code"] is None


def test_bulk_write(tmp_path: Path) -> None:
    database = CrmDatabase(f"sqlite:///{tmp_path / 'bulk.db'}")
    database.create_schema()
    ids = [f"ACC-{i:06d}" for i in range(12_000)]  # more than one IN (...) chunk
    assert database.seed({"id": i, "name": f"Company {i}"} for i in ids) == len(ids)
    statuses = database.apply_updates([change(f"k-{i}", account_id=i) for i in ids])
    assert statuses.count("applied") == len(ids)
    assert database.apply_updates([change(f"k-{i}", account_id=i) for i in ids]).count("duplicate") == len(ids)
    assert database.count_applied() == len(ids)
    database.dispose()


@pytest.mark.pg
def test_postgresql(pg_server: str) -> None:
    """The same semantics on PostgreSQL, in a schema of its own on the shared server."""
    schema = f"crm_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    database = CrmDatabase(pg_server, connect_args={"options": f"-csearch_path={schema}"})
    try:
        database.create_schema()
        assert database.seed(ROWS) == 2
        assert database.apply_updates([change("k1"), change("k1"), change("k2", account_id="ACC-7")]) == [
            "applied", "duplicate", "applied"]
        assert database.apply_updates([change("k3")]) == ["unchanged"]
        assert database.count_applied() == 3 and database.count_accounts() == 3
        assert database.get(["ACC-1"])["ACC-1"]["industry"] == "Logistics"
        with psycopg.connect(pg_server, autocommit=True) as connection:
            connection.execute(f"""
                CREATE FUNCTION "{schema}".refuse() RETURNS trigger AS $$
                BEGIN
                    IF NEW.idempotency_key = 'boom' THEN
                        RAISE EXCEPTION 'refused' USING ERRCODE = 'unique_violation';
                    END IF;
                    RETURN NEW;
                END $$ LANGUAGE plpgsql;
                CREATE TRIGGER refuse BEFORE INSERT ON "{schema}".applied_writes
                    FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse();
            """)
        with pytest.raises(InfrastructureError):
            database.apply_updates([change("fine", account_id="ACC-2"), change("boom")])
        assert database.count_applied() == 3
        assert database.get(["ACC-2"])["ACC-2"]["domain"] is None
    finally:
        database.dispose()
        with psycopg.connect(pg_server, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
