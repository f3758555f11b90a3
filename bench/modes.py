"""The three ways of doing the benchmark's work, each run in a process of its own by throughput.py.

    python bench/modes.py generate --records N --input OUT.csv [--data-dir DIR]
    python bench/modes.py {plain,prefect,prefect-walked,airlock} --input CSV --workdir DIR --out RESULT.json

``plain`` and ``prefect`` time from reading the CSV to the last CRM write; their setup (imports,
registry, plan, CRM schema) is measured apart. ``airlock`` times the real ``run_request`` flow
from the call to its return with the stored report, everything inside included.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PLAYBOOK,
    PROJECT_DIR,
    chunked,
    crm_changes,
    descendants_cpu_seconds,
    effective_chunk_size,
    plan_for,
    use_project,
    write_dataset,
)

BENCH_USER = "bench"


def _setup(workdir: Path, input_path: Path) -> dict[str, Any]:
    """What the two baselines need before the clock starts: the registry with a fresh CRM, the plan."""
    use_project()
    from airlock.dataset import read_header
    from airlock.settings import Settings
    from systems.crm import CrmDatabase
    from tools import build_registry

    settings = Settings()
    crm_url = f"sqlite:///{workdir / 'crm.db'}"
    crm = CrmDatabase(crm_url)
    crm.create_schema()
    registry = build_registry(PROJECT_DIR, crm_url, data_dir=settings.reference_dir)
    plan = plan_for(registry, read_header(input_path))
    return {"settings": settings, "crm": crm, "registry": registry, "plan": plan}


def run_plain(input_path: Path, workdir: Path) -> dict[str, Any]:
    """A plain loop: per chunk, every step through ``airlock.execute.run_step`` (ToolSpec.call per
    record, plan order and bindings, one per-process cache for pure tools as Airlock keeps), then
    one ``CrmDatabase.apply_updates`` for the chunk. No Prefect, no store, no audit, no validation."""
    started = time.perf_counter()
    env = _setup(workdir, input_path)
    from airlock.dataset import read_dataset
    from airlock.execute import StepResult, ToolCache, run_step

    settings, crm, registry, plan = env["settings"], env["crm"], env["registry"], env["plan"]
    setup_seconds = time.perf_counter() - started
    cache, run_id = ToolCache(), str(uuid.uuid4())
    write_seconds = 0.0
    applied = failures = 0
    per_step: dict[str, float] = {}
    t0 = time.perf_counter()
    dataset = read_dataset(input_path, key=plan.dataset.key, required=plan.dataset.columns)
    size = effective_chunk_size(len(dataset.records), plan.policy.chunk_size or settings.chunk_size,
                                settings.max_chunks)
    chunks = chunked(dataset.records, size)
    read_seconds = time.perf_counter() - t0
    for records in chunks:
        results: dict[str, StepResult] = {}
        for step in plan.execution_order():
            results[step.id] = run_step(plan, step, registry, records, results, cache=cache)
            per_step[step.id] = per_step.get(step.id, 0.0) + results[step.id].seconds
            failures += len(results[step.id].failures)
        t1 = time.perf_counter()
        statuses = crm.apply_updates(crm_changes(plan, run_id, records, results))
        write_seconds += time.perf_counter() - t1
        applied += sum(status == "applied" for status in statuses)
    wall = time.perf_counter() - t0
    return {
        "records": len(dataset.records), "wall_seconds": wall, "setup_seconds": setup_seconds,
        "chunk_size": size, "chunks": len(chunks), "plan_hash": plan.hash,
        "breakdown": {"read_csv": read_seconds, "tools": sum(per_step.values()), "crm_writes": write_seconds,
                      **{f"step:{k}": v for k, v in per_step.items()}},
        "crm_applied": applied, "record_failures": failures, "implementation": "airlock.execute.run_step + ToolCache",
    }


def run_prefect(input_path: Path, workdir: Path, *, opaque_data: bool = True) -> dict[str, Any]:
    """The same chunks and tools under a synchronous Prefect flow: one task per (step, chunk), mapped
    like Airlock's process_chunks, then one CRM-write task per chunk. No Airlock store.

    The records and the earlier steps' results reach each task as parameters, wrapped in Prefect's
    ``opaque`` (futures are resolved, their contents are not walked). Without ``opaque_data`` they
    are passed bare, as Airlock's process_chunks passes them, and Prefect walks every record and
    every earlier result of every task's parameters looking for futures."""
    started = time.perf_counter()
    env = _setup(workdir, input_path)
    from prefect import flow, task, unmapped
    from prefect.cache_policies import NO_CACHE
    from prefect.futures import PrefectFuture, wait
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect.utilities.annotations import opaque

    from airlock.dataset import read_dataset
    from airlock.execute import StepResult, ToolCache, run_step

    settings, crm, registry, plan = env["settings"], env["crm"], env["registry"], env["plan"]
    cache, run_id = ToolCache(), str(uuid.uuid4())

    @task(name="bench-step", cache_policy=NO_CACHE)
    def step_task(step_id: str, records: list[dict[str, Any]], prior: dict[str, StepResult]) -> StepResult:
        return run_step(plan, plan.step(step_id), registry, records, prior, cache=cache)

    @task(name="bench-write", cache_policy=NO_CACHE)
    def write_task(records: list[dict[str, Any]], results: dict[str, StepResult]) -> int:
        statuses = crm.apply_updates(crm_changes(plan, run_id, records, results))
        return sum(status == "applied" for status in statuses)

    @flow(name="bench-raw-prefect", task_runner=ThreadPoolTaskRunner(max_workers=settings.task_workers))
    def raw_prefect(path: str) -> dict[str, int]:
        dataset = read_dataset(Path(path), key=plan.dataset.key, required=plan.dataset.columns)
        size = effective_chunk_size(len(dataset.records), plan.policy.chunk_size or settings.chunk_size,
                                    settings.max_chunks)
        chunks = chunked(dataset.records, size)
        wrap: Any = opaque if opaque_data else (lambda value: value)
        records = [wrap(chunk) for chunk in chunks]
        results: dict[str, list[PrefectFuture[StepResult]]] = {}
        for step in plan.execution_order():
            prior = [{sid: wrap(futures[i]) for sid, futures in results.items()} for i in range(len(chunks))]
            results[step.id] = list(step_task.map(unmapped(step.id), records, prior))
        everything = [{sid: wrap(futures[i]) for sid, futures in results.items()} for i in range(len(chunks))]
        written = list(write_task.map(records, everything))
        wait(written)
        return {"records": len(dataset.records), "chunk_size": size, "chunks": len(chunks),
                "applied": sum(f.result() for f in written)}

    setup_seconds = time.perf_counter() - started
    t0 = time.perf_counter()
    out = raw_prefect(str(input_path))
    wall = time.perf_counter() - t0
    return {
        "records": out["records"], "wall_seconds": wall, "setup_seconds": setup_seconds,
        "chunk_size": out["chunk_size"], "chunks": out["chunks"], "plan_hash": plan.hash,
        "crm_applied": out["applied"], "task_workers": settings.task_workers, "opaque_data": opaque_data,
        "expected_task_runs": out["chunks"] * (len(plan.steps) + 1),
    }


def run_airlock(input_path: Path, workdir: Path) -> dict[str, Any]:
    """The real run_request flow against the started server (PREFECT_API_URL), fresh AIRLOCK_HOME."""
    started = time.perf_counter()
    use_project()
    from airlock.settings import Settings

    settings = Settings()
    settings.prepare_environment()
    from airlock.project import load_project_object

    run_request = load_project_object(settings.project_dir, "flows/run_request.py:run_request")
    setup_seconds = time.perf_counter() - started
    collector = CollectorClock()
    gc.callbacks.append(collector)
    t0, cpu0, children0 = time.perf_counter(), time.process_time(), _children_cpu_seconds()
    try:
        report = asyncio.run(run_request(playbook=PLAYBOOK, input_path=str(input_path), review_timeout=0,
                                         started_by=BENCH_USER))
    finally:
        gc.callbacks.remove(collector)
    wall = time.perf_counter() - t0
    timed_cpu = {"run_process": round(time.process_time() - cpu0, 2),
                 "children": round(_children_cpu_seconds() - children0, 2),
                 "collector": round(collector.seconds, 2), "collections": collector.collections}
    return {"wall_seconds": wall, "setup_seconds": setup_seconds, "timed_cpu_seconds": timed_cpu,
            **_airlock_facts(settings, report)}


class CollectorClock:
    """A ``gc.callbacks`` entry adding up the time the cyclic garbage collector runs in this process:
    a cost no profiler shows apart (it runs inside whatever allocation set it off)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections: dict[int, int] = {}  # generation -> collections
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._started
        generation = info["generation"]
        self.collections[generation] = self.collections.get(generation, 0) + 1


def _children_cpu_seconds() -> float:
    """CPU time of this process's children (the run's tool workers, the demo ticketing service), ended
    or alive: where the run's process is busy all the time and its children are not, it is the limit."""
    ended = os.times()
    return ended.children_user + ended.children_system + descendants_cpu_seconds(os.getpid())


def _airlock_facts(settings: Any, report: dict[str, Any]) -> dict[str, Any]:
    """What the store says about the run: the stored report, chunking, tool time per step."""
    import orjson
    import sqlalchemy as sa

    from airlock.store import Store
    from airlock.store.schema import step_outcomes
    from systems.crm import CrmDatabase

    store = Store.open(settings.store_url)
    run = store.get_run(report["run_id"])
    stored = run["report"] or {}
    plan = store.get_plan(run["plan_hash"])
    tool_seconds: dict[str, float] = {}
    # One stored step outcome at a time: all of them at once (every chunk's outputs) would add a
    # hundred MiB or more to the peak of the process tree after the timed run.
    with store.tx() as connection:
        rows = connection.execute(sa.select(step_outcomes.c.step_id, step_outcomes.c.chunk_no)
                                  .where(step_outcomes.c.run_id == run["id"])).all()
        for step_id, chunk_no in rows:
            if step_id.startswith("@"):
                continue
            payload = connection.execute(sa.select(step_outcomes.c.payload).where(
                step_outcomes.c.run_id == run["id"], step_outcomes.c.step_id == step_id,
                step_outcomes.c.chunk_no == chunk_no)).scalar_one()
            tool_seconds[step_id] = tool_seconds.get(step_id, 0.0) + float(orjson.loads(payload)["seconds"])
    inner = (run["finished_at"] - run["started_at"]).total_seconds() if run["finished_at"] else None
    preferred = plan.get("policy", {}).get("chunk_size") or settings.chunk_size
    expected_chunk = effective_chunk_size(run["record_count"], preferred, settings.max_chunks)
    return {
        "records": run["record_count"], "chunk_size": run["chunk_size"], "chunks": run["chunk_count"],
        "chunk_size_agrees": run["chunk_size"] == expected_chunk, "plan_hash": run["plan_hash"],
        "status": run["status"], "pinned_to_finished_seconds": inner,
        "report_stored": stored.get("counts") == report.get("counts") and bool(stored),
        "counts": report["counts"], "accounted": report["accounted"], "conserved": report["conserved"],
        "reasons": report.get("reasons", {}), "crm_applied": CrmDatabase(settings.crm_database_url).count_applied(),
        "task_workers": settings.task_workers,
        # plan, pin-run, commit-decided, the task run Prefect adds for the process-chunks subflow,
        # then per chunk: load, each step, validate, commit
        "expected_task_runs": 4 + run["chunk_count"] * (len(plan["steps"]) + 3),
        "breakdown": {f"step:{k}": v for k, v in tool_seconds.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one benchmark mode, in a process of its own")
    parser.add_argument("mode", choices=["generate", "plain", "prefect", "prefect-walked", "airlock"])
    parser.add_argument("--input", type=Path, required=True, help="the CSV (written by 'generate')")
    parser.add_argument("--records", type=int, default=0, help="generate: how many accounts")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="generate: draw from companies scaled to --records and write their reference here")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="where to write the result as JSON")
    args = parser.parse_args(argv)
    if args.mode == "generate":
        write_dataset(args.records, args.input, args.data_dir)
        return 0
    workdir = args.workdir or Path.cwd()
    workdir.mkdir(parents=True, exist_ok=True)
    runner = {"plain": run_plain, "prefect": run_prefect, "airlock": run_airlock,
              "prefect-walked": partial(run_prefect, opaque_data=False)}[args.mode]
    result = runner(args.input.resolve(), workdir.resolve())
    result["pid"] = os.getpid()
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
