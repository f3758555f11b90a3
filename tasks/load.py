"""Pin a run (its plan and a snapshot of its input) and load its records back chunk by chunk."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from airlock.dataset import ChunkRecords, read_dataset
from airlock.errors import NotFound, StateConflict
from airlock.plan import Plan
from airlock.recovery import reap
from airlock.settings import Settings
from tasks.resources import prepare_validation, resources

# A live run renews its lease (settings.lease_seconds) as its tasks finish; a run whose lease ran
# out is no longer alive, and `airlock runs reap` marks it crashed.


class PinRunInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: Plan
    playbook: str
    input_path: str
    started_by: str
    dry_run: bool = False
    review_timeout: float = 0.0
    run_id: str | None = None
    flow_run_id: str | None = None


class PinnedRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    record_count: int
    chunk_count: int
    chunk_size: int
    resumed: bool


def chunk_size_for(records: int, plan: Plan, settings: Settings) -> int:
    """The plan's chunk size (else the configured one), grown when there are many records: each chunk
    is a task run per step, and Prefect fan-outs must stay well under a thousand task runs."""
    return max(plan.policy.chunk_size or settings.chunk_size, math.ceil(records / settings.max_chunks), 1)


def pin_run_fn(request: PinRunInput) -> PinnedRun:
    res = resources()
    store = res.store
    lease = timedelta(seconds=res.settings.lease_seconds)
    # Every run start (CLI or deployment) reaps runs whose process died, so none stays "running".
    reap(store, res.notifier, actor="airlock", review_url=res.settings.review_url)
    if request.run_id is not None:
        try:
            run = store.get_run(request.run_id)
        except NotFound:  # a new run with an id the caller chose
            run = None
        if run is not None:
            lease_end = run["lease_expires_at"]
            # The lease belongs to a flow run. The same flow run coming back (a suspended review resumed,
            # or Prefect retrying the flow run) is its holder; any other caller must wait for it.
            same_flow_run = request.flow_run_id is not None and run["prefect_flow_run_id"] == request.flow_run_id
            if (run["status"] in ("running", "waiting_review") and lease_end is not None
                    and lease_end > store.now() and not same_flow_run):
                raise StateConflict(f"run {run['id']} is {run['status']} in another process (its lease is alive); "
                                    "wait for it, or resume it once it has stopped")
            store.update_run(run["id"], status="running", prefect_flow_run_id=request.flow_run_id,
                             lease_expires_at=store.now() + lease)
            prepare_validation(run["chunk_size"])
            return PinnedRun(run_id=run["id"], record_count=run["record_count"], chunk_count=run["chunk_count"],
                             chunk_size=run["chunk_size"], resumed=True)
    plan = request.plan
    dataset = read_dataset(Path(request.input_path), key=plan.dataset.key, required=plan.dataset.columns)
    size = chunk_size_for(len(dataset.records), plan, res.settings)
    prepare_validation(size)  # while the records are stored
    run_id = request.run_id or str(uuid.uuid4())
    store.save_plan(plan.hash, plan.model_dump(mode="json"))
    store.create_run(
        id=run_id, playbook=request.playbook, plan_hash=plan.hash, status="running", started_by=request.started_by,
        input_path=request.input_path, input_hash=dataset.sha256, record_count=len(dataset.records),
        chunk_size=size, chunk_count=math.ceil(len(dataset.records) / size), dry_run=request.dry_run,
        review_timeout=request.review_timeout, spec_hashes=res.registry.spec_hashes(),
        prefect_flow_run_id=request.flow_run_id, lease_expires_at=store.now() + lease,
    )
    store.snapshot_records(run_id, dataset.records, size)
    store.audit("run.started", actor=request.started_by, run_id=run_id, subject=request.playbook, data={
        "plan_hash": plan.hash, "input": request.input_path, "input_hash": dataset.sha256,
        "records": len(dataset.records), "dry_run": request.dry_run, "request": plan.request,
    })
    return PinnedRun(run_id=run_id, record_count=len(dataset.records),
                     chunk_count=math.ceil(len(dataset.records) / size), chunk_size=size, resumed=False)


pin_run = task(name="pin-run", cache_policy=NO_CACHE)(pin_run_fn)


@task(name="load-chunk", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def load_chunk(run_id: str, chunk_no: int) -> ChunkRecords:
    return ChunkRecords(resources().store.chunk_records(run_id, chunk_no))
