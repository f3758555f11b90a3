"""``airlock runs``: what ran, what it did, every record accounted for."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from airlock.cli.common import console, open_store, print_json, settings
from airlock.report import build_report
from airlock.store.runs import ACTIVE_STATUSES

app = typer.Typer(no_args_is_help=True, help="Runs and their reports.")


@app.command("list")
def list_command(limit: Annotated[int, typer.Option(help="at most this many")] = 20,
                 as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Recent runs, newest first."""
    store = open_store(settings())
    rows = store.list_runs(limit)
    if as_json:
        print_json([{k: v for k, v in r.items() if k not in ("report", "spec_hashes")} for r in rows])
        return
    table = Table(title="runs")
    for column in ("run", "playbook", "status", "started", "by", "records", "written", "pending", "dead"):
        table.add_column(column)
    for row in rows:
        counts = (row["report"] or {}).get("counts", {})
        status = row["status"]
        lease = row["lease_expires_at"]
        if status in ACTIVE_STATUSES and (lease is None or lease < store.now()):
            status += " (lease expired: its process stopped; resume with --run-id)"
        table.add_row(row["id"][:8], row["playbook"], status, f"{row['started_at']:%Y-%m-%d %H:%M}",
                      row["started_by"], str(row["record_count"]), str(counts.get("written", "")),
                      str(counts.get("pending_review", "")), str(counts.get("dead_lettered", "")))
    console.print(table)


@app.command("show")
def show_command(run_id: Annotated[str, typer.Argument(help="run id or a unique prefix")],
                 as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A run's report: counts per outcome that add up to the input, and why records were flagged."""
    store = open_store(settings())
    run = store.get_run(run_id)
    report = build_report(store, run["id"], with_records=as_json)
    if as_json:
        print_json(report)
        return
    from airlock.cli.run import show_summary

    console.print(f"status {run['status']}, started {run['started_at']:%Y-%m-%d %H:%M:%S} by {run['started_by']}, "
                  f"input {run['input_path']}")
    show_summary(report)
