"""``airlock db``: the store's schema."""

from __future__ import annotations

import typer

from airlock.cli.common import console, settings
from airlock.store import make_engine, upgrade
from airlock.store.db import current_revision, describe_url, head_revision

app = typer.Typer(no_args_is_help=True, help="The store's schema (Alembic migrations).")


@app.command("upgrade")
def upgrade_command() -> None:
    """Apply every migration to the store (AIRLOCK_DATABASE_URL)."""
    config = settings()
    engine = make_engine(config.store_url)
    before = current_revision(engine)
    after = upgrade(engine)
    console.print(f"store {describe_url(config.store_url)}: schema {before or 'empty'} -> {after}")


@app.command("status")
def status_command() -> None:
    """Show the store's schema revision and the one this Airlock needs."""
    config = settings()
    current = current_revision(make_engine(config.store_url))
    console.print(f"store {describe_url(config.store_url)}: at {current or 'empty'}, needs {head_revision()}")
