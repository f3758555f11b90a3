"""The review page's API: who may do what, CSRF, stale proposals, idempotent decisions, four eyes,
edit and undo, and decisions taking effect. Prefect is replaced at its edge by recording hooks."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from airlock.review import auth
from airlock.review.app import create_app
from airlock.review.effects import Hooks
from airlock.store import Store
from tests.review_seed import seed_queue


class Recorder:
    """Stands in for Prefect and the project's flows: records what the page asked for."""

    def __init__(self) -> None:
        self.resumed: list[str] = []
        self.followed: list[tuple[str, str]] = []

    def hooks(self) -> Hooks:
        return Hooks(resume=lambda flow_run_id, _input: self.resumed.append(flow_run_id) is None,
                     follow_up=lambda run_id, actor: self.followed.append((run_id, actor)))


@pytest.fixture
def page(store: Store) -> tuple[TestClient, Recorder, dict[str, str]]:
    recorder = Recorder()
    tokens = {name: auth.add_user(store, name, role, actor="test")
              for name, role in (("alice", "reviewer"), ("bob", "reviewer"), ("olga", "operator"))}
    return TestClient(create_app(store, recorder.hooks())), recorder, tokens


def login(client: TestClient, token: str) -> str:
    response = client.post("/api/login", json={"token": token})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf"])


def shown(client: TestClient, **filters: str) -> list[dict[str, Any]]:
    response = client.get("/api/items", params=filters)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_no_token_is_401(store: Store, page: tuple[TestClient, Recorder, dict[str, str]]) -> None:
    client, _, _ = page
    seed_queue(store, 2)
    assert client.get("/api/items").status_code == 401
    assert client.post("/api/decide", json={"decision": "approved", "items": [{"id": 1, "hash": "x"}]}
                       ).status_code == 401
    assert client.post("/api/login", json={"token": "alk_not-a-token"}).status_code == 401
    assert client.get("/api/items", headers={"authorization": "Bearer alk_wrong"}).status_code == 401
    assert store.decisions_for(store.list_runs()[0]["id"]) == []


def test_a_state_change_without_the_csrf_token_is_refused(
    store: Store, page: tuple[TestClient, Recorder, dict[str, str]]
) -> None:
    client, _, tokens = page
    run_id = seed_queue(store, 2)
    csrf = login(client, tokens["alice"])
    item = shown(client)[0]
    body = {"decision": "approved", "items": [{"id": item["id"], "hash": item["proposal_hash"]}]}
    refused = client.post("/api/decide", json=body)
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    assert client.post("/api/decide", json=body, headers={"x-csrf-token": "guess"}).status_code == 403
    cross = client.post("/api/decide", json=body, headers={"x-csrf-token": csrf, "origin": "http://evil.example"})
    assert cross.status_code == 403
    assert store.decisions_for(run_id) == []
    ok = client.post("/api/decide", json=body, headers={"x-csrf-token": csrf})
    assert ok.status_code == 200 and ok.json()["decided"] == [item["id"]]
    decision = store.decisions_for(run_id)[0]
    assert (decision["actor"], decision["source"], decision["proposal_hash"]) == (
        "alice", "review-page", item["proposal_hash"])


def test_a_reviewer_cannot_do_operator_actions(store: Store, page: tuple[TestClient, Recorder, dict[str, str]]
                                               ) -> None:
    client, _, tokens = page
    run_id = seed_queue(store, 1)
    letter = store.add_dead_letter(run_id=run_id, kind="record", stage="execute", record_ids=["R00000"],
                                   error_type="ToolError", error="boom", retryable=False, attempts=[], payload={})
    csrf = login(client, tokens["alice"])
    assert client.get("/api/deadletters").status_code == 403
    discard = client.post("/api/deadletters/discard", json={"ids": [letter], "reason": "noise"},
                          headers={"x-csrf-token": csrf})
    assert discard.status_code == 403
    assert store.get_dead_letter(letter)["status"] == "open"
    operator = {"authorization": f"Bearer {tokens['olga']}"}
    listed = client.get("/api/deadletters", headers=operator).json()["letters"]
    assert [(x["id"], x["error"], x["attempts"]) for x in listed] == [(letter, "boom", 0)]
    done = client.post("/api/deadletters/discard", json={"ids": [letter], "reason": "known bad row"},
                       headers=operator)
    assert done.status_code == 200
    assert store.get_dead_letter(letter)["resolved_by"] == "olga"
    assert any(e["kind"] == "deadletter.discarded" and e["actor"] == "olga" for e in store.audit_trail(run_id))


def test_a_stale_proposal_hash_is_refused(store: Store, page: tuple[TestClient, Recorder, dict[str, str]]) -> None:
    client, _, tokens = page
    run_id = seed_queue(store, 1)
    csrf = login(client, tokens["alice"])
    item = shown(client)[0]
    # Someone edits the proposal after alice's page showed it.
    store.edit_proposal(item["id"], item["proposal_hash"], {"country_code": "AT"}, actor="bob")
    stale = client.post("/api/decide", headers={"x-csrf-token": csrf},
                        json={"decision": "approved", "items": [{"id": item["id"], "hash": item["proposal_hash"]}]})
    assert stale.status_code == 409 and "changed since it was shown" in stale.json()["error"]
    assert store.decisions_for(run_id) == []
    stale_edit = client.post("/api/edit", headers={"x-csrf-token": csrf},
                             json={"id": item["id"], "hash": item["proposal_hash"], "edits": {"country_code": "CH"}})
    assert stale_edit.status_code == 409


def test_a_second_approval_changes_nothing(store: Store, page: tuple[TestClient, Recorder, dict[str, str]]) -> None:
    client, _, tokens = page
    run_id = seed_queue(store, 3)
    csrf = login(client, tokens["alice"])
    items = [{"id": i["id"], "hash": i["proposal_hash"]} for i in shown(client)]
    first = client.post("/api/decide", json={"decision": "approved", "items": items}, headers={"x-csrf-token": csrf})
    assert len(first.json()["decided"]) == 3
    login(client, tokens["bob"])
    again = client.post("/api/decide", json={"decision": "rejected", "items": items},
                        headers={"x-csrf-token": client.get("/api/me").json()["csrf"]})
    assert again.status_code == 200 and again.json() == {"decided": [], "skipped": 3, "runs": [], "actor": "bob"}
    decisions = store.decisions_for(run_id)
    assert len(decisions) == 3 and {d["actor"] for d in decisions} == {"alice"}
    assert {i["status"] for i in store.review_items_for(run_id=run_id, status=None)} == {"approved"}


def test_four_eyes_keeps_a_starter_from_approving_their_own_run(
    store: Store, page: tuple[TestClient, Recorder, dict[str, str]]
) -> None:
    client, _, tokens = page
    run_id = seed_queue(store, 2, started_by="alice", four_eyes=True)
    relaxed = seed_queue(store, 1, started_by="alice")
    csrf = login(client, tokens["alice"])
    items = shown(client, run=run_id[:8])
    refused = client.post("/api/decide", headers={"x-csrf-token": csrf}, json={
        "decision": "approved", "items": [{"id": items[0]["id"], "hash": items[0]["proposal_hash"]}]})
    assert refused.status_code == 409 and "four eyes" in refused.json()["error"]
    edit = client.post("/api/edit", headers={"x-csrf-token": csrf}, json={
        "id": items[0]["id"], "hash": items[0]["proposal_hash"], "edits": {"country_code": "AT"}})
    assert edit.status_code == 409
    assert store.proposals_for(run_id, [items[0]["record_id"]])[0]["proposal_hash"] == items[0]["proposal_hash"]
    rejected = client.post("/api/decide", headers={"x-csrf-token": csrf}, json={
        "decision": "rejected", "items": [{"id": items[1]["id"], "hash": items[1]["proposal_hash"]}]})
    assert rejected.status_code == 200
    own = shown(client, run=relaxed[:8])[0]
    assert client.post("/api/decide", headers={"x-csrf-token": csrf}, json={
        "decision": "approved", "items": [{"id": own["id"], "hash": own["proposal_hash"]}]}).status_code == 200
    bob = {"authorization": f"Bearer {tokens['bob']}"}
    assert client.post("/api/decide", headers=bob, json={
        "decision": "approved", "items": [{"id": items[0]["id"], "hash": items[0]["proposal_hash"]}]}
    ).status_code == 200
    assert [(d["record_id"], d["actor"], d["decision"]) for d in store.decisions_for(run_id)] == [
        (items[1]["record_id"], "alice", "rejected"), (items[0]["record_id"], "bob", "approved")]


def test_edit_then_approve_and_undo(store: Store, page: tuple[TestClient, Recorder, dict[str, str]]) -> None:
    client, _, tokens = page
    run_id = seed_queue(store, 2)
    csrf = login(client, tokens["alice"])
    first, second = shown(client)
    edited = client.post("/api/edit", headers={"x-csrf-token": csrf},
                         json={"id": first["id"], "hash": first["proposal_hash"], "edits": {"country_code": "AT"}})
    assert edited.status_code == 200, edited.text
    proposal = store.proposals_for(run_id, [first["record_id"]])[0]
    assert proposal["changes"]["country_code"]["after"] == "AT"
    assert proposal["changes"]["country_code"]["edited_by"] == "alice"
    decision = store.decisions_for(run_id)[0]
    assert decision["edits"] == {"country_code": "AT"} and decision["proposal_hash"] == edited.json()["hash"]
    assert client.post("/api/edit", headers={"x-csrf-token": csrf}, json={
        "id": second["id"], "hash": second["proposal_hash"], "edits": {"no_such_field": 1}}).status_code == 400
    undone = client.post("/api/undo", json={"ids": [first["id"]]}, headers={"x-csrf-token": csrf})
    assert undone.json() == {"undone": [first["id"]]}
    assert store.review_items_for(item_ids=[first["id"]])[0]["status"] == "pending"
    assert [d["decision"] for d in store.decisions_for(run_id)] == ["approved", "undone"]
    # What was carried out cannot be undone.
    store.decide([second["id"]], "rejected", actor="alice", source="test")
    store.mark_committed([second["id"]])
    assert client.post("/api/undo", json={"ids": [second["id"]]}, headers={"x-csrf-token": csrf}).status_code == 409


def test_decisions_take_effect_in_the_background(store: Store, page: tuple[TestClient, Recorder, dict[str, str]]
                                                 ) -> None:
    client, recorder, tokens = page
    finished = seed_queue(store, 2)
    waiting = seed_queue(store, 2, status="waiting_review")
    store.update_run(waiting, prefect_flow_run_id="f" * 36)
    bearer = {"authorization": f"Bearer {tokens['alice']}"}
    items = {run: client.get("/api/items", params={"run": run[:8]}, headers=bearer).json()["items"]
             for run in (finished, waiting)}

    def decide(item: dict[str, Any]) -> None:
        assert client.post("/api/decide", headers=bearer, json={
            "decision": "approved", "items": [{"id": item["id"], "hash": item["proposal_hash"]}]}).status_code == 200

    decide(items[finished][0])
    decide(items[waiting][0])
    effector = client.app.state.page.effector  # type: ignore[attr-defined]
    assert effector.wait_idle(30)
    assert recorder.followed == [(finished, "alice")]
    assert recorder.resumed == []  # one of its items is still pending: the paused run keeps waiting
    decide(items[waiting][1])
    assert effector.wait_idle(30)
    assert recorder.resumed == ["f" * 36]


def test_users_are_created_from_the_cli_and_the_cli_acts_as_the_token_user(
    airlock_env: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from airlock.cli import main
    from airlock.settings import Settings

    assert main(["users", "add", "root", "--role", "admin"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("alk_")
    store = Store.open(Settings().store_url)
    assert store.user_by_token_hash(auth.token_hash(token)) == {"name": "root", "role": "admin", "disabled": False}
    with store.tx() as connection:
        assert token not in str(connection.exec_driver_sql("SELECT * FROM users").all())
    # Now that users exist, the CLI needs a token.
    assert main(["users", "add", "rita", "--role", "reviewer"]) == 2
    assert "AIRLOCK_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("AIRLOCK_TOKEN", token)
    assert main(["users", "add", "rita", "--role", "reviewer"]) == 0
    rita = capsys.readouterr().out.strip().splitlines()[-1]
    monkeypatch.setenv("AIRLOCK_TOKEN", rita)
    assert main(["users", "add", "eve", "--role", "admin"]) == 2
    assert "rita is a reviewer; this needs the admin role" in capsys.readouterr().err
    run_id = seed_queue(store, 1, status="running")
    assert main(["review", "approve", "--run", run_id[:8], "--all"]) == 0
    assert "approved 1 item(s) as rita" in capsys.readouterr().out
    assert store.decisions_for(run_id)[0]["actor"] == "rita"
    assert main(["users", "list"]) == 0
    listing = capsys.readouterr().out
    assert "rita" in listing and "alk_" not in listing


def test_a_suspended_run_whose_window_closed_gets_a_follow_up_commit(store: Store) -> None:
    from airlock import review

    run_id = seed_queue(store, 1, status="waiting_review")
    store.update_run(run_id, prefect_flow_run_id="e" * 36)
    followed: list[str] = []

    def closed(_flow_run_id: str, _input: dict[str, Any]) -> bool:
        raise review.ReviewWindowClosed("its window closed")

    how = review.take_effect(store, [run_id], resume=closed, follow_up=followed.append, actor="alice")
    assert how == {run_id: "committed by a follow-up (its flow run is over)"} and followed == [run_id]
