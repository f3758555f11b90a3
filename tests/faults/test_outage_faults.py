"""PostgreSQL unreachable for 30 s mid-run (5) and a compensation that fails (10), on PostgreSQL
behind a TCP proxy the test controls (the shared server is never stopped)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from airlock import deadletter
from airlock.cli import main
from systems.tickets import TicketService
from tests.conftest import sample_accounts, write_accounts
from tests.fakes.tcp_proxy import TcpProxy
from tests.faults.conftest import check_run, wait_for
from tests.integration.flow_helpers import crm, run_flow, store

pytestmark = [pytest.mark.slow, pytest.mark.pg]
OUTAGE_SECONDS = 30


@pytest.fixture
def proxy() -> Any:
    running = TcpProxy("127.0.0.1", 5432)
    yield running
    running.close()


def _through(proxy: TcpProxy, url: str) -> str:
    return url.replace(":5432/", f":{proxy.port}/")


def test_5_postgresql_unreachable_for_30_seconds_mid_run_loses_nothing(
    prefect_backend: None, airlock_env: Path, pg_databases: tuple[str, str], tickets_service: TicketService,
    proxy: TcpProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    store_url, crm_url = pg_databases
    monkeypatch.setenv("AIRLOCK_DATABASE_URL", _through(proxy, store_url))
    monkeypatch.setenv("AIRLOCK_CRM_URL", _through(proxy, crm_url))
    monkeypatch.setenv("AIRLOCK_CHUNK_SIZE", "20")
    monkeypatch.setenv("AIRLOCK_LEASE_SECONDS", "3")
    went_down, came_up = threading.Event(), threading.Event()

    def heal() -> None:
        proxy.up()
        came_up.set()

    def outage(_request: str, _body: dict[str, Any]) -> None:
        # Mid-run: the first ticket is being opened, so the CRM has been written and the store is
        # about to record the outcome.
        if not went_down.is_set():
            proxy.down()
            went_down.set()
            threading.Timer(OUTAGE_SECONDS, heal).start()

    tickets_service.faults.on_request = outage
    source = write_accounts(tmp_path / "in.csv", sample_accounts(40, start=820))
    outcome: list[Any] = []

    def first_attempt() -> None:
        try:
            outcome.append(run_flow(source, review_timeout=0, run_id="5a5a5a5a-0000-4000-8000-000000000005"))
        except Exception as error:  # noqa: BLE001 - the store may be unreachable when the flow reports
            outcome.append(error)

    worker = threading.Thread(target=first_attempt)
    worker.start()
    worker.join(300)
    assert went_down.is_set()
    # Wait out the outage, then recover the run the way an operator would.
    wait_for(came_up.is_set, "the outage to end", OUTAGE_SECONDS + 60)
    tickets_service.faults.on_request = None
    run_id = "5a5a5a5a-0000-4000-8000-000000000005"
    run = store().get_run(run_id)
    if run["status"] != "completed":
        wait_for(lambda: store().get_run(run_id)["lease_expires_at"] is None
                 or store().get_run(run_id)["lease_expires_at"] < store().now(), "the lease to run out")
        assert main(["runs", "reap"]) == 0
        assert store().get_run(run_id)["status"] in ("crashed", "failed")
        assert main(["runs", "resume", run_id]) == 0
        # Chunks that were dead-lettered during the outage are replayed, once.
        if deadletter.list_letters(store(), run_id=run_id):
            assert main(["dlq", "replay", "--all", "--run", run_id, "--reason", "database is back"]) == 0
    report = check_run(run_id, 40, tickets_service)
    assert report["counts"]["dead_lettered"] == 0
    assert store().get_run(run_id)["status"] == "completed"
    # The ticket opened as the database went away had no recorded outcome; the recovery sent its key
    # again and the service answered with the ticket it had opened.
    ticket_effects = [e for e in store().effects_for(run_id) if e["target"] == "tickets"]
    assert any(e["status"] == "duplicate" for e in ticket_effects)


def test_10_a_compensation_that_fails_goes_to_the_dead_letter_queue(
    prefect_backend: None, airlock_env: Path, pg_databases: tuple[str, str], tickets_service: TicketService,
    proxy: TcpProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, crm_url = pg_databases
    monkeypatch.setenv("AIRLOCK_CRM_URL", _through(proxy, crm_url))
    rows = sample_accounts(18, start=870)  # one chunk: the CRM is written for all before any ticket
    tickets_service.faults.refuse_accounts = {r["id"] for r in rows}
    # The ticketing service refuses, and the CRM goes down before the ledger can undo its update.
    tickets_service.faults.on_request = lambda _request, _body: proxy.down()
    state, report = run_flow(write_accounts(tmp_path / "in.csv", rows), review_timeout=0)
    assert state.is_completed(), state
    proxy.up()
    tickets_service.faults.on_request = None
    run_id = report["run_id"]
    check_run(run_id, 18, tickets_service)
    refused = deadletter.list_letters(store(), run_id=run_id, step_id="tickets")
    failed_undo = deadletter.list_letters(store(), run_id=run_id, step_id="crm")
    assert refused and {letter["stage"] for letter in refused} == {"commit"}
    assert len(failed_undo) == len(refused) and {letter["stage"] for letter in failed_undo} == {"compensate"}
    first = failed_undo[0]
    [record_id] = first["record_ids"]
    changed = crm().get([record_id])[record_id]
    assert {k: changed[k] for k in first["payload"]["before_image"]} != first["payload"]["before_image"]
    effects = {e["write_id"]: e for e in store().effects_for(run_id) if e["record_id"] == record_id}
    assert effects["crm"]["status"] == "applied" and effects["crm~compensate"]["status"] == "failed"

    # The operator replays the failed compensations (a selection: step crm), then the refused writes.
    assert main(["dlq", "replay", "--all", "--run", run_id, "--step", "crm", "--reason", "CRM is back"]) == 0
    restored = crm().get([record_id])[record_id]
    assert {k: restored[k] for k in first["payload"]["before_image"]} == first["payload"]["before_image"]
    tickets_service.faults.refuse_accounts = set()
    assert main(["dlq", "replay", "--all", "--run", run_id, "--step", "tickets", "--reason", "fixed"]) == 0
    report = check_run(run_id, 18, tickets_service)
    assert report["counts"]["dead_lettered"] == 0
    assert len(tickets_service.store.tickets(record_id)) == 1
    assert deadletter.list_letters(store(), run_id=run_id) == []
