"""A follow-up commit: review decisions taken after a run stopped waiting still take effect."""

from __future__ import annotations

from typing import Any

from prefect import flow

from airlock.plan import Plan
from airlock.settings import Settings
from tasks.commit import commit_decided
from tasks.report import finish_run
from tasks.resources import resources


@flow(name="commit-decisions")
async def commit_decisions(run_id: str, actor: str | None = None) -> dict[str, Any]:
    """Write what reviewers approved (and settle what they rejected) for a finished run."""
    who = actor or Settings().actor
    store = resources().store
    run = store.get_run(run_id)
    plan = Plan.model_validate(store.get_plan(run["plan_hash"]))
    summary = commit_decided(run_id, plan, bool(run["dry_run"]), who)
    store.audit("review.follow_up_commit", actor=who, run_id=run_id, data={"outcomes": summary.outcomes})
    return finish_run(run_id, run["status"] if run["status"] != "waiting_review" else "completed", who)
