"""Replay dead letters: only their records, with the run's pinned plan and the original run's
idempotency keys, so a record already written is not written again."""

from __future__ import annotations

from typing import Any

from prefect import flow

from airlock.errors import StateConflict
from airlock.execute import StepResult
from airlock.ledger import retry_compensation
from airlock.plan import Plan
from tasks.commit import commit_chunk_fn
from tasks.execute import execute_step_fn
from tasks.report import finish_run
from tasks.resources import resources
from tasks.validate import validate_chunk_fn


@flow(name="replay-dead-letters")
async def replay_dead_letters(letters: list[dict[str, Any]], actor: str, reason: str,
                              allow_changed_tools: bool = False) -> dict[str, Any]:
    """Replay claimed dead letters (see airlock.deadletter.replay, which claims them)."""
    outcome: dict[str, Any] = {}
    runs = set()
    for letter in letters:
        outcome[str(letter["id"])] = replay_letter(letter, actor, reason, allow_changed_tools)
        runs.add(letter["run_id"])
    for run_id in runs:
        run = resources().store.get_run(run_id)
        finish_run(run_id, run["status"], actor)
    return outcome


def replay_letter(letter: dict[str, Any], actor: str, reason: str, allow_changed_tools: bool) -> dict[str, Any]:
    res = resources()
    store = res.store
    run = store.get_run(letter["run_id"])
    plan = Plan.model_validate(store.get_plan(run["plan_hash"]))
    used = {s.tool for s in plan.steps} | {s.fallback for s in plan.steps if s.fallback} | {w.tool for w in plan.writes}
    current = res.registry.spec_hashes()
    changed = sorted(name for name in used if run["spec_hashes"].get(name) != current.get(name))
    if changed and not allow_changed_tools:
        raise StateConflict(
            f"dead letter {letter['id']}: tool(s) {', '.join(changed)} changed since run {run['id'][:8]} ran; "
            "replaying would mix old and new code. Replay with --allow-changed-tools to run the new code"
        )
    if letter["stage"] == "compensate":
        # Undo what a failed multi-system update left behind: only the compensation is called again.
        outcome = retry_compensation(store, res.registry, run["id"], letter["payload"], actor)
        result = {"records": 1, "written": {}, "review": 0, "rejected": 0, "failed_again": 0,
                  "changed_tools": changed, "compensation": outcome}
        store.resolve_dead_letter(letter["id"], "replayed", actor=actor, resolution=f"{reason} -> {result}")
        store.audit("deadletter.replayed", actor=actor, run_id=run["id"], subject=str(letter["id"]),
                    data={"reason": reason, **result})
        return result
    settled = {p["record_id"]: p["outcome"] for p in store.proposals_for(run["id"], letter["record_ids"])}
    records = [r for r in store.records_by_id(run["id"], letter["record_ids"])
               if settled.get(str(r["id"])) in (None, "dead_lettered")]
    pseudo_chunk = -int(letter["id"])  # its own stored outcomes, apart from the run's chunks
    store.clear_step_outcomes(run["id"], pseudo_chunk)
    results: dict[str, StepResult] = {}
    for step in plan.execution_order():
        results[step.id] = execute_step_fn(run["id"], plan, step.id, pseudo_chunk, records, dict(results))
    verdicts = validate_chunk_fn(run["id"], plan, pseudo_chunk, records, results)
    summary = commit_chunk_fn(run["id"], plan, verdicts, bool(run["dry_run"]), actor, retry_refused=True)
    result = {"records": len(records), "written": summary.outcomes, "review": len(verdicts.review),
              "rejected": len(verdicts.rejected), "failed_again": len(verdicts.dead_lettered),
              "changed_tools": changed}
    store.resolve_dead_letter(letter["id"], "replayed", actor=actor, resolution=f"{reason} -> {result}")
    store.audit("deadletter.replayed", actor=actor, run_id=run["id"], subject=str(letter["id"]),
                data={"reason": reason, **result})
    return result
