"""Approving a paused run from the Prefect dashboard, through the same REST endpoints its resume
dialog calls: decisions are audited as the dashboard's, invalid input changes nothing, four eyes
are kept, and reviewers are told (webhook) when the run starts waiting."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airlock import review
from airlock.orchestration import resume_paused_run
from tests.conftest import PROJECT, sample_accounts, write_accounts
from tests.fakes.webhook import WebhookStub
from tests.integration.flow_helpers import assert_conserved, run_flow, store

pytestmark = pytest.mark.slow


@pytest.fixture
def webhook() -> Iterator[tuple[list[dict[str, Any]], str]]:
    stub = WebhookStub()
    yield stub.received, stub.url
    stub.close()


def _api() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value()).rstrip("/")


def _paused(run_id: str, pause: int = 1, seconds: float = 120) -> str:
    """Wait until the run is paused in Prefect with its ``pause``-th form; returns the flow run id."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            flow_run_id = store().get_run(run_id)["prefect_flow_run_id"]
            state = httpx.get(f"{_api()}/flow_runs/{flow_run_id}").json()["state"]
            form = httpx.get(f"{_api()}/flow_runs/{flow_run_id}/input/paused-{pause}-schema")
            if state["type"] == "PAUSED" and form.status_code == 200:
                return str(flow_run_id)
        except Exception:  # noqa: BLE001 - not pinned or not paused yet
            pass
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} never paused (pause {pause})")


def _start(source: Path, **params: Any) -> tuple[str, threading.Thread, list[Any]]:
    run_id = str(uuid.uuid4())
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(run_flow(source, run_id=run_id, **params)))
    worker.start()
    return run_id, worker, outcome


def test_the_dashboard_resume_form_approves_and_invalid_input_writes_nothing(
    prefect_backend: None, airlock_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    webhook: tuple[list[dict[str, Any]], str],
) -> None:
    received, url = webhook
    monkeypatch.setenv("AIRLOCK_REVIEW_POLL_INTERVAL", "1")
    monkeypatch.setenv("AIRLOCK_WEBHOOKS", url)
    monkeypatch.setenv("AIRLOCK_REVIEW_URL", "http://review.example:8765")
    run_id, worker, outcome = _start(write_accounts(tmp_path / "in.csv", sample_accounts(120, start=500)),
                                     review_timeout=300)
    flow_run_id = _paused(run_id)
    pending = store().review_items_for(run_id=run_id)
    assert pending

    # Reviewers were told, once, with the counts, the reasons and a link to the page.
    [notice] = received
    assert notice["airlock"]["event"] == "review.waiting"
    assert notice["airlock"]["fields"]["pending"] == len(pending)
    assert notice["airlock"]["fields"]["run"] == run_id
    assert notice["airlock"]["link"] == f"http://review.example:8765/?run={run_id[:8]}"
    assert "waits for review" in notice["text"]

    # What the dashboard's dialog renders: the form and its description.
    schema = httpx.get(f"{_api()}/flow_runs/{flow_run_id}/input/paused-1-schema").json()
    assert {"approve_all", "reject_ids", "note"} <= set(schema["properties"])
    description = httpx.get(f"{_api()}/flow_runs/{flow_run_id}/input/paused-1-description").json()
    assert "http://review.example:8765" in description

    invalid = httpx.post(f"{_api()}/flow_runs/{flow_run_id}/resume",
                         json={"run_input": {"approve_all": {"not": "a bool"}, "reject_ids": "nope"}})
    assert invalid.json()["status"] != "ACCEPT"
    time.sleep(2)  # two poll intervals: a resume that had gone through would have been taken by now
    assert httpx.get(f"{_api()}/flow_runs/{flow_run_id}").json()["state"]["type"] == "PAUSED"
    assert store().decisions_for(run_id) == []
    assert len(store().review_items_for(run_id=run_id)) == len(pending)

    reject = pending[0]["record_id"]
    accepted = httpx.post(f"{_api()}/flow_runs/{flow_run_id}/resume", json={"run_input": {
        "approve_all": True, "reject_ids": [reject, "no-such-record"], "note": "checked in the dashboard"}})
    assert accepted.json()["status"] == "ACCEPT", accepted.text
    worker.join(120)
    state, report = outcome[0]
    assert state.is_completed()
    assert_conserved(report, 120)
    assert report["counts"]["pending_review"] == 0
    decisions = store().decisions_for(run_id)
    assert {(d["actor"], d["source"]) for d in decisions} == {(review.DASHBOARD_ACTOR, "prefect-ui")}
    assert {d["record_id"]: d["decision"] for d in decisions}[reject] == "rejected"
    assert len(decisions) == len(pending)
    approved = store().audit_trail(run_id, "review.approved")
    assert len(approved) == len(pending) - 1 and {e["actor"] for e in approved} == {review.DASHBOARD_ACTOR}
    resumed = [e for e in store().audit_trail(run_id) if e["kind"] == "review.resumed"]
    assert resumed[-1]["data"]["unknown_ids"] == ["no-such-record"]


def test_four_eyes_refuses_the_dashboards_approval_and_pauses_again(
    prefect_backend: None, airlock_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRLOCK_REVIEW_POLL_INTERVAL", "1")
    strict = tmp_path / "strict.yaml"
    strict.write_text((PROJECT / "playbooks" / "enrich_accounts.yaml").read_text().replace(
        "policy:\n", "policy:\n  four_eyes: true\n", 1))
    run_id, worker, outcome = _start(write_accounts(tmp_path / "in.csv", sample_accounts(80, start=620)),
                                     review_timeout=300, playbook=str(strict))
    flow_run_id = _paused(run_id)
    pending = store().review_items_for(run_id=run_id)
    assert httpx.post(f"{_api()}/flow_runs/{flow_run_id}/resume",
                      json={"run_input": {"approve_all": True}}).json()["status"] == "ACCEPT"
    _paused(run_id, pause=2)
    assert store().decisions_for(run_id) == []
    description = httpx.get(f"{_api()}/flow_runs/{flow_run_id}/input/paused-2-description").json()
    assert f"{len(pending)} approval(s) from this form were refused" in description
    assert "review page" in description
    assert any(e["kind"] == "review.dashboard_refused" for e in store().audit_trail(run_id))

    # The starter may not approve; someone else, identified, may.
    with pytest.raises(review.StateConflict):
        review.decide(store(), [i["id"] for i in pending], "approved", actor="tester", source="cli")
    decided = review.decide(store(), [i["id"] for i in pending], "approved", actor="bob", source="cli")
    assert review.take_effect(store(), decided.runs, resume=resume_paused_run, follow_up=lambda r: None,
                              actor="bob") == {run_id: "resumed"}
    worker.join(120)
    state, report = outcome[0]
    assert state.is_completed() and report["counts"]["pending_review"] == 0
    assert {d["actor"] for d in store().decisions_for(run_id)} == {"bob"}
