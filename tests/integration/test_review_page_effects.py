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
