"""``airlock plan "REQUEST" --out playbooks/NAME.yaml``: a request in words, planned once by the model,
checked, and written as a pinned playbook that schedules run without calling a model.

``airlock pin PLAYBOOK`` does the same for a playbook's ``request:`` (structured or in words).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from airlock.cli.common import console, open_store, print_json, settings
from airlock.errors import UserError
from airlock.playbook import Playbook, dump_playbook
from airlock.project import load_project_object
from airlock.settings import Settings

DEFAULT_INPUT = "data/accounts.csv"
DEFAULT_POLICY = "playbooks/enrich_accounts.yaml"


def plan_command(
    request: Annotated[str | None, typer.Argument(help="what to do, in words")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="where to write the pinned playbook")] = None,
    input: Annotated[str, typer.Option("--input", "-i", help="CSV whose columns and sample rows the planner sees")]
    = DEFAULT_INPUT,
    policy_from: Annotated[str | None, typer.Option("--policy-from", help="playbook whose policy the plan takes")]
    = None,
    show: Annotated[int | None, typer.Option("--show", help="print a kept planning conversation (by id)")] = None,
    list_kept: Annotated[bool, typer.Option("--list", help="list kept planning conversations, newest first")]
    = False,
    status: Annotated[str | None, typer.Option(help="with --list: accepted, repaired, fallback_rules, refused "
                                                    "or dead_letter")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite --out if it exists")] = False,
) -> None:
    """Plan a request in words with the configured model (AIRLOCK_PLANNER) and pin the checked plan."""
    config = settings()
    if show is not None:
        print_json(open_store(config).get_plan_conversation(show))
        return
    if list_kept:
        _list(config, status)
        return
    if not request or not request.strip():
        raise UserError("say what to do: airlock plan \"fill in missing industries\" --out playbooks/NAME.yaml")
    if out is None:
        raise UserError("--out FILE is needed: where to write the pinned playbook")
    if out.exists() and not force:
        raise UserError(f"{out} exists; pass --force to overwrite it")
    if policy_from is None and (config.project_dir / DEFAULT_POLICY).is_file():
        policy_from = DEFAULT_POLICY
    plan_text = load_project_object(config.project_dir, "tasks/plan.py:plan_text")
    input_model = load_project_object(config.project_dir, "tasks/plan.py:PlanTextInput")
    planned = plan_text(input_model(request=request, input_path=input, policy_playbook=policy_from))
    notes = "".join(f"\n  not possible: {u}" for u in planned.unsupported)
    pinned = Playbook(name=out.stem, description=f"Planned by {config.planner} from: {request}{notes}",
                      input=input, plan=planned.plan, plan_hash=planned.plan.hash)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# Planned from a request in words ({planned.status}); review it before scheduling it.\n"
                   + dump_playbook(pinned), encoding="utf-8")
    console.print(f"{planned.explanation}", soft_wrap=True, highlight=False)
    console.print(f"pinned plan {planned.plan.hash} -> {out} (planning conversation {planned.conversation_id}, "
                  f"{planned.tokens} tokens, ${planned.cost_usd:.6f})", soft_wrap=True, highlight=False)


def _list(config: Settings, status: str | None) -> None:
    kept = open_store(config).plan_conversations_for(status=status)
    table = Table(title=f"{len(kept)} planning conversation(s)")
    for column in ("id", "at", "status", "planner", "plan", "tokens", "cost USD", "request"):
        table.add_column(column, overflow="fold")
    for row in kept:
        table.add_row(str(row["id"]), f"{row['at']:%Y-%m-%d %H:%M}", row["status"], row["planner"],
                      row["plan_hash"] or "-", str(row["tokens"]), f"{row['cost_usd']:.6f}", row["request"][:80])
    console.print(table)
