"""What every command shares: settings from the environment, the store (schema-checked), output."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from airlock.settings import Settings
from airlock.store import Store

# Rich falls back to 80 columns when output is not a terminal (a pipe, a log); tables need more.
console = Console(width=None if sys.stdout.isatty() else 160)


def settings() -> Settings:
    built = Settings()
    built.prepare_environment()
    return built


def open_store(config: Settings) -> Store:
    return Store.open(config.store_url)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def acting_as(config: Settings, store: Store, role: str) -> str:
    """Who a command acts as: the user of AIRLOCK_TOKEN once users exist (with at least ``role``),
    before that AIRLOCK_USER or the OS user."""
    from airlock.review.auth import cli_identity

    return cli_identity(store, config, role).name
