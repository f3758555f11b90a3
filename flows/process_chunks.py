"""The per-chunk DAG: load → each step (mapped over chunks) → validate → commit, mapped wave by wave
(``AIRLOCK_CHUNK_WAVE`` chunks at a time) so that early chunks are validated and written while the
tools of later chunks run.

A synchronous subflow on purpose: mapped synchronous tasks run several times faster inside a
synchronous flow than inside an async one. Records and step results travel between tasks wrapped in
``opaque``: Prefect resolves the future but does not walk thousands of records looking for nested
futures, a walk that otherwise costs more than the work. Chunks whose tasks failed after their
retries are dead-lettered whole here, with the stage and step that failed.

Chunks are validated in order as far as uniqueness goes: a chunk's validation waits for the claims
of the chunks before it (``airlock.validation.run_scope``); a chunk whose validation failed or never
ran is settled when its task ends, so the chunks after it go on.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from prefect import flow, unmapped
from prefect.futures import PrefectFuture, wait
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import opaque

from airlock.dataset import ChunkRecords
from airlock.execute import StepResult
from airlock.plan import Plan
from airlock.settings import Settings
from airlock.validation import RunClaims
from tasks.commit import commit_chunk
from tasks.execute import execute_step
from tasks.load import load_chunk
from tasks.report import dead_letter_chunk
from tasks.resources import current_settings, resources
from tasks.validate import validate_chunk_task
from tasks.verdicts import ChunkVerdicts

# Each stage's futures, (stage, step id) -> one future per chunk number, in pipeline order.
Stages = dict[tuple[str, str | None], list[PrefectFuture[Any]]]


@flow(name="process-chunks", task_runner=ThreadPoolTaskRunner(max_workers=Settings().task_workers))  # type: ignore[arg-type]
def process_chunks(run_id: str, plan: Plan, chunk_count: int, dry_run: bool, actor: str) -> dict[str, Any]:
    run_claims = resources().run_claims
    claims = run_claims[run_id] = RunClaims()  # validate_chunk_fn finds it there by run id
    try:
        return _process(run_id, plan, chunk_count, dry_run, actor, claims)
    finally:
        run_claims.pop(run_id, None)


def _process(run_id: str, plan: Plan, chunk_count: int, dry_run: bool, actor: str,
             claims: RunClaims) -> dict[str, Any]:
    stages: Stages = {}
    committed: list[PrefectFuture[Any]] = []
    wave = current_settings().chunk_wave
    for first in range(0, chunk_count, wave):
        _map_wave(run_id, plan, list(range(first, min(first + wave, chunk_count))), dry_run, actor, stages,
                  committed, claims)
    wait(committed)
    failed_chunks = 0
    for i in range(chunk_count):
        if committed[i].state.is_completed():
            continue
        failed_chunks += 1
        stage, step_id, error = _first_failure(stages, i)
        dead_letter_chunk(run_id, i, stage, step_id, error, actor)
    return {"chunks": chunk_count, "failed_chunks": failed_chunks}


def _map_wave(run_id: str, plan: Plan, chunks: list[int], dry_run: bool, actor: str, stages: Stages,
              committed: list[PrefectFuture[Any]], claims: RunClaims) -> None:
    """Map load, every step, validate and commit over one wave of chunks. Waves are submitted one
    after another without waiting, so the task threads take a wave's validation and commit before
    the next wave's tools: validation and writing overlap the tools of later chunks. Each stage's
    futures are appended in chunk order, so index i of a stage is chunk i across waves."""
    loaded = list(load_chunk.map(unmapped(run_id), chunks))
    stages.setdefault(("load", None), []).extend(loaded)
    records = [opaque(future) for future in loaded]
    results: dict[str, list[PrefectFuture[Any]]] = {}
    for step in plan.execution_order():
        prior = [{sid: opaque(futures[i]) for sid, futures in results.items()} for i in range(len(chunks))]
        results[step.id] = list(execute_step.map(
            unmapped(run_id), unmapped(plan), unmapped(step.id), chunks, records, prior))
        stages.setdefault(("execute", step.id), []).extend(results[step.id])
    everything = [{sid: opaque(futures[i]) for sid, futures in results.items()} for i in range(len(chunks))]
    validated = list(validate_chunk_task.map(unmapped(run_id), unmapped(plan), chunks, records, everything))
    # The chunk's records go to its commit too: it needs their ids and current values, and reading
    # them from the snapshot again would cost the run's process time it has least of.
    wave_committed = list(commit_chunk.map(unmapped(run_id), unmapped(plan), [opaque(f) for f in validated],
                                           unmapped(dry_run), unmapped(actor), records=records))
    stages.setdefault(("validate", None), []).extend(validated)
    stages.setdefault(("commit", None), []).extend(wave_committed)
    committed.extend(wave_committed)
    for i, commit in enumerate(wave_committed):
        validated[i].add_done_callback(partial(_settle, claims, chunks[i]))
        held = [loaded[i], *(futures[i] for futures in results.values()), validated[i]]
        commit.add_done_callback(partial(_release, held))


def _settle(claims: RunClaims, chunk_no: int, _validated: PrefectFuture[Any]) -> None:
    """Whatever became of the chunk's validation, the chunks after it need not wait for it any longer."""
    claims.settle(chunk_no)


def _release(futures: list[PrefectFuture[Any]], _commit: PrefectFuture[Any]) -> None:
    """Empty a chunk's records, step results and verdicts once its commit is over: nothing reads
    them again (a failed chunk is dead-lettered from its states), and Prefect's futures keep them in
    reference cycles that only a full collection frees, a second or more at the end of a large run."""
    for future in futures:
        if not future.state.is_completed():
            continue
        value = future.result()
        if isinstance(value, StepResult):
            value.outputs.clear()
            value.failures.clear()
        elif isinstance(value, ChunkVerdicts):
            value.passed.clear()
        elif isinstance(value, ChunkRecords):
            value.clear()


def _first_failure(stages: Stages, chunk: int) -> tuple[str, str | None, BaseException | str]:
    for (stage, step_id), futures in stages.items():  # in pipeline order: the order they were added
        state = futures[chunk].state
        if state.is_failed() or state.is_crashed():
            try:
                state.result()
            except BaseException as error:  # noqa: BLE001 - we only read the stored exception
                return stage, step_id, error
            return stage, step_id, state.message or "failed"
    return "commit", None, "did not complete"
