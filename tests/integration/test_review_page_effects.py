"""The review page with the project's real hooks: decisions on a run that stopped waiting are
committed by a follow-up run in the page's background worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from airlock.report import build_report
from airlock.review import auth
from airlock.review.app import create_app
from airlock.settings import Settings
from tests.conftest import sample_accounts, write_accounts
from tests.integration.flow_helpers import assert_conserved, crm, run_flow, store

pytestmark = pytest.mark.slow


def test_a_decision_on_a_finished_run_is_committed_by_a_follow_up(prefect_backend: None, airlock_env: Path,
                                                                  tmp_path: Path) -> None:
    from airlock.cli.review import page_hooks

    _, report = run_flow(write_accounts(tmp_path / "in.csv", sample_accounts(80, start=1500)), review_timeout=0)
    run_id = report["run_id"]
    token = auth.add_user(store(), "rosa", "reviewer", actor="admin")
    client = TestClient(create_app(store(), page_hooks(Settings())))
    bearer = {"authorization": f"Bearer {token}"}
    items = client.get("/api/items", params={"run": run_id[:8]}, headers=bearer).json()["items"]
    assert len(items) == report["counts"]["pending_review"] > 1
    approve, reject = items[:-1], items[-1]
    for decision, chosen in (("approved", approve), ("rejected", [reject])):
        response = client.post("/api/decide", headers=bearer, json={
            "decision": decision, "items": [{"id": i["id"], "hash": i["proposal_hash"]} for i in chosen]})
        assert response.status_code == 200 and len(response.json()["decided"]) == len(chosen)
    assert client.app.state.page.effector.wait_idle(120)  # type: ignore[attr-defined]

    after = build_report(store(), run_id, with_records=True)
    assert_conserved(after, 80)
    assert after["counts"]["pending_review"] == 0
    outcomes = {r["id"]: r["outcome"] for r in after["records"]}
    assert outcomes[reject["record_id"]] == "rejected"
    written = [i["record_id"] for i in approve]
    assert {outcomes[r] for r in written} <= {"written", "unchanged"}
    assert set(crm().get(written)) == set(written)
    follow_ups = store().audit_trail(run_id, "review.follow_up_commit")
    assert follow_ups and {e["actor"] for e in follow_ups} == {"rosa"}


def test_an_operator_replays_a_dead_letter_from_the_page(prefect_backend: None, airlock_env: Path,
                                                         tmp_path: Path) -> None:
    from airlock.cli.review import page_hooks

    rows = sample_accounts(40, start=1700)
    rows[5]["phone"] = "5" * 5000  # refused by the phone tool every time: a dead letter
    _, report = run_flow(write_accounts(tmp_path / "in.csv", rows), review_timeout=0)
    [letter] = store().dead_letters_for(run_id=report["run_id"])
    client = TestClient(create_app(store(), page_hooks(Settings())))
    reviewer = {"authorization": f"Bearer {auth.add_user(store(), 'rosa', 'reviewer', actor='admin')}"}
    operator = {"authorization": f"Bearer {auth.add_user(store(), 'otto', 'operator', actor='admin')}"}
    body = {"ids": [letter["id"]], "reason": "the phone tool was fixed"}
    assert client.post("/api/deadletters/replay", json=body, headers=reviewer).status_code == 403
    assert client.post("/api/deadletters/replay", json={"ids": [letter["id"]]}, headers=operator
                       ).status_code == 400  # a replay needs a reason
    replayed = client.post("/api/deadletters/replay", json=body, headers=operator)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["replayed"][str(letter["id"])]["failed_again"] == 1
    started = store().audit_trail(report["run_id"], "deadletter.replay_started")
    assert [(e["actor"], e["data"]["reason"]) for e in started] == [("otto", "the phone tool was fixed")]
    assert_conserved(build_report(store(), report["run_id"], with_records=True), 40)
