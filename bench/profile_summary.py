"""Where a profiled mode spent its time: py-spy collapsed stacks (``throughput.py --py-spy DIR``)
grouped into the stages of an Airlock run, then the functions with the most inclusive time.

    .venv/bin/python bench/profile_summary.py DIR/airlock-100000.txt [--top 40]

With ``--gil`` profiles (what throughput.py records) every sample is the thread holding the GIL,
so the shares add up to the process's Python time, the resource a single Airlock process runs out of.
The run's process and its worker processes (pure tools, validation) are summarized apart: each has a
GIL of its own. A sample goes to the first category (in the order below) that any frame of its
stack matches.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("prefect: walking task parameters and results for futures",
     ("_resolve_parameters", "collect_task_run_inputs", "resolve_to_final_result")),
    ("great_expectations import", ("<module> (great_expectations",)),
    ("GX validation", ("GxRunner.validate", "GxRunner._definition")),
    ("tools (run_step)", ("run_step (airlock/execute.py", "call_tools (airlock/execute.py")),
    ("validation: proposals, rules, verdicts", ("validate_chunk (airlock/validation", "validate_chunk_fn",
                                                "judge_chunk")),
    ("worker processes: sending and receiving chunks", ("Queue.get (multiprocessing", "_sendback_result",
                                                        "ForkingPickler", "_ConnectionBase.recv")),
    ("commit: ledger, CRM writes, outcomes", ("commit_chunk_fn", "commit_records", "commit_decided_fn")),
    ("store: step outcomes", ("get_step_outcome", "save_step_outcome", "StepResult.from_bytes",
                              "StepResult.to_bytes")),
    ("store: chunk records", ("chunk_records",)),
    ("pin run: read CSV, snapshot", ("pin_run_fn",)),
    ("plan, resources", ("plan_request_fn", "resources (tasks/resources")),
    ("report", ("finish_run", "build_report")),
    ("baseline writes", ("write_task", "crm_changes", "apply_updates")),
    ("prefect: task engine (states, events, results)", ("task_engine.py", "run_task_sync")),
    ("prefect: flow engine, heartbeat", ("flow_engine.py",)),
    ("prefect: event loop, API and events clients", ("EventLoopThread", "EventsWorker", "_QueueServiceBase",
                                                      "WorkerThread", "asyncio/")),
    ("imports", ("_find_and_load",)),
)
LINE = re.compile(r":\d+\)")


def read_stacks(path: Path) -> Iterator[tuple[list[str], int]]:
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield [LINE.sub(")", frame) for frame in stack.split(";")], int(count)


def process_of(frames: list[str]) -> str:
    """py-spy --subprocesses starts each stack with the process (and its parent): a worker's says spawn_main."""
    heads = [frame for frame in frames[:2] if frame.startswith("process ")]
    return "worker processes" if any("spawn_main" in head for head in heads) else "run process"


def summarize(path: Path, top: int) -> str:
    by_process: dict[str, list[tuple[list[str], int]]] = {}
    for frames, count in read_stacks(path):
        by_process.setdefault(process_of(frames), []).append((frames, count))
    if not by_process:
        return f"{path}: no samples"
    return "\n\n".join(f"{path.name}, {process}: " + summarize_stacks(stacks, top)
                        for process, stacks in sorted(by_process.items()))


def summarize_stacks(stacks: list[tuple[list[str], int]], top: int) -> str:
    categories: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for frames, count in stacks:
        total += count
        stack = ";".join(frames)
        name = next((name for name, needles in CATEGORIES if any(n in stack for n in needles)), "other")
        categories[name] += count
        for frame in set(frames):
            if not frame.startswith("process "):
                inclusive[frame] += count
    lines = [f"{total} samples", "", "by stage:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in categories.most_common()]
    lines += ["", f"top {top} functions by inclusive share:"]
    lines += [f"  {n / total:6.1%}  {frame[:140]}" for frame, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("profiles", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    print("\n\n".join(summarize(path, args.top) for path in args.profiles))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
