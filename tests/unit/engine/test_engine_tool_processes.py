"""Pure tools in worker processes: the same outputs as in the run's process, only pure tools go there,
a dead worker is a retryable infrastructure error, and a worker whose tool differs is refused."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import psutil
import pytest
from pydantic import BaseModel, ConfigDict

from airlock.errors import ConfigError, InfrastructureError, is_retryable
from airlock.execute import ToolCache, call_tools, run_step, step_payloads
from airlock.plan import Plan
from airlock.registry import SideEffect, ToolRegistry, tool
from airlock.tool_processes import ToolProcesses, default_processes

RECORDS = [{"id": str(i), "name": name} for i, name in enumerate(["acme", "beta", "", "boom", "acme", "x" * 50])]


class NameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None


class ShoutOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shout: str | None = None
    pid: int = 0


def registry_of(effect: str = "none", version: str = "1") -> ToolRegistry:
    """Module level, so that a worker process can import it and build the same registry."""

    def shout(data: NameIn) -> ShoutOut:
        """Upper-cases a name; refuses one it cannot shout."""
        if data.name and len(data.name) > 20:
            raise ValueError("too long to shout")
        return ShoutOut(shout=(data.name or "").upper() or None, pid=os.getpid())

    return ToolRegistry([tool(effect=SideEffect(effect), version=version, name="shout")(shout)])


def plan() -> Plan:
    return Plan.model_validate({
        "request": "shout", "dataset": {"name": "d", "columns": ["id", "name"]},
        "steps": [{"id": "loud", "tool": "shout", "inputs": {"name": "record.name"}}],
        "proposes": {"shout": "steps.loud.shout"}})


@pytest.fixture
def pool() -> Any:
    processes = ToolProcesses(1, registry_of(), registry_of, (), min_records=1)
    yield processes
    processes.close()


def _without_pid(outputs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rid: {k: v for k, v in out.items() if k != "pid"} for rid, out in outputs.items()}


def test_a_pure_step_runs_in_a_worker_with_the_same_outputs_and_failures(pool: ToolProcesses) -> None:
    the_plan = plan()
    step = the_plan.steps[0]
    here = call_tools(step, registry_of(), step_payloads(the_plan, step, RECORDS, {}))
    there = run_step(the_plan, step, registry_of(), RECORDS, {}, offload=pool.run)
    assert _without_pid(there.outputs) == _without_pid(here.outputs)
    assert set(there.failures) == set(here.failures) == {"5"}  # the long name failed alone, in the worker too
    assert there.failures["5"].error_type == "ValueError" and there.failures["5"].input == {"name": "x" * 50}
    pids = {out["pid"] for out in there.outputs.values()}
    assert pids == pool.worker_pids and os.getpid() not in pids


def test_small_steps_and_tools_with_effects_stay_in_the_run_process(pool: ToolProcesses) -> None:
    the_plan = plan()
    small = ToolProcesses(1, registry_of(), registry_of, (), min_records=100)
    cache = ToolCache()
    try:
        result = run_step(the_plan, the_plan.steps[0], registry_of(), RECORDS, {}, cache=cache, offload=small.run)
        assert {out["pid"] for out in result.outputs.values()} == {os.getpid()}
        assert small.worker_pids == set()
        assert result.cache_hits == 1  # in place, the run's pure-tool cache still serves the repeated name
    finally:
        small.close()
    # A tool that reads from a system is not pure: it never leaves the run's process.
    reading = registry_of("read")
    result = run_step(the_plan, the_plan.steps[0], reading, RECORDS, {}, offload=pool.run)
    assert {out["pid"] for out in result.outputs.values()} == {os.getpid()}
    assert pool.worker_pids == set()


def test_a_killed_worker_is_a_retryable_error_and_the_next_call_starts_a_new_one(pool: ToolProcesses) -> None:
    the_plan = plan()
    run_step(the_plan, the_plan.steps[0], registry_of(), RECORDS, {}, offload=pool.run)
    (first,) = pool.worker_pids
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 10
    with pytest.raises(InfrastructureError) as caught:
        while time.monotonic() < deadline:  # the pool notices the death on its next use
            run_step(the_plan, the_plan.steps[0], registry_of(), RECORDS, {}, offload=pool.run)
            time.sleep(0.05)
    assert is_retryable(caught.value)
    again = run_step(the_plan, the_plan.steps[0], registry_of(), RECORDS, {}, offload=pool.run)
    assert len(again.outputs) == 5 and first not in {out["pid"] for out in again.outputs.values()}


def test_a_worker_whose_tool_differs_from_the_checked_one_is_refused() -> None:
    the_plan = plan()
    other = ToolProcesses(1, registry_of(), registry_of, ("none", "2"), min_records=1)
    try:
        with pytest.raises(ConfigError, match="not the tool the plan was checked against"):
            run_step(the_plan, the_plan.steps[0], registry_of(), RECORDS, {}, offload=other.run)
    finally:
        other.close()


def test_a_pool_needs_a_process_and_the_default_leaves_the_run_one_core() -> None:
    with pytest.raises(ConfigError):
        ToolProcesses(0, registry_of(), registry_of, ())
    assert default_processes() == max(0, min(4, (os.cpu_count() or 1) - 1))


def test_ctrl_c_is_left_to_the_run_process(pool: ToolProcesses) -> None:
    the_plan = plan()
    run_step(the_plan, the_plan.steps[0], registry_of(), RECORDS, {}, offload=pool.run)
    (worker,) = pool.worker_pids
    os.kill(worker, signal.SIGINT)  # what a terminal's Ctrl-C sends to every process of the group
    time.sleep(0.2)
    again = run_step(the_plan, the_plan.steps[0], registry_of(), RECORDS, {}, offload=pool.run)
    assert {out["pid"] for out in again.outputs.values()} == {worker}


def shout_all(names: list[str], *, suffix: str = "") -> tuple[list[str], int]:
    """A pure function a worker can import by name, as validation is sent there."""
    if "boom" in names:
        raise ValueError("cannot shout boom")
    return [name.upper() + suffix for name in names], os.getpid()


def test_a_pure_function_runs_in_a_worker_when_it_is_about_enough_records() -> None:
    pool = ToolProcesses(1, registry_of(), registry_of, (), min_records=3)
    try:
        assert pool.call(2, shout_all, ["a", "b"], suffix="!") == (["A!", "B!"], os.getpid())  # too few: here
        assert pool.offloaded == {} and pool.worker_pids == set()
        shouted, pid = pool.call(3, shout_all, ["a", "b", "c"], suffix="!")
        assert shouted == ["A!", "B!", "C!"] and pid != os.getpid()
        assert pool.worker_pids == {pid} and pool.offloaded == {"shout_all": 1}
        with pytest.raises(ValueError, match="cannot shout boom"):  # its own errors come back as they are
            pool.call(3, shout_all, ["a", "boom", "c"])
    finally:
        pool.close()


def test_a_worker_collects_garbage_rarely_and_never_rescans_its_start_up(pool: ToolProcesses) -> None:
    import gc

    threshold = pool.call(1, gc.get_threshold)
    frozen = pool.call(1, gc.get_freeze_count)
    assert threshold[0] >= 50_000 and frozen > 0
    assert gc.get_threshold() != threshold  # the calling process keeps its own settings


def test_start_starts_the_workers_before_the_first_call(pool: ToolProcesses) -> None:
    def workers() -> list[psutil.Process]:
        return [child for child in psutil.Process().children()
                if "spawn_main" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE]

    assert workers() == []
    pool.start()
    deadline = time.monotonic() + 30
    while not workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(workers()) == 1
    assert pool.offloaded == {}  # starting is not a call


def nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_a_tool_step_runs_in_place_while_every_worker_is_busy(pool: ToolProcesses) -> None:
    import threading

    the_plan = plan()
    step = the_plan.steps[0]
    napping = [threading.Thread(target=pool.call, args=(1, nap, 1.5)) for _ in range(2)]  # one runs, one waits
    for thread in napping:
        thread.start()
    deadline = time.monotonic() + 10
    while not pool.busy() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.busy()
    here = run_step(the_plan, step, registry_of(), RECORDS, {}, offload=pool.run)
    assert {out["pid"] for out in here.outputs.values()} == {os.getpid()}  # not queued behind the nap
    for thread in napping:
        thread.join()
    assert not pool.busy()
    there = run_step(the_plan, step, registry_of(), RECORDS, {}, offload=pool.run)
    assert os.getpid() not in {out["pid"] for out in there.outputs.values()}
    assert pool.offloaded == {"nap": 2, "tool:shout": 1}
