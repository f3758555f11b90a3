"""``airlock users``: reviewers, operators and admins. The first user can be added by anyone with
access to the store; after that, managing users needs an admin's AIRLOCK_TOKEN."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from airlock.cli.common import console, open_store, settings
from airlock.review import auth

app = typer.Typer(no_args_is_help=True, help="Users with roles; each logs in with a token shown once.")


@app.command("add")
def add_command(name: str, role: Annotated[str, typer.Option(help="reviewer, operator or admin")] = "reviewer"
                ) -> None:
    """Create a user and print their token (only its hash is stored: keep it now)."""
    config = settings()
    store = open_store(config)
    actor = auth.cli_identity(store, config, "admin").name
    token = auth.add_user(store, name, role, actor=actor)
    console.print(f"user {name} ({role}) added. Token, shown once:")
    print(token)


@app.command("token")
def token_command(name: str) -> None:
    """Issue a new token for a user (the old one stops working, its sessions end)."""
    config = settings()
    store = open_store(config)
    actor = auth.cli_identity(store, config, "admin").name
    token = auth.rotate_token(store, name, actor=actor)
    console.print(f"new token for {name}, shown once:")
    print(token)


@app.command("disable")
def disable_command(name: str) -> None:
    """Stop a user from logging in or deciding anything (their past decisions stay)."""
    config = settings()
    store = open_store(config)
    auth.set_disabled(store, name, True, actor=auth.cli_identity(store, config, "admin").name)
    console.print(f"user {name} disabled")


@app.command("enable")
def enable_command(name: str) -> None:
    config = settings()
    store = open_store(config)
    auth.set_disabled(store, name, False, actor=auth.cli_identity(store, config, "admin").name)
    console.print(f"user {name} enabled")


@app.command("list")
def list_command() -> None:
    """Users, their role and whether they are disabled (never their tokens)."""
    store = open_store(settings())
    table = Table(title="users")
    for column in ("name", "role", "created", "disabled"):
        table.add_column(column)
    for user in store.list_users():
        table.add_row(user["name"], user["role"], f"{user['created_at']:%Y-%m-%d %H:%M}", str(user["disabled"]))
    console.print(table)
