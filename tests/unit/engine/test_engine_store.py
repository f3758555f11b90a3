"""The store on a real SQLite file: the append-only audit trail, review decisions, dead-letter claims,
stored step outcomes and the run report's conservation check."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airlock import deadletter, review
from airlock.errors import ConfigError, NotFound, StateConflict, UserError
from airlock.report import build_report
from airlock.store import Store
from airlock.store.schema import audit_events

MakeRun = Callable[..., None]


def add_items(store: Store, run_id: str, record_ids: list[str], reasons: list[str] | None = None) -> list[int]:
    store.save_proposals(run_id, [
        {"record_id": rid, "chunk_no": 0, "changes": {"domain": {"before": None, "after": f"{rid}.com"}},
         "proposal_hash": f"hash-{rid}", "verdict": "review", "reasons": reasons or ["low_confidence:domain"],
         "outcome": "pending_review"}
        for rid in record_ids
    ])
    store.add_review_items([
        {"run_id": run_id, "record_id": rid, "proposal_hash": f"hash-{rid}", "reasons": reasons or ["x"], "risk": 0.5}
        for rid in record_ids
    ])
    return [row["id"] for row in store.review_items_for(run_id=run_id)]


def add_letter(store: Store, run_id: str, record_ids: list[str]) -> int:
    return store.add_dead_letter(run_id=run_id, kind="record", stage="execute", step_id="country", chunk_no=0,
                                 record_ids=record_ids, tool="clean_country", spec_hash="abc",
                                 error_type="TransientToolError", error="timeout", retryable=True, attempts=[],
                                 payload={"input": {"country": "x"}})


# -- audit trail ------------------------------------------------------------------------------------

@pytest.mark.parametrize("statement", ["UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"])
def test_the_audit_trail_refuses_update_and_delete(store: Store, statement: str) -> None:
    store.audit("run.started", actor="alice", run_id="r1", subject="enrich", data={"records": 3})
    with pytest.raises(sa.exc.DBAPIError, match="audit_events is append-only"), store.tx() as connection:
        connection.execute(sa.text(statement))
    [event] = store.audit_trail("r1")
    assert (event["actor"], event["kind"], event["subject"], event["data"]) == (
        "alice", "run.started", "enrich", {"records": 3})


def test_decisions_are_append_only_too(store: Store, make_run: MakeRun) -> None:
    make_run(store, "r1")
    [item] = add_items(store, "r1", ["A1"])
    store.decide([item], "approved", actor="alice", source="cli")
    for statement in ("UPDATE decisions SET actor = 'mallory'", "DELETE FROM decisions"):
        with pytest.raises(sa.exc.DBAPIError, match="decisions is append-only"), store.tx() as connection:
            connection.execute(sa.text(statement))
    assert [d["actor"] for d in store.decisions_for("r1")] == ["alice"]


def test_audit_events_keep_their_order_and_filter_by_kind(store: Store) -> None:
    store.audit_many([{"kind": "a", "actor": "x", "run_id": "r1"}, {"kind": "b", "actor": "y", "run_id": "r1"},
                      {"kind": "a", "actor": "z", "run_id": "r2"}])
    assert [e["actor"] for e in store.audit_trail("r1")] == ["x", "y"]
    assert [e["actor"] for e in store.audit_trail("r1", kind="b")] == ["y"]


# -- review decisions ------------------------------------------------------------------------------

def test_decide_only_decides_pending_items(store: Store, make_run: MakeRun) -> None:
    make_run(store, "r1")
    first, second = add_items(store, "r1", ["A1", "A2"])
    decided = store.decide([first], "approved", actor="alice", source="cli", note="looks right")
    assert [(d["id"], d["status"]) for d in decided] == [(first, "approved")]

    again = store.decide([first, second], "rejected", actor="bob", source="cli")
    assert [d["id"] for d in again] == [second]  # the approved one is left as it was

    rows = {r["id"]: r for r in store.review_items_for(run_id="r1", status=None)}
    assert (rows[first]["status"], rows[first]["decided_by"]) == ("approved", "alice")
    assert (rows[second]["status"], rows[second]["decided_by"]) == ("rejected", "bob")
    decisions = store.decisions_for("r1")
    assert [(d["item_id"], d["decision"], d["actor"], d["proposal_hash"]) for d in decisions] == [
        (first, "approved", "alice", "hash-A1"), (second, "rejected", "bob", "hash-A2")]
    assert decisions[0]["note"] == "looks right"
    assert store.pending_review_count("r1") == 0


def test_a_second_approval_changes_nothing(store: Store, make_run: MakeRun) -> None:
    make_run(store, "r1")
    [item] = add_items(store, "r1", ["A1"])
    assert len(store.decide([item], "approved", actor="alice", source="cli")) == 1
    assert store.decide([item], "approved", actor="bob", source="cli") == []
    [row] = store.review_items_for(run_id="r1", status=None)
    assert row["decided_by"] == "alice"
    assert len(store.decisions_for("r1")) == 1


def test_decide_refuses_unknown_items(store: Store, make_run: MakeRun) -> None:
    make_run(store, "r1")
    [item] = add_items(store, "r1", ["A1"])
    with pytest.raises(NotFound, match=f"no review item\\(s\\) {item + 100}"):
        store.decide([item, item + 100], "approved", actor="alice", source="cli")
    assert store.pending_review_count("r1") == 1  # nothing decided


def test_decide_skips_items_whose_shown_proposal_changed(store: Store, make_run: MakeRun) -> None:
    make_run(store, "r1")
    [item] = add_items(store, "r1", ["A1"])
    assert store.decide([item], "approved", actor="alice", source="web", shown_hashes={item: "stale"}) == []
    assert len(store.decide([item], "approved", actor="alice", source="web", shown_hashes={item: "hash-A1"})) == 1


def test_review_decide_records_who_and_counts_skips(store: Store, make_run: MakeRun) -> None:
    make_run(store, "r1")
    first, second = add_items(store, "r1", ["A1", "A2"])
    result = review.decide(store, [first], "approved", actor="alice", source="cli")
    assert [d["id"] for d in result.decided] == [first] and result.skipped == 0 and result.runs == ["r1"]
    result = review.decide(store, [first, second], "approved", actor="bob", source="cli")
    assert [d["id"] for d in result.decided] == [second] and result.skipped == 1
    assert [(e["actor"], e["subject"]) for e in store.audit_trail("r1", kind="review.approved")] == [
        ("alice", str(first)), ("bob", str(second))]


def test_review_decide_refuses_bad_decisions_and_dry_runs(store: Store, make_run: MakeRun) -> None:
    make_run(store, "dry", dry_run=True)
    [item] = add_items(store, "dry", ["A1"])
    with pytest.raises(UserError, match="a decision is one of approved, rejected, not 'maybe'"):
        review.decide(store, [item], "maybe", actor="alice", source="cli")
    with pytest.raises(UserError, match="no review items given"):
        review.decide(store, [], "approved", actor="alice", source="cli")
    with pytest.raises(StateConflict, match="belongs to a dry run"):
        review.decide(store, [item], "approved", actor="alice", source="cli")
    assert store.pending_review_count("dry") == 1


def test_an_unauthenticated_actor_cannot_approve_an_item_needing_a_named_approver(
    store: Store, make_run: MakeRun
) -> None:
    make_run(store, "r1")
    [item] = add_items(store, "r1", ["A1"], reasons=["needs_approval:notify"])
    with pytest.raises(UserError):
        review.decide(store, [item], "approved", actor="prefect-ui (unauthenticated)", source="prefect-ui")


def test_decision_times_are_utc_aware(store: Store, make_run: MakeRun) -> None:
    make_run(store, "r1")
    [item] = add_items(store, "r1", ["A1"])
    store.decide([item], "approved", actor="alice", source="cli")
    assert store.get_run("r1")["started_at"].tzinfo is not None
    assert store.decisions_for("r1")[0]["at"].tzinfo is not None


# -- dead letters -----------------------------------------------------------------------------------

def test_only_one_claimant_wins_a_dead_letter(tmp_path: Path, make_run: MakeRun) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    setup = Store.open(url)
    make_run(setup, "r1")
    letter = add_letter(setup, "r1", ["A1"])
    stores = [Store.open(url) for _ in range(6)]  # one engine each, like separate processes
    start = threading.Barrier(len(stores))

    def claim(index: int) -> str:
        start.wait()
        try:
            stores[index].claim_dead_letter(letter, f"operator-{index}")
        except StateConflict:
            return "lost"
        return "won"

    with ThreadPoolExecutor(len(stores)) as pool:
        results = list(pool.map(claim, range(len(stores))))
    assert results.count("won") == 1 and results.count("lost") == len(stores) - 1
    row = setup.get_dead_letter(letter)
    assert row["status"] == "replaying"
    assert row["resolved_by"] == f"operator-{results.index('won')}"


def test_a_claimed_letter_cannot_be_claimed_again(store: Store, make_run: MakeRun) -> None:
    make_run(store, "r1")
    letter = add_letter(store, "r1", ["A1"])
    assert store.claim_dead_letter(letter, "alice")["status"] == "replaying"
    with pytest.raises(StateConflict, match=f"dead letter {letter} is replaying, not open"):
        store.claim_dead_letter(letter, "bob")
    with pytest.raises(NotFound):
        store.claim_dead_letter(letter + 1, "bob")


def test_replay_puts_unfinished_letters_back_and_audits(store: Store, make_run: MakeRun) -> None:
    make_run(store, "r1")
    letters = [add_letter(store, "r1", ["A1"]), add_letter(store, "r1", ["A2"])]
    seen: list[list[int]] = []

    def replayer(claimed: list[dict[str, Any]], actor: str, reason: str, allow: bool) -> dict[str, Any]:
        seen.append([c["id"] for c in claimed])
        assert all(store.get_dead_letter(c["id"])["status"] == "replaying" for c in claimed)
        store.resolve_dead_letter(claimed[0]["id"], "replayed", actor=actor, resolution="ok")
        return {"replayed": 1}

    assert deadletter.replay(store, letters, actor="alice", reason="upstream fixed", replayer=replayer) == {
        "replayed": 1}
    assert seen == [letters]
    assert store.get_dead_letter(letters[0])["status"] == "replayed"
    assert store.get_dead_letter(letters[1])["status"] == "open"
    with store.tx() as connection:
        events = connection.execute(sa.select(audit_events.c.kind, audit_events.c.actor, audit_events.c.data)).all()
    # One event per letter, in its run's trail.
    assert [(e.kind, e.actor, e.data["reason"]) for e in events] == [
        ("deadletter.replay_started", "alice", "upstream fixed")] * 2


def test_replay_of_a_letter_that_is_not_open_releases_the_others(store: Store, make_run: MakeRun) -> None:
    make_run(store, "r1")
    first, second = add_letter(store, "r1", ["A1"]), add_letter(store, "r1", ["A2"])
    deadletter.discard(store, [second], actor="alice", reason="bad data")

    def replayer(claimed: list[dict[str, Any]], actor: str, reason: str, allow: bool) -> dict[str, Any]:
        raise AssertionError("must not run")

    with pytest.raises(StateConflict, match=f"dead letter {second} is discarded, not open"):
        deadletter.replay(store, [first, second], actor="bob", reason="retry", replayer=replayer)
    assert store.get_dead_letter(first)["status"] == "open"
    with pytest.raises(UserError, match="say why"):
        deadletter.discard(store, [first], actor="alice", reason="  ")
    assert [row["id"] for row in deadletter.list_letters(store, run_id="r")] == [first]


# -- stored outcomes and the report ---------------------------------------------------------------

def test_a_step_outcome_is_stored_once(store: Store, make_run: MakeRun) -> None:
    make_run(store, "r1")
    assert store.save_step_outcome("r1", "country", 0, b"first") == b"first"
    assert store.save_step_outcome("r1", "country", 0, b"second") == b"first"
    assert store.get_step_outcome("r1", "country", 0) == b"first"
    assert store.get_step_outcome("r1", "country", 1) is None
    assert store.progress("r1") == 1


def test_snapshot_records_are_chunked_in_order(store: Store, make_run: MakeRun) -> None:
    make_run(store, "r1", records=5)
    store.snapshot_records("r1", [{"id": f"A{i}", "n": i} for i in range(5)], chunk_size=2)
    assert [r["id"] for r in store.chunk_records("r1", 1)] == ["A2", "A3"]
    assert [r["id"] for r in store.records_by_id("r1", ["A4", "A0"])] == ["A0", "A4"]
    assert [r["id"] for r in store.chunk_records("r1", 2)] == ["A4"]


def test_snapshot_records_come_back_as_they_were_read(store: Store, make_run: MakeRun) -> None:
    records = [{"id": "A0", "name": "Müller & Söhne GmbH", "phone": None, "employees": ""},
               {"id": "A1", "name": "Ōsaka Trading 株式会社", "phone": "+81 6 1234 5678", "employees": "1,200"}]
    make_run(store, "r1", records=2)
    store.snapshot_records("r1", records, chunk_size=2)
    assert store.chunk_records("r1", 0) == records
    assert store.records_by_id("r1", ["A1"]) == records[1:]


def test_the_report_accounts_for_every_record(store: Store, make_run: MakeRun) -> None:
    make_run(store, "r1", records=4)
    store.save_proposals("r1", [
        {"record_id": rid, "chunk_no": 0, "changes": {}, "proposal_hash": "h", "verdict": v, "reasons": reasons,
         "outcome": outcome}
        for rid, v, outcome, reasons in [("A1", "pass", "written", []), ("A2", "reject", "rejected", ["gx:x"]),
                                         ("A3", "review", "pending_review", ["low_confidence:domain"]),
                                         ("A4", "pass", "unchanged", [])]
    ])
    report = build_report(store, "r1", with_records=True)
    assert report["counts"] == {"written": 1, "unchanged": 1, "rejected": 1, "pending_review": 1, "dead_lettered": 0}
    assert report["conserved"] is True and report["accounted"] == report["input_count"] == 4
    assert report["reasons"] == {"low_confidence:domain": 1}
    assert [r["id"] for r in report["records"]] == ["A1", "A2", "A3", "A4"]

    store.set_outcomes("r1", {"A4": "proposed"})
    broken = build_report(store, "r1")
    assert broken["conserved"] is False and broken["counts"]["proposed"] == 1


def test_an_old_or_foreign_database_is_refused(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE something (id INTEGER)"))
    with pytest.raises(ConfigError, match="run 'airlock db upgrade'"):
        Store.open(f"sqlite:///{tmp_path / 'other.db'}")


def test_replay_with_an_unknown_letter_releases_the_claimed_ones(store: Store, make_run: MakeRun) -> None:
    make_run(store, "r1")
    letter = add_letter(store, "r1", ["A1"])

    def replayer(claimed: list[dict[str, Any]], actor: str, reason: str, allow: bool) -> dict[str, Any]:
        raise AssertionError("must not run")

    with pytest.raises(NotFound):
        deadletter.replay(store, [letter, letter + 99], actor="alice", reason="retry", replayer=replayer)
    assert store.get_dead_letter(letter)["status"] == "open"


def test_take_effect_resumes_waiting_runs_and_follows_up_finished_ones(store: Store, make_run: MakeRun) -> None:
    make_run(store, "waiting", status="waiting_review")
    store.update_run("waiting", prefect_flow_run_id="flow-1")
    make_run(store, "running")
    make_run(store, "done", status="completed")
    resumed: list[tuple[str, dict[str, Any]]] = []
    followed: list[str] = []

    def resume(flow_run_id: str, run_input: dict[str, Any]) -> bool:
        resumed.append((flow_run_id, run_input))
        return True

    how = review.take_effect(store, ["waiting", "running", "done"], resume=resume, follow_up=followed.append,
                             actor="alice")
    assert how == {"waiting": "resumed", "running": "left to the running run", "done": "committed"}
    assert resumed == [("flow-1", {"note": "decided in the store by alice"})]
    assert followed == ["done"]


def test_bulk_inserts_store_what_sqlalchemy_would_whichever_way_they_go(store: Store, make_run: MakeRun) -> None:
    """On SQLite rows of one shape go through the driver's executemany (``store.base``); rows it cannot
    take fall back to SQLAlchemy. Either way JSON, nulls and timestamps read back the same."""
    from datetime import UTC, datetime

    from airlock.store.schema import effects

    make_run(store, "bulk")
    now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    row = {"run_id": "bulk", "record_id": "r", "write_id": "w", "target": "crm", "tool": "t", "values_hash": "v",
           "status": "intent", "attempts": 0, "error": None, "created_at": now, "updated_at": now,
           "before_image": {"domain": None, "note": "é"}, "compensates": None, "supersedes": None}
    one_shape = [{**row, "idempotency_key": f"k{i}"} for i in range(3)]
    store._insert_many(effects, one_shape)
    # A column (attempts) left to its Python-side default: SQLAlchemy's way.
    defaulted = [{k: v for k, v in row.items() if k != "attempts"} | {"idempotency_key": f"m{i}"} for i in range(2)]
    store._insert_many(effects, defaulted)
    stored = store.existing_effects(["k0", "k1", "k2", "m0", "m1"])
    assert set(stored) == {"k0", "k1", "k2", "m0", "m1"}
    for key in stored:
        got = stored[key]
        assert got["before_image"] == {"domain": None, "note": "é"} and got["error"] is None
        assert got["attempts"] == 0 and got["status"] == "intent"
        assert got["created_at"].replace(tzinfo=UTC) == now


def test_changes_encoded_already_are_stored_as_they_are(store: Store, make_run: MakeRun) -> None:
    """A chunk's proposal changes arrive as JSON from the process that judged them; marked as such
    (``orjson.Fragment``) they are written without being decoded and encoded again, and read back
    as the values they encode."""
    import orjson

    make_run(store, "r1")
    changes = {"domain": {"before": None, "after": "müller.de", "step": "domain", "confidence": 0.9}}
    store.save_chunk_verdicts("r1", 0, proposal_rows=[
        {"record_id": "A1", "chunk_no": 0, "changes": orjson.Fragment(orjson.dumps(changes).decode()),
         "proposal_hash": "h1", "verdict": "pass", "reasons": [], "outcome": "proposed"},
        {"record_id": "A2", "chunk_no": 0, "changes": orjson.Fragment(b"{}"), "proposal_hash": "",
         "verdict": None, "reasons": ["failed:domain"], "outcome": "dead_lettered"},
    ], review_rows=[], dead_letter_rows=[], marker_step="@validate", marker=b"{}")
    stored = {row["record_id"]: row["changes"] for row in store.proposals_for("r1")}
    assert stored == {"A1": changes, "A2": {}}
