"""Review decisions take effect: a waiting run resumes and commits them; after a run stopped
waiting, a follow-up commit does."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from airlock import review
from airlock.cli import main
from airlock.errors import StateConflict
from airlock.orchestration import resume_paused_run
from tests.conftest import sample_accounts, write_accounts
from tests.integration.flow_helpers import assert_conserved, crm, run_flow, store

pytestmark = pytest.mark.slow


def _wait_for_status(run_id: str, status: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if store().get_run(run_id)["status"] == status:
                return
        except Exception:  # noqa: BLE001 - the run is not pinned yet
            pass
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} never reached {status}")


def test_decisions_in_the_store_resume_the_waiting_run(prefect_backend: None, airlock_env: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_REVIEW_POLL_INTERVAL", "1")
    run_id = str(uuid.uuid4())
    source = write_accounts(tmp_path / "in.csv", sample_accounts(150, start=300))
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(run_flow(source, review_timeout=120, run_id=run_id)))
    worker.start()
    _wait_for_status(run_id, "waiting_review")
    items = store().review_items_for(run_id=run_id)
    assert len(items) >= 4
    approve, reject = [i["id"] for i in items[:3]], [i["id"] for i in items[3:]]
    review.decide(store(), approve, "approved", actor="alice", source="cli")
    decided = review.decide(store(), reject, "rejected", actor="alice", source="cli")
    how = review.take_effect(store(), decided.runs, resume=resume_paused_run, follow_up=lambda r: None,
                             actor="alice")
    assert how == {run_id: "resumed"}
    worker.join(90)
    state, report = outcome[0]
    assert state.is_completed()
    assert_conserved(report, 150)
    assert report["counts"]["pending_review"] == 0
    by_id = {r["id"]: r["outcome"] for r in report["records"]}
    approved_records = [i["record_id"] for i in items[:3]]
    assert {by_id[r] for r in approved_records} <= {"written", "unchanged"}
    assert all(by_id[i["record_id"]] == "rejected" for i in items[3:])
    assert set(crm().get(approved_records)) == set(approved_records)
    decisions = store().decisions_for(run_id)
    assert {d["actor"] for d in decisions} == {"alice"} and len(decisions) == len(items)


def test_decisions_after_the_run_stopped_waiting_are_committed(
    prefect_backend: None, airlock_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, report = run_flow(write_accounts(tmp_path / "in.csv", sample_accounts(100, start=700)), review_timeout=0)
    pending = report["counts"]["pending_review"]
    assert pending > 0
    applied = crm().count_applied()
    assert main(["review", "approve", "--run", report["run_id"][:8], "--all", "--note", "looked fine"]) == 0
    assert f"approved {pending} item(s) as tester" in capsys.readouterr().out
    after = __import__("airlock.report").report.build_report(store(), report["run_id"], with_records=True)
    assert_conserved(after, 100)
    assert after["counts"]["pending_review"] == 0
    assert crm().count_applied() > applied
    assert any(e["kind"] == "review.follow_up_commit" for e in store().audit_trail(report["run_id"]))
    # Approving again changes nothing.
    assert main(["review", "approve", "--run", report["run_id"][:8], "--all"]) == 0
    assert "nothing pending" in capsys.readouterr().out


def test_an_approval_whose_write_conflicts_goes_back_to_a_named_reviewer(
    prefect_backend: None, airlock_env: Path, tmp_path: Path
) -> None:
    from airlock.ledger import idempotency_key
    from airlock.plan import Plan

    _, report = run_flow(write_accounts(tmp_path / "in.csv", sample_accounts(60, start=900)), review_timeout=0)
    run_id = report["run_id"]
    item = store().review_items_for(run_id=run_id)[0]
    plan = Plan.model_validate(store().get_plan(store().get_run(run_id)["plan_hash"]))
    # The same key already carried other values (a tool that answered differently on a retry).
    store().record_intents([{
        "idempotency_key": idempotency_key(run_id, plan.hash, plan.writes[0], item["record_id"]), "run_id": run_id,
        "record_id": item["record_id"], "write_id": plan.writes[0].id, "target": plan.writes[0].target,
        "tool": plan.writes[0].tool, "values_hash": "something-else",
    }])
    assert main(["review", "approve", str(item["id"])]) == 0
    reopened = store().review_items_for(run_id=run_id, item_ids=[item["id"]])
    assert reopened and "idempotency_conflict" in reopened[0]["reasons"]
    assert reopened[0]["committed"] is False
    assert review.needs_named_approver(reopened[0])
    outcomes = {r["record_id"]: r["outcome"] for r in store().record_outcomes(run_id)}
    assert outcomes[item["record_id"]] == "pending_review"
    assert item["record_id"] not in crm().get([item["record_id"]])
    assert any(e["kind"] == "review.reopened" and e["subject"] == str(item["id"])
               for e in store().audit_trail(run_id))
    # The dashboard cannot approve it: it needs someone identified.
    with pytest.raises(StateConflict):
        review.decide(store(), [item["id"]], "approved", actor=review.DASHBOARD_ACTOR, source="prefect-ui")
