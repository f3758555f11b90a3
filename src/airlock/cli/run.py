"""``airlock run``, ``airlock demo`` and ``airlock pin``."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from airlock.cli.common import acting_as, console, open_store, print_json, run_flow, settings
from airlock.errors import AirlockError, InfrastructureError, UserError
from airlock.playbook import Playbook, dump_playbook, load_playbook
from airlock.project import load_project_object
from airlock.report import build_report
from airlock.settings import Settings
from airlock.store import Store
from airlock.store.runs import ACTIVE_STATUSES

DEMO_PLAYBOOK = "playbooks/enrich_accounts.yaml"


def run_command(
    playbook: Annotated[str, typer.Argument(help="playbook YAML file")],
    input: Annotated[str | None, typer.Option("--input", "-i", help="CSV to process (default: the playbook's)")] = None,
    review_timeout: Annotated[float | None, typer.Option(help="seconds to wait for reviewers; 0 runs headless")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="stop before any write; show what would change")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the run report as JSON on stdout")] = False,
    run_id: Annotated[str | None, typer.Option(help="resume this run: stored work is not redone")] = None,
) -> int:
    """Plan, execute, validate and commit a playbook over a dataset."""
    if review_timeout is not None and review_timeout < 0:
        raise UserError("--review-timeout must be 0 or more seconds")
    config = settings()
    report = execute_run(config, playbook, input, review_timeout, dry_run, run_id, quiet=as_json)
    if as_json:
        print_json(report)
    else:
        if dry_run:
            show_dry_run_changes(report)
        show_summary(report)
    return 0 if report["conserved"] else 1


def demo_command(
    review_timeout: Annotated[float, typer.Option(help="seconds to wait for reviewers")] = 0.0,
) -> int:
    """The demo: enrich the ~2,000 sample accounts end to end on the embedded default
    (SQLite, ephemeral Prefect, no API key)."""
    config = settings()
    console.print(f"[bold]Airlock demo[/bold]: state in {config.state_dir}")
    report = execute_run(config, DEMO_PLAYBOOK, None, review_timeout, False, None, quiet=False)
    show_summary(report)
    short = report["run_id"][:8]
    if report["counts"].get("pending_review"):
        console.print(
            f"\n[bold]{report['counts']['pending_review']}[/bold] record(s) wait for review. Next:\n"
            f"  airlock users add NAME --role reviewer       # once: a reviewer and their token\n"
            f"  airlock review serve                         # the review page: j/k move, a approve, r reject\n"
            f"  airlock review list --run {short}           # or at the terminal: what was flagged and why\n"
            f"  airlock review approve ITEM …                # write them (or 'reject'; --run {short} --all)\n"
            f"  airlock dlq list --run {short}              # what failed, to inspect and replay\n"
            f"  airlock runs show {short}                   # the report again",
            soft_wrap=True,
        )
    return 0 if report["conserved"] else 1


def pin_command(
    playbook: Annotated[str, typer.Argument(help="a playbook with a request:")],
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the pinned playbook")],
    input: Annotated[str | None, typer.Option("--input", "-i", help="CSV whose columns the plan reads")] = None,
) -> None:
    """Plan a playbook's request now and write a pinned playbook (plan + plan_hash) that schedules
    can run without planning again."""
    config = settings()
    preflight = load_project_object(config.project_dir, "flows/run_request.py:preflight")
    checked = preflight(playbook, input)
    source = load_playbook(_resolve(config, playbook))
    pinned = Playbook(name=source.name, description=source.description, input=source.input,
                      plan=checked["plan"], plan_hash=checked["plan"].hash)
    out.write_text(f"# Pinned from {playbook}; edit the source and pin again to change it.\n" + dump_playbook(pinned))
    console.print(f"pinned plan {checked['plan'].hash} ({checked['steps']} steps) -> {out}")


def _resolve(config: Settings, path: str) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() or candidate.exists() else config.project_dir / candidate


def execute_run(config: Settings, playbook: str, input_path: str | None, review_timeout: float | None,
                dry_run: bool, run_id: str | None, *, quiet: bool) -> dict[str, Any]:
    store = open_store(config)
    # Once users exist a run is started by the user of AIRLOCK_TOKEN, so four eyes compare like with like.
    actor = acting_as(config, store, "reviewer")
    preflight = load_project_object(config.project_dir, "flows/run_request.py:preflight")
    if run_id is not None:  # a resume: the run goes on with its pinned plan and input
        run = store.get_run(run_id)
        run_id = run["id"]
        summary = f"resuming: {run['record_count']} records, plan {run['plan_hash']}"
    else:
        checked = preflight(playbook, input_path, warm=True)  # user mistakes stop here, before Prefect starts
        run_id = str(uuid.uuid4())
        summary = f"{checked['records']} records, plan {checked['plan'].hash}, {checked['steps']} steps"
    flow = load_project_object(config.project_dir, "flows/run_request.py:run_request")
    if not quiet:
        console.print(f"run [bold]{run_id}[/bold]: {summary}{' (dry run)' if dry_run else ''}")
    done = threading.Event()
    watcher = threading.Thread(target=_show_progress, args=(store, run_id, done, quiet), daemon=True)
    watcher.start()
    try:
        run_flow(flow, playbook=playbook, input_path=input_path, review_timeout=review_timeout, dry_run=dry_run,
                 run_id=run_id, started_by=actor)
    except (KeyboardInterrupt, InfrastructureError):
        # This process stops driving the run: release it so that it can be resumed at once.
        _mark_interrupted(store, run_id, actor)
        raise
    finally:
        done.set()
        watcher.join(timeout=5)
    return build_report(store, run_id, with_records=True)


def _mark_interrupted(store: Store, run_id: str, actor: str) -> None:
    """Stored work is kept; the run is no longer alive, so it can be resumed or run again."""
    try:
        if store.get_run(run_id)["status"] not in ACTIVE_STATUSES:
            return  # it ended (or failed) on its own before the interruption
        store.update_run(run_id, status="interrupted", lease_expires_at=None)
        store.audit("run.interrupted", actor=actor, run_id=run_id)
    except AirlockError:  # nothing was pinned yet, or the store is gone: nothing to mark
        return


def _show_progress(store: Store, run_id: str, done: threading.Event, quiet: bool) -> None:
    """Follow the run through the store (not through Prefect), so it works the same for a run
    started here or by a deployment."""
    if quiet:
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("starting Prefect", total=None)
        total = None
        while not done.wait(0.3):
            try:
                if total is None:
                    run = store.get_run(run_id)
                    steps = len(store.get_plan(run["plan_hash"])["steps"])
                    total = run["chunk_count"] * (steps + 2)
                    progress.update(bar, total=total, description=f"chunk tasks ({run['chunk_count']} chunks)")
                progress.update(bar, completed=store.progress(run_id))
            except UserError:
                continue  # the run is not pinned yet
        if total is not None:
            progress.update(bar, completed=store.progress(run_id))


def show_dry_run_changes(report: dict[str, Any], limit: int = 15) -> None:
    changed = [r for r in report["records"] if r["outcome"] == "would_write"]
    table = Table(title=f"dry run: {len(changed)} record(s) would be written (first {min(limit, len(changed))})")
    for column in ("record", "field", "before", "after", "confidence"):
        table.add_column(column)
    for record in changed[:limit]:
        for field, change in record["changes"].items():
            if change.get("after") == change.get("before"):
                continue
            confidence = change.get("confidence")
            table.add_row(record["id"], field, str(change.get("before")), str(change.get("after")),
                          f"{confidence:.2f}" if isinstance(confidence, (int, float)) else "")
    console.print(table)
    console.print(f"nothing was written; every change: airlock runs show {report['run_id'][:8]} --json")


def show_summary(report: dict[str, Any]) -> None:
    console.print(f"\n[bold]run {report['run_id']}[/bold]  playbook {report['playbook']}, plan {report['plan_hash']}",
                  soft_wrap=True)
    table = Table()
    table.add_column("outcome")
    table.add_column("records", justify="right")
    for name, count in report["counts"].items():
        table.add_row(name, str(count))
    table.add_row("[bold]total[/bold]", f"[bold]{report['accounted']}[/bold] of {report['input_count']} input")
    console.print(table)
    if report.get("writes_by_system"):
        systems = "; ".join(f"{target} " + ", ".join(f"{n} {status}" for status, n in by_status.items())
                            for target, by_status in report["writes_by_system"].items())
        console.print(f"writes: {systems}", soft_wrap=True)
    if report["reasons"]:
        top = ", ".join(f"{code} ({n})" for code, n in list(report["reasons"].items())[:6])
        console.print(f"flagged for: {top}")
    if report.get("model_usage"):
        show_model_usage(report)
    if not report["conserved"]:
        console.print("[red]records are unaccounted for: this is a bug, the run report above says where[/red]")


def show_model_usage(report: dict[str, Any]) -> None:
    """Tokens and cost of the run's model calls, per step, from the store."""
    usage = report["model_usage"]
    table = Table(title="model usage")
    for column in ("step", "model", "calls", "records", "tokens in", "tokens out", "cache read", "cache write",
                   "cost USD"):
        table.add_column(column, justify="left" if column in ("step", "model") else "right")
    for row in [*usage["steps"], {**usage["totals"], "step_id": "[bold]total[/bold]", "model": ""}]:
        table.add_row(str(row.get("step_id") or row.get("purpose") or "-"), str(row.get("model", "")),
                      str(row["calls"]), str(row["records"]), str(row["input_tokens"]), str(row["output_tokens"]),
                      str(row["cache_read_tokens"]), str(row["cache_write_tokens"]), f"{row['cost_usd']:.6f}")
    console.print(table)
    console.print(f"cost per record: ${usage['totals']['cost_per_record_usd']:.8f}")
