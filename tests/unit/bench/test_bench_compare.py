"""bench/compare.py: variants named on the command line, and the summary of interleaved rounds (per run,
then per variant the mean, the median and the mean of the round-by-round ratios to the first)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parents[3]


def _run(rate: float, wall: float = 25.0) -> dict[str, Any]:
    return {"records_per_second": rate, "wall_seconds": wall, "memory": {"tree_mib": 1400.0},
            "timed_cpu_seconds": {"run_process": 18.0, "children": 16.0}, "conserved": True}


def test_a_variant_is_a_checkout_with_optional_settings(bench_module: Callable[[str], ModuleType]) -> None:
    compare = bench_module("compare")
    plain = compare.parse_variant(f"after={PROJECT}")
    assert (plain.name, plain.project_dir, plain.env) == ("after", PROJECT, {})
    tuned = compare.parse_variant(f"eight={PROJECT}:AIRLOCK_TASK_WORKERS=8,AIRLOCK_CHUNK_WAVE=2")
    assert tuned.env == {"AIRLOCK_TASK_WORKERS": "8", "AIRLOCK_CHUNK_WAVE": "2"}


@pytest.mark.parametrize("text, says", [
    ("no-directory", "expected NAME=DIR"),
    ("=.", "expected NAME=DIR"),
    (f"x={PROJECT}:AIRLOCK_TASK_WORKERS", "is not VAR=VALUE"),
    ("x=/nonexistent/checkout", "is not an Airlock checkout"),
])
def test_a_malformed_variant_is_refused_with_what_is_wrong(
        bench_module: Callable[[str], ModuleType], text: str, says: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=says):
        bench_module("compare").parse_variant(text)


def test_the_summary_compares_each_variant_with_the_first_round_by_round(
        bench_module: Callable[[str], ModuleType]) -> None:
    compare = bench_module("compare")
    before, after = compare.Variant("before", PROJECT), compare.Variant("after", PROJECT)
    runs = [(1, "before", _run(3000.0)), (1, "after", _run(3300.0)),
            (2, "after", _run(4400.0)), (2, "before", _run(4000.0)),
            (3, "before", {"error": "exit 1: boom"}), (3, "after", _run(5000.0))]
    lines = compare.summarize([before, after], runs).splitlines()
    assert any(line.split()[:3] == ["1", "before", "3,000"] for line in lines)
    assert any("FAILED: exit 1: boom" in line for line in lines)
    assert "before                   mean 3,500, median 3,500 records/s over 2 run(s)" in lines
    # Round 3 has no 'before' to compare with: the ratio is over rounds 1 and 2 (1.1 each).
    assert ("after                    mean 4,233, median 4,400 records/s over 3 run(s), "
            "1.100 x before round by round") in lines
