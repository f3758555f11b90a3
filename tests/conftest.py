"""Shared fixtures: an isolated Airlock state folder per test, a session-wide Prefect test
harness, and PostgreSQL databases created and dropped per test (never touching the server's
configuration)."""

from __future__ import annotations

import csv
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.settings import EPHEMERAL_STARTUP_SECONDS
from airlock.store import Store
from systems.tickets import TicketService

PROJECT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("AIRLOCK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EPHEMERAL_STARTUP_SECONDS))


@pytest.fixture
def tickets_service(tmp_path: Path) -> Iterator[TicketService]:
    """The real ticketing service (systems/tickets.py) on a free 127.0.0.1 port, with its fault hooks."""
    service = TicketService(tmp_path / "tickets.db").start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def airlock_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tickets_service: TicketService) -> Path:
    """AIRLOCK_* pointing into this test's tmp folder (SQLite store and CRM) and its ticketing service."""
    home = tmp_path / "state"
    monkeypatch.setenv("AIRLOCK_HOME", str(home))
    monkeypatch.setenv("AIRLOCK_TICKETS_URL", tickets_service.url)
    monkeypatch.setenv("AIRLOCK_PROJECT_DIR", str(PROJECT))
    monkeypatch.setenv("AIRLOCK_USER", "tester")
    monkeypatch.delenv("AIRLOCK_DATABASE_URL", raising=False)
    monkeypatch.delenv("AIRLOCK_CRM_URL", raising=False)
    return home


@pytest.fixture(scope="session")
def prefect_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One Prefect test server for the whole session (entering it takes seconds)."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


def _pg_available() -> bool:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_server() -> str:
    if not _pg_available():
        if os.environ.get("AIRLOCK_REQUIRE_PG") == "1":
            pytest.fail(f"AIRLOCK_REQUIRE_PG=1 but PostgreSQL is not reachable at {PG_ADMIN}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN} (set AIRLOCK_REQUIRE_PG=1 to make this a failure)")
    return PG_ADMIN


def create_pg_database(admin_url: str) -> str:
    import psycopg

    name = f"airlock_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_pg_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def store_on(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The store on the database a fixture's param names ("sqlite", or "postgresql": a database of its
    own on the shared server, dropped after). Store tests parametrize over both with this."""
    if request.param == "sqlite":
        yield Store.open(f"sqlite:///{tmp_path / 'store.db'}")
        return
    admin = request.getfixturevalue("pg_server")
    name = create_pg_database(admin)
    opened = Store.open(f"{admin.rsplit('/', 1)[0]}/{name}")
    try:
        yield opened
    finally:
        opened.engine.dispose()
        drop_pg_database(admin, name)


@pytest.fixture
def pg_databases(pg_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A fresh store database and CRM database on the shared server, dropped afterwards."""
    names = [create_pg_database(pg_server), create_pg_database(pg_server)]
    base = pg_server.rsplit("/", 1)[0]
    store_url, crm_url = (f"{base}/{n}" for n in names)
    monkeypatch.setenv("AIRLOCK_DATABASE_URL", store_url)
    monkeypatch.setenv("AIRLOCK_CRM_URL", crm_url)
    try:
        yield store_url, crm_url
    finally:
        _dispose_engines()
        for name in names:
            drop_pg_database(pg_server, name)


def _dispose_engines() -> None:
    """Close pooled connections of per-process resources so the databases can be dropped."""
    from tasks import resources as resources_module

    for built in resources_module._built.values():
        built.store.engine.dispose()


def write_accounts(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def sample_accounts(count: int, start: int = 0) -> list[dict[str, str]]:
    with (PROJECT / "data" / "accounts.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return rows[start:start + count]
