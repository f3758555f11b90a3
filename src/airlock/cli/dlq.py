"""``airlock dlq``: inspect, replay and discard dead letters without an engineer."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from airlock import deadletter
from airlock.cli.common import acting_as, console, dead_letter_replayer, open_store, print_json, settings
from airlock.errors import UserError

app = typer.Typer(no_args_is_help=True, help="Dead letters: what failed after retries and fallbacks.")

RunOpt = Annotated[str | None, typer.Option("--run", help="only this run (id or prefix)")]
StepOpt = Annotated[str | None, typer.Option("--step", help="only this step")]
ErrOpt = Annotated[str | None, typer.Option("--error-type", help="only this error type")]


@app.command("list")
def list_command(run: RunOpt = None, step: StepOpt = None, error_type: ErrOpt = None,
                 status: Annotated[str, typer.Option(help="open, replayed, discarded or all")] = "open",
                 as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Dead letters, oldest first."""
    store = open_store(settings())
    letters = deadletter.list_letters(store, status=None if status == "all" else status, run_id=run, step_id=step,
                                      error_type=error_type)
    if as_json:
        print_json(letters)
        return
    table = Table(title=f"{len(letters)} dead letter(s)")
    for column in ("id", "run", "kind", "stage/step", "records", "error", "attempts", "status"):
        table.add_column(column)
    for letter in letters:
        records = letter["record_ids"]
        shown = ", ".join(records[:3]) + (f" +{len(records) - 3}" if len(records) > 3 else "")
        table.add_row(str(letter["id"]), letter["run_id"][:8], letter["kind"],
                      f"{letter['stage']}/{letter['step_id'] or '-'}", shown,
                      f"{letter['error_type']}: {letter['error'][:60]}", str(len(letter["attempts"])),
                      letter["status"])
    console.print(table)


@app.command("show")
def show_command(letter_id: int) -> None:
    """Everything about one dead letter: payload, error, every attempt."""
    print_json(deadletter.show(open_store(settings()), letter_id))


def _selection(store: Any, letter_ids: list[int], run: str | None, step: str | None, error_type: str | None,
               all_matching: bool) -> list[int]:
    if all_matching:
        return [letter["id"] for letter in deadletter.list_letters(store, run_id=run, step_id=step,
                                                                   error_type=error_type)]
    if not letter_ids:
        raise UserError("name dead letter ids, or --all with filters")
    return letter_ids


IdsArg = Annotated[list[int] | None, typer.Argument(help="dead letter ids")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="why; kept in the audit trail")]
AllOpt = Annotated[bool, typer.Option("--all", help="every open letter matching the filters")]


@app.command("replay")
def replay_command(letter_ids: IdsArg = None, reason: ReasonOpt = "", run: RunOpt = None, step: StepOpt = None,
                   error_type: ErrOpt = None, all_matching: AllOpt = False,
                   allow_changed_tools: Annotated[bool, typer.Option(help="replay even if a tool's code changed")]
                   = False) -> None:
    """Re-run only the dead-lettered records, with the run's pinned plan; nothing is written twice."""
    config = settings()
    store = open_store(config)
    ids = _selection(store, letter_ids or [], run, step, error_type, all_matching)
    if not ids:
        console.print("nothing to replay")
        return
    result = deadletter.replay(store, ids, actor=acting_as(config, store, "operator"), reason=reason,
                               replayer=dead_letter_replayer(config), allow_changed_tools=allow_changed_tools)
    for letter_id, outcome in result.items():
        written = ", ".join(f"{n} {name}" for name, n in outcome["written"].items()) or "nothing written"
        console.print(f"dead letter {letter_id}: {outcome['records']} record(s) replayed: {written}; "
                      f"{outcome['review']} to review, {outcome['rejected']} rejected, "
                      f"{outcome['failed_again']} failed again (a new dead letter)", soft_wrap=True)


@app.command("discard")
def discard_command(letter_ids: IdsArg = None, reason: ReasonOpt = "", run: RunOpt = None, step: StepOpt = None,
                    error_type: ErrOpt = None, all_matching: AllOpt = False) -> None:
    """Give up on dead letters on purpose; their records stay dead_lettered, with your reason."""
    config = settings()
    store = open_store(config)
    ids = _selection(store, letter_ids or [], run, step, error_type, all_matching)
    done = deadletter.discard(store, ids, actor=acting_as(config, store, "operator"), reason=reason)
    console.print(f"discarded {len(done)} dead letter(s)")
