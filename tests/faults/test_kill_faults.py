"""A worker killed with SIGKILL mid-run: before a write (1), and after a write succeeded but before
its outcome was recorded (2). Nothing half-done stays invisible: the run is reaped as crashed (and
the webhooks are told), then resumed on its pinned plan and snapshot without repeating work."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from airlock.cli import main
from systems.tickets import TicketService
from tests.conftest import sample_accounts, write_accounts
from tests.faults.conftest import check_run, only_run, start_worker, wait_for
from tests.integration.flow_helpers import store

pytestmark = pytest.mark.slow


def _kill_then_resume(source: Path, service: TicketService, killed: threading.Event, target: list[int],
                      webhook: list[dict[str, Any]], capsys: pytest.CaptureFixture[str],
                      shown_before: list[str]) -> tuple[str, dict[str, Any]]:
    worker = start_worker(["run", "playbooks/enrich_accounts.yaml", "--input", str(source), "--review-timeout", "0"],
                          AIRLOCK_LEASE_SECONDS="3")
    target.append(worker.pid)  # the hooks kill this process when the run reaches them
    try:
        wait_for(killed.is_set, "the worker to reach a ticket write")
        worker.wait(60)
        assert worker.returncode == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.communicate()
    service.faults.on_request = service.faults.after_apply = None
    run = only_run()
    assert run["status"] == "running"  # what a killed process leaves: visible, and reaped below
    before = {e["idempotency_key"]: e for e in store().effects_for(run["id"])}
    capsys.readouterr()
    assert main(["runs", "show", run["id"][:8]]) == 0
    shown_before.append(" ".join(capsys.readouterr().out.split()))
    assert "writes with an unknown outcome" in shown_before[-1]
    outcomes_before = store().progress(run["id"])
    # (`runs show` above may already have reaped it: every command does.)
    wait_for(lambda: store().get_run(run["id"])["lease_expires_at"] is None
             or store().get_run(run["id"])["lease_expires_at"] < store().now(), "the lease to run out")
    assert main(["runs", "reap"]) == 0
    assert store().get_run(run["id"])["status"] == "crashed"
    assert [n["airlock"]["event"] for n in webhook] == ["run.crashed"]
    assert any(e["kind"] == "run.crashed" for e in store().audit_trail(run["id"]))
    assert main(["runs", "resume", run["id"][:8]]) == 0
    assert store().get_run(run["id"])["status"] == "completed"
    # Completed work was not redone: stored (step, chunk) outcomes kept, recorded writes not resent.
    assert store().progress(run["id"]) >= outcomes_before
    after = {e["idempotency_key"]: e for e in store().effects_for(run["id"])}
    for key, effect in before.items():
        if effect["status"] in ("applied", "unchanged", "duplicate"):
            assert after[key]["attempts"] == effect["attempts"], key
    return run["id"], before


def test_1_sigkill_before_a_write(prefect_backend: None, backend: str, tickets_service: TicketService,
                                  tmp_path: Path, webhook: list[dict[str, Any]],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    killed, target = threading.Event(), []

    def kill_before_applying(_request: str, _body: dict[str, Any]) -> None:
        if not killed.is_set():
            os.kill(target[0], signal.SIGKILL)
            killed.set()
        raise ConnectionAbortedError("the worker is gone; this request is dropped unapplied")

    tickets_service.faults.on_request = kill_before_applying
    source = write_accounts(tmp_path / "in.csv", sample_accounts(40, start=400))
    run_id, before = _kill_then_resume(source, tickets_service, killed, target, webhook, capsys, [])
    check_run(run_id, 40, tickets_service)
    assert not [e for e in before.values() if e["target"] == "tickets" and e["status"] == "applied"]


def test_2_sigkill_after_the_write_and_before_its_outcome_was_recorded(
    prefect_backend: None, backend: str, tickets_service: TicketService, tmp_path: Path,
    webhook: list[dict[str, Any]], capsys: pytest.CaptureFixture[str],
) -> None:
    killed, target = threading.Event(), []
    applied: list[str] = []

    def kill_after_applying(key: str, _body: dict[str, Any]) -> None:
        if not killed.is_set():
            applied.append(key)
            os.kill(target[0], signal.SIGKILL)
            killed.set()
        raise ConnectionAbortedError("applied, but the answer never leaves")

    tickets_service.faults.after_apply = kill_after_applying
    source = write_accounts(tmp_path / "in.csv", sample_accounts(40, start=440))
    shown_before: list[str] = []
    run_id, before = _kill_then_resume(source, tickets_service, killed, target, webhook, capsys, shown_before)
    # The ledger had the intent, not the outcome (`runs show` listed it before the resume); the resume
    # sent the same key and got the ticket back.
    assert "to tickets" in shown_before[0]
    [key] = applied
    assert before[key]["status"] == "intent"
    assert store().existing_effects([key])[key]["status"] == "duplicate"
    check_run(run_id, 40, tickets_service)

