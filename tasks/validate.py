"""Validate one chunk's proposals (GX suite, contract, rules, thresholds) and store one verdict per
record, the review items and the per-record dead letters, all in one transaction. The judging
itself (``tasks.verdicts``) runs in a worker process when the chunk is large enough to be worth
sending; storing stays here.

Uniqueness is judged over the whole run (``airlock.validation.run_scope``): inside ``process_chunks``
a chunk waits for the claims of the chunks before it; a replay (or any call outside a run's flow)
takes every claim the run's stored verdicts hold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from airlock.execute import StepResult
from airlock.plan import Plan
from airlock.store import Store
from airlock.validation import Claimed, merge_claims
from tasks.resources import resources
from tasks.verdicts import ChunkVerdicts, judge_chunk, stored_changes

MARKER = "@validate"


def validate_chunk_fn(run_id: str, plan: Plan, chunk_no: int, records: Sequence[dict[str, Any]],
                      results: dict[str, StepResult]) -> ChunkVerdicts:
    res = resources()
    gate = res.run_claims.get(run_id)
    stored = res.store.get_step_outcome(run_id, MARKER, chunk_no)
    if stored is not None:
        verdicts = ChunkVerdicts.from_bytes(stored)
        if gate is not None:
            gate.publish(chunk_no, verdicts.claims)
        return verdicts
    claimed = (gate.before(chunk_no) if gate is not None and chunk_no >= 0
               else stored_claims(res.store, run_id, but=chunk_no))
    workers = res.tool_processes
    judged = (workers.call(len(records), judge_chunk, plan, chunk_no, records, results, claimed) if workers
              else judge_chunk(plan, chunk_no, records, results, claimed))
    if gate is not None:
        # Before storing, which takes a while: the next chunk may be judged meanwhile. Should storing
        # fail, the claims stay published, which only errs on the side of review.
        gate.publish(chunk_no, judged.verdicts.claims)
    res.store.save_chunk_verdicts(run_id, chunk_no, proposal_rows=stored_changes(judged.proposal_rows),
                                  review_rows=judged.review_rows, dead_letter_rows=judged.dead_rows,
                                  marker_step=MARKER, marker=judged.verdicts.to_bytes())
    return judged.verdicts


def stored_claims(store: Store, run_id: str, *, but: int) -> Claimed:
    """Every value the run's stored verdicts claim, but those of chunk ``but`` (being validated again)."""
    return merge_claims(ChunkVerdicts.from_bytes(payload).claims
                        for chunk_no, payload in store.step_outcomes(run_id, MARKER).items() if chunk_no != but)


validate_chunk_task = task(name="validate-chunk", cache_policy=NO_CACHE, retries=1,
                           retry_delay_seconds=1)(validate_chunk_fn)
