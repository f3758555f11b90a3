"""The task runs of a benchmark's Airlock run, in start order, from a kept benchmark folder.

    .venv/bin/python bench/throughput.py --records 100000 --modes airlock --keep
    .venv/bin/python bench/timeline.py /tmp/airlock-bench-XXXX [--all]

Reads the Prefect server's own database (``prefect-server/prefect.db``): for each task run its start
and end in seconds from the first flow run's start, and how long it ran. Tool steps are left out unless
``--all``: the phases of a wave (tools, validation, commits) show in the load, validate and commit rows.
Then, second by second, the CPU of the run's process, its children and the Prefect server, which
``throughput.py`` records for each mode (``cpu-airlock-RECORDS.csv``).
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def timeline(database: Path, *, steps: bool) -> list[str]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        flows = connection.execute("SELECT name, start_time, end_time FROM flow_run ORDER BY start_time").fetchall()
        tasks = connection.execute("SELECT name, start_time, end_time FROM task_run WHERE start_time IS NOT NULL "
                                   "ORDER BY start_time").fetchall()
    starts = [when for _, start, _ in flows if (when := _when(start)) is not None]
    if not starts:
        return [f"{database}: no flow run started"]
    origin = min(starts)
    lines = ["  start     end   took  task run"]
    for name, start, end in tasks:
        if not steps and name.startswith("execute-step"):
            continue
        began, ended = _when(start), _when(end)
        assert began is not None
        finish = f"{(ended - origin).total_seconds():7.2f}" if ended else "      -"
        took = f"{(ended - began).total_seconds():6.2f}" if ended else "     -"
        lines.append(f"{(began - origin).total_seconds():7.2f} {finish} {took}  {name}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("folder", type=Path, help="a benchmark folder kept with --keep")
    parser.add_argument("--all", action="store_true", help="list the tool steps too")
    args = parser.parse_args(argv)
    databases = sorted(args.folder.glob("**/prefect.db"))
    if not databases:
        parser.error(f"no Prefect server database under {args.folder}: was it kept with --keep?")
    print("\n".join(timeline(databases[0], steps=args.all)))
    for table in sorted(args.folder.glob("cpu-airlock-*.csv")):
        print("\n".join(["", *cpu_lines(table)]))
    return 0


def cpu_lines(table: Path) -> list[str]:
    """A CPU timeline the benchmark wrote (``cpu-MODE-RECORDS.csv``), one line per second: the
    share of a core the run's process, its children (worker processes, the demo ticketing service)
    and the Prefect server used. Its clock starts with the mode process, before the flow starts."""
    rows = [line.split(",") for line in table.read_text().splitlines()[1:] if line]
    lines = [f"{table.name}: % of one core, by seconds since the mode process started",
             "seconds  run's process  children  server"]
    lines += [f"{float(at):7.1f}  {mode:>13}  {children:>8}  {server:>6}" for at, mode, children, server in rows]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
