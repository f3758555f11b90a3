"""Execute one plan step over one chunk: tools called per record, the outcome stored per
(run, step, chunk) so that a re-run, a resume or a replay calls no tool twice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from airlock.execute import StepResult, run_step
from airlock.llm import BudgetLimits, metered
from airlock.plan import Plan
from tasks.resources import resources


def execute_step_fn(run_id: str, plan: Plan, step_id: str, chunk_no: int, records: Sequence[dict[str, Any]],
                    prior: dict[str, StepResult]) -> StepResult:
    res = resources()
    store = res.store
    stored = store.get_step_outcome(run_id, step_id, chunk_no)
    if stored is not None:
        return StepResult.from_bytes(stored)
    store.renew_lease(run_id, res.settings.lease_seconds)
    budget = BudgetLimits(tokens=plan.policy.budget_tokens, usd=plan.policy.budget_usd)
    with metered(run_id, step_id, chunk_no, budget):  # model calls are charged to this run, step and chunk
        result = run_step(plan, plan.step(step_id), res.registry, records, prior, cache=res.cache,
                          offload=res.tool_processes.run if res.tool_processes else None)
    payload = result.to_bytes()
    stored = store.save_step_outcome(run_id, step_id, chunk_no, payload)
    # Ours was stored: keep the objects. Another attempt stored first: its outcome is the outcome.
    return result if stored is payload else StepResult.from_bytes(stored)


# Infrastructure failures (the store, a worker) are retried here; tool failures are handled per
# record inside run_step with the retry policy of the tool's effect.
execute_step = task(name="execute-step", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)(execute_step_fn)
