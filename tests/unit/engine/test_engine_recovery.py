"""Crash recovery in the store: expired leases are reaped as crashed (once, with a notice), one live run
per plan and input is enforced by the database, and a growing dead-letter queue is announced."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airlock.errors import StateConflict
from airlock.notify import Notice
from airlock.recovery import check_dead_letters, reap
from airlock.store import Store
from tests.unit.engine.conftest import new_run


class Collecting:
    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def notify(self, notice: Notice) -> None:
        self.notices.append(notice)


def _live(store: Store, run_id: str, seconds: float, input_hash: str = "in") -> None:
    store.create_run(id=run_id, playbook="p", plan_hash="plan", status="running", started_by="t",
                     input_hash=input_hash, record_count=1, chunk_size=1, chunk_count=1, spec_hashes={},
                     lease_expires_at=store.now() + timedelta(seconds=seconds))


def test_reap_marks_expired_runs_crashed_once_and_notifies(store: Store) -> None:
    _live(store, "dead", -1, "a")
    _live(store, "alive", 600, "b")
    new_run(store, "old-without-lease")  # running, no lease at all
    notifier = Collecting()
    crashed = reap(store, notifier, actor="ops", review_url="http://review")
    assert sorted(r["id"] for r in crashed) == ["dead", "old-without-lease"]
    assert store.get_run("dead")["status"] == "crashed" and store.get_run("alive")["status"] == "running"
    assert store.get_run("dead")["lease_expires_at"] is None
    assert [n.event for n in notifier.notices] == ["run.crashed", "run.crashed"]
    assert "airlock runs resume" in str(notifier.notices[0].fields)
    # The link opens the review page on the run's items and the dead letters (a route the page has).
    assert {n.link for n in notifier.notices} == {"http://review/?run=dead&view=letters",
                                                  "http://review/?run=old-with&view=letters"}
    assert [e["kind"] for e in store.audit_trail("dead")] == ["run.crashed"]
    assert reap(store, notifier) == [] and len(notifier.notices) == 2  # reported once


def test_one_live_run_per_plan_and_input(store: Store) -> None:
    _live(store, "first", 600)
    with pytest.raises(StateConflict, match="run first is already processing"):
        _live(store, "second", 600)
    store.update_run("first", lease_expires_at=store.now() - timedelta(seconds=1))  # its process died
    _live(store, "third", 600)  # the dead one is marked crashed, the new one starts
    assert store.get_run("first")["status"] == "crashed"
    assert store.active_run_for("plan", "in") == "third"


def test_a_growing_dead_letter_queue_is_announced_past_its_threshold(store: Store) -> None:
    new_run(store, "r1")
    notifier = Collecting()
    for _ in range(2):
        store.add_dead_letter(run_id="r1", kind="record", stage="execute", record_ids=["A"], error_type="E",
                              error="boom", retryable=False, attempts=[], payload={})
    assert not check_dead_letters(store, notifier, threshold=3, run_id="r1", added=2)
    store.add_dead_letter(run_id="r1", kind="record", stage="execute", record_ids=["B"], error_type="E",
                          error="boom", retryable=False, attempts=[], payload={})
    assert not check_dead_letters(store, notifier, threshold=3, run_id="r1", added=0)  # nothing new
    assert check_dead_letters(store, notifier, threshold=3, run_id="r1", added=1, review_url="http://review/")
    [notice] = notifier.notices
    assert notice.event == "deadletters.growing" and notice.fields["open"] == 3
    assert notice.link == "http://review/?view=letters"
