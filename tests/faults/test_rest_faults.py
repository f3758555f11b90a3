"""Faults of the REST business system: an answer lost after the service applied the write (3), and a
storm of 429 and 503 answers with retry-after (4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from systems.tickets import TicketService
from tests.conftest import sample_accounts, write_accounts
from tests.faults.conftest import check_run
from tests.integration.flow_helpers import run_flow, store

pytestmark = pytest.mark.slow


def test_3_a_timeout_after_the_service_applied_is_retried_with_the_same_key(
    prefect_backend: None, backend: str, tickets_service: TicketService, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRLOCK_HTTP_TIMEOUT", "0.3")
    tickets_service.faults.delay_after_apply, tickets_service.faults.delay_times = 1.0, 2
    state, report = run_flow(write_accounts(tmp_path / "in.csv", sample_accounts(40, start=200)), review_timeout=0)
    assert state.is_completed(), state
    check_run(report["run_id"], 40, tickets_service)
    assert tickets_service.faults.delay_times == 0  # both answers were lost after the ticket was opened
    tickets = tickets_service.store.tickets()
    assert tickets, "the sample must need tickets for this case to mean anything"
    ticket_effects = [e for e in store().effects_for(report["run_id"]) if e["target"] == "tickets"]
    # The retried keys came back as duplicates of the tickets already opened: one ticket each.
    assert any(e["status"] == "duplicate" for e in ticket_effects)


def test_4_a_storm_of_429_and_503_with_retry_after_loses_and_duplicates_nothing(
    prefect_backend: None, backend: str, tickets_service: TicketService, tmp_path: Path,
) -> None:
    # More refusals in a row than one call retries: the ledger retries the batch with the same keys.
    tickets_service.faults.answers = [(429, 0.02), (503, 0.01), (503, None)] * 5
    state, report = run_flow(write_accounts(tmp_path / "in.csv", sample_accounts(40, start=300)), review_timeout=0)
    assert state.is_completed(), state
    assert tickets_service.faults.answers == []
    check_run(report["run_id"], 40, tickets_service)
    assert report["counts"]["dead_lettered"] == 0
    assert tickets_service.store.tickets()
