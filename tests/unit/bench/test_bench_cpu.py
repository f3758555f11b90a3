"""The benchmark's CPU timeline: each process group's CPU, second by second, as a share of a core."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import psutil
import pytest


def test_an_ended_process_keeps_its_cpu_and_spans_become_shares_of_a_core(
        bench_module: Callable[[str], ModuleType]) -> None:
    common = bench_module("common")
    track = common.CpuTrack(started=100.0)
    track.add(100.0, {1: ("mode", 10.0), 2: ("children", 0.0), 3: ("server", 5.0)})
    track.add(100.5, {1: ("mode", 10.5), 2: ("children", 0.25), 3: ("server", 5.0)})
    track.add(101.0, {1: ("mode", 11.0), 3: ("server", 5.1)})  # the worker (2) has ended
    track.add(102.0, {1: ("mode", 11.5), 4: ("children", 0.5), 3: ("server", 5.1)})  # a new one started
    assert [totals["children"] for _, totals in track.samples] == [0.0, 0.25, 0.25, 0.75]
    rows = common.cpu_timeline(track.samples, step=1.0)
    assert [at for at, _ in rows] == [1.0, 2.0]
    assert rows[0][1] == pytest.approx({"mode": 100.0, "children": 25.0, "server": 10.0})
    assert rows[1][1] == pytest.approx({"mode": 50.0, "children": 50.0, "server": 0.0})
    assert common.cpu_timeline([], step=1.0) == []


def test_the_sampler_puts_the_mode_process_and_its_children_apart(
        bench_module: Callable[[str], ModuleType]) -> None:
    common = bench_module("common")
    sampler = common.TreeSampler()
    me = psutil.Process()
    sampler.window(mode_pid=me.ppid())  # this process is then one of the mode's children
    sampler.sample()
    groups = {group for group, _ in sampler.cpu.last.values()}
    assert sampler.cpu.last[me.pid][0] == "children" and groups <= {"children", "server"}
    assert sampler.cpu.last[me.pid][1] > 0


def test_timeline_prints_the_recorded_cpu(tmp_path: Path, bench_module: Callable[[str], ModuleType]) -> None:
    timeline = bench_module("timeline")
    table = tmp_path / "cpu-airlock-100000.csv"
    table.write_text("seconds,mode_pct,children_pct,server_pct\n1.0,98,0,3\n2.0,87,100,12\n")
    lines = timeline.cpu_lines(table)
    assert [line.split() for line in lines[2:]] == [["1.0", "98", "0", "3"], ["2.0", "87", "100", "12"]]
