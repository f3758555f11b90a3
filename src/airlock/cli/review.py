"""``airlock review``: the review queue from a terminal, and ``serve`` for the review page.

The actor is the user of AIRLOCK_TOKEN once users exist, before that AIRLOCK_USER or the OS user."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from airlock import review
from airlock.cli.common import acting_as, console, dead_letter_replayer, open_store, print_json, run_flow, settings
from airlock.errors import UserError
from airlock.project import load_project_object
from airlock.review.effects import Hooks
from airlock.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Decide flagged records: approve writes them, reject never does.")


@app.command("list")
def list_command(
    run: Annotated[str | None, typer.Option("--run", help="only this run (id or prefix)")] = None,
    reason: Annotated[str | None, typer.Option(help="only items with a reason code containing this")] = None,
    status: Annotated[str, typer.Option(help="pending, approved, rejected or all")] = "pending",
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The queue, riskiest first: the record, the proposed change and why it was flagged."""
    store = open_store(settings())
    run_id = store.get_run(run)["id"] if run else None
    items = store.review_items_for(run_id=run_id, status=None if status == "all" else status, reason=reason,
                                   limit=limit)
    if as_json:
        print_json(items)
        return
    table = Table(title=f"{len(items)} review item(s)" + (f" of run {run_id[:8]}" if run_id else ""))
    for column in ("item", "run", "record", "change", "why", "status"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(str(item["id"]), item["run_id"][:8], item["record_id"], _changes(item["changes"]),
                      "\n".join(item["reasons"]), item["status"])
    console.print(table)


def _changes(changes: dict[str, Any]) -> str:
    lines = []
    for field, change in changes.items():
        confidence = change.get("confidence")
        suffix = f" ({confidence:.2f})" if isinstance(confidence, (int, float)) and confidence < 1 else ""
        lines.append(f"{field}: {change.get('before')!s} → {change.get('after')!s}{suffix}")
    return "\n".join(lines)


def _decide(decision: str, item_ids: list[int], run: str | None, all_pending: bool, note: str) -> None:
    config = settings()
    store = open_store(config)
    actor = acting_as(config, store, "reviewer")
    if all_pending:
        if run is None:
            raise UserError("--all needs --run: decide one run's queue at a time")
        item_ids = [i["id"] for i in store.review_items_for(run_id=store.get_run(run)["id"])]
        if not item_ids:
            console.print("nothing pending")
            return
    result = review.decide(store, item_ids, decision, actor=actor, source="cli", note=note)
    console.print(f"{decision} {len(result.decided)} item(s) as {actor}"
                  + (f"; {result.skipped} were already decided" if result.skipped else ""))
    how = review.take_effect(store, result.runs, resume=_resume, follow_up=lambda r: _follow_up(config, r, actor),
                             actor=actor)
    for run_id, what in how.items():
        counts = store.outcome_counts(run_id)
        console.print(f"run {run_id[:8]}: {what}; now {counts}")


def _resume(flow_run_id: str, run_input: dict[str, Any]) -> bool:
    from airlock.orchestration import api_outage_is_infrastructure, resume_paused_run

    with api_outage_is_infrastructure():
        return resume_paused_run(flow_run_id, run_input)


def _follow_up(config: Settings, run_id: str, actor: str) -> None:
    run_flow(load_project_object(config.project_dir, "flows/commit_decisions.py:commit_decisions"),
             run_id=run_id, actor=actor)


def page_hooks(config: Settings) -> Hooks:
    """The review page's ways to make decisions count: Prefect to resume runs, the project's flows
    (loaded by path) for follow-up commits and dead-letter replays."""
    return Hooks(resume=_resume, follow_up=lambda run_id, actor: _follow_up(config, run_id, actor),
                 replayer=dead_letter_replayer(config))


@app.command("serve")
def serve_command(
    host: Annotated[str | None, typer.Option(help="address to bind; default AIRLOCK_REVIEW_HOST (127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port; default AIRLOCK_REVIEW_PORT (8765)")] = None,
    secure_cookies: Annotated[bool, typer.Option(help="mark the session cookie Secure (behind TLS)")] = False,
) -> None:
    """The review page: one queue across runs, keyboard first. Log in with a token from 'airlock users add'."""
    import uvicorn

    from airlock.review.app import create_app

    config = settings()
    store = open_store(config)
    if not store.has_users():
        raise UserError("no users yet: create one with 'airlock users add NAME --role reviewer' to log in")
    bind, at = host or config.review_host, port or config.review_port
    console.print(f"review page on http://{bind}:{at} (Ctrl+C stops it)")
    uvicorn.run(create_app(store, page_hooks(config), secure_cookies=secure_cookies), host=bind, port=at,
                log_level="warning")


ItemIds = Annotated[list[int] | None, typer.Argument(help="review item ids (see 'airlock review list')")]
RunOpt = Annotated[str | None, typer.Option("--run", help="with --all: this run's queue")]
AllOpt = Annotated[bool, typer.Option("--all", help="every pending item of --run")]
NoteOpt = Annotated[str, typer.Option(help="a note kept with the decision")]


@app.command("approve")
def approve_command(item_ids: ItemIds = None, run: RunOpt = None, all_pending: AllOpt = False,
                    note: NoteOpt = "") -> None:
    """Approve items: their proposed change is written (now, or by the waiting run)."""
    _decide("approved", item_ids or [], run, all_pending, note)


@app.command("reject")
def reject_command(item_ids: ItemIds = None, run: RunOpt = None, all_pending: AllOpt = False,
                   note: NoteOpt = "") -> None:
    """Reject items: their proposed change is never written."""
    _decide("rejected", item_ids or [], run, all_pending, note)
