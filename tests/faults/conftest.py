"""Fault injection: what every case shares.

Faults are injected at the edges only: the ticketing service's own fault hooks, a TCP proxy in front
of PostgreSQL, a worker process killed with SIGKILL, a module changed in a copy of the project. Every
case ends by checking record conservation and that neither business system holds a duplicate effect.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.report import build_report
from systems.tickets import TicketService
from tests.conftest import PROJECT
from tests.fakes.webhook import WebhookStub
from tests.integration.flow_helpers import assert_conserved, crm, store

AIRLOCK = str(Path(sys.executable).parent / "airlock")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def backend(request: pytest.FixtureRequest, airlock_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each case on SQLite and on PostgreSQL (its own store and CRM databases, dropped after)."""
    monkeypatch.setenv("AIRLOCK_CHUNK_SIZE", "20")
    if request.param == "postgresql":
        request.getfixturevalue("pg_databases")
    yield request.param


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """A stub chat webhook that keeps what it receives."""
    stub = WebhookStub()
    monkeypatch.setenv("AIRLOCK_WEBHOOKS", stub.url)
    yield stub.received
    stub.close()


def check_run(run_id: str, expected: int, service: TicketService) -> dict[str, Any]:
    """Every input record in exactly one outcome; nothing applied twice in the CRM or the ticketing
    service; and what each system holds is exactly what the ledger says was done."""
    report = build_report(store(), run_id, with_records=True)
    assert_conserved(report, expected)
    # The business systems hold the writes of every run in the store: compare against all of them.
    effects = [e for run in store().list_runs(1000) for e in store().effects_for(run["id"])]
    done = ("applied", "unchanged", "duplicate", "compensated")
    crm_keys = {e["idempotency_key"] for e in effects if e["target"] == "crm" and e["status"] in done}
    assert crm().count_applied() == len(crm_keys), "the CRM holds a write the ledger does not know, or lacks one"
    # Every record written has its CRM key applied exactly once; none is written twice under two keys.
    live_crm = [e["record_id"] for e in effects
                if e["write_id"] == "crm" and e["status"] in ("applied", "unchanged", "duplicate")]
    assert len(live_crm) == len(set(live_crm))
    tickets = service.store.tickets()
    per_account = [t["account_id"] for t in tickets if t["status"] == "open"]
    assert len(per_account) == len(set(per_account)), "an account got two open tickets"
    ticket_keys = {e["idempotency_key"] for e in effects
                   if e["target"] == "tickets" and e["status"] in ("applied", "duplicate")}
    assert service.store.count_created() == len(tickets) == len(ticket_keys), \
        "a ticket was opened twice, or without the ledger"
    settled = {r["id"] for r in report["records"] if r["outcome"] in ("written", "unchanged")}
    in_run = {r["id"] for r in report["records"]}
    assert {t["account_id"] for t in tickets} & in_run <= settled, "a ticket for a record that was not written"
    return report


def only_run() -> dict[str, Any]:
    [run] = store().list_runs()
    return run


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test's AIRLOCK_* environment for a worker process, on the session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING",
               PREFECT_API_URL=str(PREFECT_API_URL.value()), PREFECT_HOME=os.environ.get("PREFECT_HOME", ""))
    env.update(extra)
    return env


def start_worker(args: list[str], *, cwd: Path = PROJECT, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([AIRLOCK, *args], cwd=cwd, env=subprocess_env(**extra), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_worker(args: list[str], *, cwd: Path = PROJECT, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIRLOCK, *args], cwd=cwd, env=subprocess_env(**extra), text=True, capture_output=True,
                          timeout=300, check=False)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Poll until ``condition`` holds (the deadline only stops a hung test; nothing is timed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def project_copy(tmp_path: Path) -> Path:
    """A copy of the application folders to change a module in; the data is shared read-only."""
    copy = tmp_path / "project"
    for folder in ("flows", "tasks", "tools", "expectations", "systems", "playbooks"):
        shutil.copytree(PROJECT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "data").symlink_to(PROJECT / "data")
    return copy

