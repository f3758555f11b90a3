"""Review decisions, shared by the CLI and (later) the review page.

The store is the source of truth: a decision is recorded there with who took it and the hash of
the proposal that was shown. Then it must take effect: a run still waiting is resumed and commits
it itself; a run that stopped waiting gets a follow-up commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from airlock.errors import StateConflict, UserError
from airlock.store import Store

DECISIONS = ("approved", "rejected")
# Prefect's open-source UI has no login: a resume from it is recorded under this name and may only
# decide items that need no identified approver.
DASHBOARD_ACTOR = "prefect-ui (unauthenticated)"
NEEDS_APPROVER = "needs_approval:"


def needs_named_approver(item: dict[str, Any]) -> bool:
    return any(code.startswith(NEEDS_APPROVER) for code in item["reasons"])


@dataclass
class DecisionResult:
    decided: list[dict[str, Any]]
    skipped: int
    runs: list[str]


def decide(store: Store, item_ids: Sequence[int], decision: str, *, actor: str, source: str,
           note: str = "") -> DecisionResult:
    if decision not in DECISIONS:
        raise UserError(f"a decision is one of {', '.join(DECISIONS)}, not {decision!r}")
    if not item_ids:
        raise UserError("no review items given")
    items = store.review_items_for(status=None, item_ids=list(item_ids))
    runs = {item["run_id"]: store.get_run(item["run_id"]) for item in items}
    for item in items:
        run = runs[item["run_id"]]
        if run.get("dry_run"):
            raise StateConflict(f"item {item['id']} belongs to a dry run; nothing of it can be written")
        if actor == DASHBOARD_ACTOR and decision == "approved" and needs_named_approver(item):
            raise StateConflict(f"item {item['id']} needs a named approver; approve it with the CLI or the review "
                                "page, where you are identified")
    decided = store.decide(list(item_ids), decision, actor=actor, source=source, note=note)
    for item in decided:
        store.audit(f"review.{decision}", actor=actor, run_id=item["run_id"], subject=str(item["id"]),
                    data={"record_id": item["record_id"], "proposal_hash": item["proposal_hash"], "note": note,
                          "source": source})
    return DecisionResult(decided, len(set(item_ids)) - len(decided), sorted({i["run_id"] for i in decided}))


def take_effect(store: Store, run_ids: Sequence[str], *, resume: Callable[[str, dict[str, Any]], bool],
                follow_up: Callable[[str], Any], actor: str) -> dict[str, str]:
    """Make decisions count: resume the runs that wait, follow-up-commit the others."""
    how: dict[str, str] = {}
    for run_id in run_ids:
        run = store.get_run(run_id)
        flow_run_id = run.get("prefect_flow_run_id")
        if run["status"] == "waiting_review" and flow_run_id and resume(
            flow_run_id, {"note": f"decided in the store by {actor}"}
        ):
            how[run_id] = "resumed"
            continue
        if run["status"] in ("running", "waiting_review"):
            # The run is still going and will commit what was decided before it finishes.
            how[run_id] = "left to the running run"
            continue
        follow_up(run_id)
        how[run_id] = "committed"
    return how
