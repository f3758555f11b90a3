"""bench/throughput.py's summary: the CPU the run's process and its children used while timed, where
measured (results recorded before that have none, and still render)."""

from __future__ import annotations

import copy
import gc
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[3] / "bench"


def test_the_timed_cpu_of_the_run_process_and_its_children_is_shown_where_measured(
        bench_module: Callable[[str], ModuleType]) -> None:
    render = bench_module("throughput").render
    stored = json.loads((BENCH / "results" / "throughput.json").read_text())
    older = copy.deepcopy(stored)
    for result in older["results"]:
        result.pop("timed_cpu_seconds", None)
    before = render(older)
    assert "CPU while timed" not in before and "Airlock 100,000: written" in before
    summary = copy.deepcopy(stored)
    airlock = next(r for r in summary["results"] if r["mode"] == "airlock" and r["size"] == 100_000)
    airlock["wall_seconds"] = 25.0
    airlock["timed_cpu_seconds"] = {"run_process": 21.5, "children": 12.25, "collector": 0.183,
                                    "collections": {"0": 1}}
    lines = render(summary).splitlines()
    assert ("Airlock 100,000 CPU while timed: the run's process 21.5 s (busy 86% of the 25.0 s; its garbage "
            "collector 0.18 s), its worker processes and ticketing service 12.2 s (49%)") in lines


def test_the_collector_clock_adds_up_collections_by_generation(bench_module: Callable[[str], ModuleType]) -> None:
    clock = bench_module("modes").CollectorClock()
    gc.callbacks.append(clock)
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        gc.callbacks.remove(clock)
    assert clock.collections.get(0, 0) >= 1 and clock.collections.get(2, 0) >= 1
    assert 0.0 < clock.seconds < 5.0
