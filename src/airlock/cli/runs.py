"""``airlock runs``: what ran, what it did, every record accounted for."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from airlock.cli.common import console, open_store, print_json, reap_runs, settings
from airlock.errors import StateConflict
from airlock.report import build_report

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
        if status in ("crashed", "interrupted", "failed"):
            status += f" (resume: airlock runs resume {row['id'][:8]})"
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
    # Writes sent (or about to be) whose outcome the ledger never heard: what a crash leaves. A resume
    # sends them again with the same keys, and the systems answer "already done" where they were.
    doubt = [e for e in store.effects_for(run["id"]) if e["status"] in ("intent", "unknown")]
    if doubt:
        by_target: dict[str, int] = {}
        for effect in doubt:
            by_target[effect["target"]] = by_target.get(effect["target"], 0) + 1
        listed = ", ".join(f"{n} to {target}" for target, n in sorted(by_target.items()))
        console.print(f"[yellow]writes with an unknown outcome: {listed}[/yellow]; settle them with "
                      f"'airlock runs resume {run['id'][:8]}'", soft_wrap=True)
    if run["error"]:
        console.print(f"last error: {run['error']}", soft_wrap=True)


@app.command("reap")
def reap_command(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Mark runs whose process died (their lease ran out) crashed, and notify the webhooks. Every
    command does this first; this command only reports it."""
    config = settings()
    crashed = reap_runs(open_store(config, reap_crashed=False), config)
    if as_json:
        print_json(crashed)
        return
    for run in crashed:
        console.print(f"run {run['id']} ({run['status']}) crashed: {run['why']}; "
                      f"resume: airlock runs resume {run['id'][:8]}", soft_wrap=True)
    console.print(f"{len(crashed)} run(s) marked crashed")


@app.command("resume")
def resume_command(run_id: Annotated[str, typer.Argument(help="run id or a unique prefix")],
                   review_timeout: Annotated[float | None, typer.Option(help="seconds to wait for reviewers")] = None,
                   as_json: Annotated[bool, typer.Option("--json")] = False) -> int:
    """Continue a crashed, interrupted or failed run on its pinned plan and input snapshot; completed
    chunks, model calls and writes are not repeated."""
    from airlock.cli.run import execute_run, show_summary

    config = settings()
    store = open_store(config)
    run = store.get_run(run_id)
    if run["status"] in ("running", "waiting_review"):
        raise StateConflict(f"run {run['id']} is {run['status']} and its lease is alive (until "
                            f"{run['lease_expires_at']:%H:%M:%S} UTC): it is not crashed; wait for it")
    if run["status"] == "completed":
        console.print(f"run {run['id']} already completed; resuming it again changes nothing")
    report = execute_run(config, run["playbook"], run["input_path"], review_timeout, bool(run["dry_run"]),
                         run["id"], quiet=as_json)
    if as_json:
        print_json(report)
    else:
        show_summary(report)
    return 0 if report["conserved"] else 1
