"""Review decisions, shared by the CLI, the review page and the Prefect dashboard's resume form.

The store is the source of truth: a decision is recorded there with who took it and the hash of
the proposal that was shown. Then it must take effect: a run still waiting is resumed and commits
it itself; a run that stopped waiting gets a follow-up commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from airlock.errors import NotFound, StateConflict, UserError
from airlock.store import Store

DECISIONS = ("approved", "rejected")
# Prefect's open-source UI has no login: a resume from it is recorded under this name and may only
# decide items that need no identified approver.
DASHBOARD_ACTOR = "prefect-ui (unauthenticated)"
NEEDS_APPROVER = "needs_approval:"
# An approval that could not be written (the same key came back with other values) is reopened with
# this reason; only an identified person may approve it again.
CONFLICT = "idempotency_conflict"


def needs_named_approver(item: dict[str, Any]) -> bool:
    return any(code.startswith(NEEDS_APPROVER) or code == CONFLICT for code in item["reasons"])


def four_eyes(store: Store, run: dict[str, Any]) -> bool:
    """Whether the run's pinned plan forbids its starter from approving its items."""
    try:
        plan = store.get_plan(run["plan_hash"])
    except NotFound:
        return False  # a run without its pinned plan cannot commit anything: nothing to guard
    return bool(plan.get("policy", {}).get("four_eyes", False))


class ReviewWindowClosed(StateConflict):
    """A run's flow run is over (a suspended run whose window closed, a crash): it will not resume
    to commit decisions, so a follow-up run commits them instead."""


@dataclass
class DecisionResult:
    decided: list[dict[str, Any]]
    skipped: int
    runs: list[str]


def decide(store: Store, item_ids: Sequence[int], decision: str, *, actor: str, source: str,
           note: str = "", shown: dict[int, str] | None = None,
           edits: dict[int, dict[str, Any]] | None = None) -> DecisionResult:
    """Record a decision on items still pending. ``shown`` maps item ids to the proposal hash the
    person saw: an approval of a proposal that changed since is refused. Items already decided are
    left as they are (counted as skipped)."""
    if decision not in DECISIONS:
        raise UserError(f"a decision is one of {', '.join(DECISIONS)}, not {decision!r}")
    if not item_ids:
        raise UserError("no review items given")
    items = store.review_items_for(status=None, item_ids=list(item_ids))
    if len(items) != len(set(item_ids)):
        missing = sorted(set(item_ids) - {i["id"] for i in items})
        raise NotFound(f"no review item(s) {', '.join(map(str, missing))}")
    runs = {run_id: store.get_run(run_id) for run_id in {item["run_id"] for item in items}}
    strict = {run_id for run_id, run in runs.items() if decision == "approved" and four_eyes(store, run)}
    for item in items:
        run = runs[item["run_id"]]
        if run.get("dry_run"):
            raise StateConflict(f"item {item['id']} belongs to a dry run; nothing of it can be written")
        if shown is not None and item["status"] == "pending" and shown.get(item["id"]) != item["proposal_hash"]:
            raise StateConflict(f"item {item['id']} changed since it was shown; reload it and decide again")
        if decision != "approved" or item["status"] != "pending":
            continue
        if actor == DASHBOARD_ACTOR and (needs_named_approver(item) or item["run_id"] in strict):
            raise StateConflict(f"item {item['id']} needs a named approver; approve it with the CLI or the review "
                                "page, where you are identified")
        if item["run_id"] in strict and run["started_by"] == actor:
            raise StateConflict(f"item {item['id']} belongs to run {run['id'][:8]} that you started; its playbook "
                                "requires four eyes: someone else must approve it")
    decided = store.decide(list(item_ids), decision, actor=actor, source=source, note=note, shown_hashes=shown,
                           edits=edits)
    store.audit_many([
        {"kind": f"review.{decision}", "actor": actor, "run_id": item["run_id"], "subject": str(item["id"]),
         "data": {"record_id": item["record_id"], "proposal_hash": item["proposal_hash"], "note": note,
                  "source": source}}
        for item in decided
    ])
    return DecisionResult(decided, len(set(item_ids)) - len(decided), sorted({i["run_id"] for i in decided}))


def take_effect(store: Store, run_ids: Sequence[str], *, resume: Callable[[str, dict[str, Any]], bool],
                follow_up: Callable[[str], Any], actor: str) -> dict[str, str]:
    """Make decisions count: resume the runs that wait, follow-up-commit the others."""
    how: dict[str, str] = {}
    for run_id in run_ids:
        run = store.get_run(run_id)
        flow_run_id = run.get("prefect_flow_run_id")
        if run["status"] == "waiting_review" and flow_run_id:
            try:
                if resume(flow_run_id, {"note": f"decided in the store by {actor}"}):
                    how[run_id] = "resumed"
                    continue
            except ReviewWindowClosed:
                # Its flow run is over and holds no process: it will not come back to commit.
                follow_up(run_id)
                how[run_id] = "committed by a follow-up (its flow run is over)"
                continue
        if run["status"] in ("running", "waiting_review"):
            # The run is still going and will commit what was decided before it finishes.
            how[run_id] = "left to the running run"
            continue
        follow_up(run_id)
        how[run_id] = "committed"
    return how
