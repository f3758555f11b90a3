"""Run a request end to end: plan → check → pin → chunks (execute, validate, commit) → review → report.

Async so that it can wait for a review while holding nothing but a poll; the chunk work runs in
the synchronous ``process_chunks`` subflow. The review window ends on our own clock, never through
Prefect's pause timeout, so a run with nobody reviewing still ends Completed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from prefect import flow

from airlock.errors import NotFound, StateConflict
from airlock.execute import batch_collection
from airlock.orchestration import current_flow_run_id, wait_for_review
from airlock.plan import Plan
from airlock.recovery import check_dead_letters
from airlock.settings import Settings
from airlock.store import Store
from flows.process_chunks import process_chunks
from tasks.commit import commit_decided
from tasks.load import PinRunInput, pin_run
from tasks.plan import PlannedRun, PlanRequestInput, plan_request
from tasks.report import finish_run
from tasks.resources import current_settings, resources
from tasks.review import apply_review_input, notify_waiting, review_description


@flow(name="run-request", log_prints=True)
async def run_request(
    playbook: str = "playbooks/enrich_accounts.yaml",
    input_path: str | None = None,
    review_timeout: float | None = None,
    dry_run: bool = False,
    run_id: str | None = None,
    started_by: str | None = None,
) -> dict[str, Any]:
    """Enrich a dataset as a playbook says.

    Args:
        playbook: playbook file, relative to the project folder.
        input_path: CSV to process; defaults to the playbook's `input:`.
        review_timeout: seconds to wait for reviewers (0: do not wait; flagged records stay pending).
            Defaults to the playbook policy's review_timeout_seconds.
        dry_run: stop before any write and report the changes that would be made.
        run_id: resume or re-run this Airlock run id (work already stored is not redone).
        started_by: who started the run; defaults to AIRLOCK_USER or the OS user.
    """
    with batch_collection():  # a run allocates records by the hundred thousand: see batch_collection
        return await _run_request(playbook, input_path, review_timeout, dry_run, run_id, started_by)


async def _run_request(playbook: str, input_path: str | None, review_timeout: float | None, dry_run: bool,
                       run_id: str | None, started_by: str | None) -> dict[str, Any]:
    settings = current_settings()
    actor = started_by or settings.actor
    store = resources().store
    # A suspended run comes back as the same flow run with the same parameters: find its Airlock run.
    run_id = run_id or store.run_id_for_flow_run(current_flow_run_id())
    resumed = _pinned_run(store, run_id)
    if resumed is not None:
        # A resumed run goes on with the plan and input it pinned, whatever the playbook says today.
        plan = Plan.model_validate(store.get_plan(resumed["plan_hash"]))
        planned = PlannedRun(playbook=resumed["playbook"], input_path=resumed["input_path"], plan=plan)
        dry_run = bool(resumed["dry_run"])
    else:
        planned = plan_request(PlanRequestInput(playbook=playbook, input_path=input_path))
        plan = planned.plan
    window = plan.policy.review_timeout_seconds if review_timeout is None else review_timeout
    pinned = pin_run(PinRunInput(
        plan=plan, playbook=planned.playbook, input_path=planned.input_path, started_by=actor, dry_run=dry_run,
        review_timeout=window, run_id=run_id, flow_run_id=current_flow_run_id(),
    ))
    try:
        letters_before = len(store.dead_letters_for(run_id=pinned.run_id))
        await asyncio.to_thread(process_chunks, pinned.run_id, plan, pinned.chunk_count, dry_run, actor)
        check_dead_letters(store, resources().notifier, threshold=settings.dlq_alert_threshold,
                           run_id=pinned.run_id, review_url=settings.review_url,
                           added=len(store.dead_letters_for(run_id=pinned.run_id)) - letters_before)
        if window > 0 and not dry_run:
            await _wait_for_reviewers(pinned.run_id, planned.playbook, plan, window, settings, actor)
        commit_decided(pinned.run_id, plan, dry_run, actor)
    except Exception as error:  # the flow boundary: the run is marked failed in the store, then re-raised
        store.update_run(pinned.run_id, status="failed", error=f"{type(error).__name__}: {error}"[:2000])
        store.audit("run.failed", actor=actor, run_id=pinned.run_id, data={"error": str(error)[:2000]})
        raise
    return finish_run(pinned.run_id, "completed", actor)


def _pinned_run(store: Store, run_id: str | None) -> dict[str, Any] | None:
    if run_id is None:
        return None
    try:
        return store.get_run(run_id)
    except NotFound:
        return None  # a new run with an id the caller chose


async def _wait_for_reviewers(run_id: str, playbook: str, plan: Plan, window: float, settings: Settings,
                              actor: str) -> None:
    store = resources().store
    deadline = time.monotonic() + window
    # A suspended run waits again from the top when resumed: reviewers were told the first time.
    refused, told = 0, bool(store.audit_trail(run_id, "review.waiting"))
    while store.pending_review_count(run_id) and (remaining := deadline - time.monotonic()) > 0:
        store.update_run(run_id, status="waiting_review")
        store.renew_lease(run_id, remaining + 600)  # alive for as long as it waits
        store.audit("review.waiting", actor="airlock", run_id=run_id,
                    data={"pending": store.pending_review_count(run_id), "window_seconds": round(remaining, 1)})
        if not told:
            notify_waiting(run_id, playbook, remaining)
            told = True
        review = await wait_for_review(review_description(run_id, playbook, window, refused=refused), remaining,
                                       settings.review_poll_interval, suspend_after=settings.review_suspend_after)
        store.update_run(run_id, status="running")
        refused = apply_review_input(run_id, review).refused
        commit_decided(run_id, plan, False, actor)
        if review.timed_out:
            break


def preflight(playbook: str, input_path: str | None, *, warm: bool = False) -> dict[str, Any]:
    """Everything a person can get wrong, checked before Prefect starts: the playbook, the plan,
    the input file. Raises one clear error; the CLI calls it so mistakes never cost a flow run.
    ``warm``: the run starts next, so start what its validation needs (the worker processes and
    their GX import, seconds) now, while Prefect starts the flow run, rather than from pin-run."""
    from airlock.dataset import read_dataset
    from tasks.load import chunk_size_for
    from tasks.plan import plan_request_fn
    from tasks.resources import prepare_validation

    planned = plan_request_fn(PlanRequestInput(playbook=playbook, input_path=input_path))
    plan = planned.plan
    dataset = read_dataset(Path(planned.input_path), key=plan.dataset.key, required=plan.dataset.columns)
    active = resources().store.active_run_for(plan.hash, dataset.sha256)
    if active is not None:
        raise StateConflict(f"run {active} is already processing this plan and input; wait for it or resume it")
    if warm:
        prepare_validation(chunk_size_for(len(dataset.records), plan, current_settings()))
    return {"plan": plan, "playbook": planned.playbook, "input_path": planned.input_path,
            "records": len(dataset.records), "steps": len(plan.steps)}
