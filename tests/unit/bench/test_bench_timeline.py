"""bench/timeline.py: task runs in start order, in seconds from the first flow run's start."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from types import ModuleType


def test_task_runs_are_listed_from_the_flow_start_and_steps_only_on_request(
        tmp_path: Path, bench_module: Callable[[str], ModuleType]) -> None:
    module = bench_module("timeline")
    database = tmp_path / "prefect-server" / "prefect.db"
    database.parent.mkdir()
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE flow_run (name TEXT, start_time TEXT, end_time TEXT)")
        connection.execute("CREATE TABLE task_run (name TEXT, start_time TEXT, end_time TEXT)")
        connection.execute("INSERT INTO flow_run VALUES ('f', '2026-11-28T10:00:00Z', '2026-11-28T10:00:09Z')")
        connection.executemany("INSERT INTO task_run VALUES (?, ?, ?)", [
            ("commit-chunk-1", "2026-11-28T10:00:05.5Z", None),
            ("load-chunk-1", "2026-11-28T10:00:01Z", "2026-11-28T10:00:01.25Z"),
            ("execute-step-1", "2026-11-28T10:00:02Z", "2026-11-28T10:00:03Z"),
            ("never-started", None, None),
        ])
    lines = module.timeline(database, steps=False)
    assert [line.split() for line in lines[1:]] == [["1.00", "1.25", "0.25", "load-chunk-1"],
                                                  ["5.50", "-", "-", "commit-chunk-1"]]
    assert any("execute-step-1" in line for line in module.timeline(database, steps=True))
    assert module.main([str(tmp_path)]) == 0
