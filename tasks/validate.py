"""Validate one chunk's proposals (GX suite, contract, rules, thresholds) and store one verdict per
record, the review items and the per-record dead letters, all in one transaction. The judging
itself (``tasks.verdicts``) runs in a worker process when the chunk is large enough to be worth
sending; storing stays here."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from airlock.execute import StepResult
from airlock.plan import Plan
from tasks.resources import resources
from tasks.verdicts import ChunkVerdicts, judge_chunk

MARKER = "@validate"


def validate_chunk_fn(run_id: str, plan: Plan, chunk_no: int, records: list[dict[str, Any]],
                      results: dict[str, StepResult]) -> ChunkVerdicts:
    res = resources()
    stored = res.store.get_step_outcome(run_id, MARKER, chunk_no)
    if stored is not None:
        return ChunkVerdicts.from_bytes(stored)
    workers = res.tool_processes
    judged = (workers.call(len(records), judge_chunk, plan, chunk_no, records, results) if workers
              else judge_chunk(plan, chunk_no, records, results))
    res.store.save_chunk_verdicts(run_id, chunk_no, proposal_rows=judged.proposal_rows,
                                  review_rows=judged.review_rows, dead_letter_rows=judged.dead_rows,
                                  marker_step=MARKER, marker=judged.verdicts.to_bytes())
    return judged.verdicts


validate_chunk_task = task(name="validate-chunk", cache_policy=NO_CACHE, retries=1,
                           retry_delay_seconds=1)(validate_chunk_fn)
