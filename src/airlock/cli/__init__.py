"""The ``airlock`` command. One sub-app per noun; every mistake a person can make ends in one
line and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys

import click
import typer
from rich.console import Console

from airlock.cli import db, dlq, plan, review, run, runs, users
from airlock.errors import AirlockError, InfrastructureError, UserError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Airlock: AI-planned, validated, reviewable batch workflows on Prefect.")
app.command("run")(run.run_command)
app.command("demo")(run.demo_command)
app.command("pin")(run.pin_command)
app.command("plan")(plan.plan_command)
app.add_typer(review.app, name="review")
app.add_typer(dlq.app, name="dlq")
app.add_typer(runs.app, name="runs")
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")

err = Console(stderr=True)


def main(argv: list[str] | None = None) -> int:
    try:
        result = app(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except UserError as error:
        err.print(f"[red]error:[/red] {error.message}", highlight=False, soft_wrap=True)
        return 2
    except InfrastructureError as error:
        err.print(f"[red]error:[/red] {error.message} (retryable: try again when it is back)",
                  highlight=False, soft_wrap=True)
        return 3
    except AirlockError as error:
        err.print(f"[red]error:[/red] {error.message}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        err.print("interrupted: the run's completed chunks are stored; "
                  "resume it with 'airlock run PLAYBOOK --run-id ID'")
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
