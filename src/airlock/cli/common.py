"""What every command shares: settings from the environment, the store (schema-checked), output."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from airlock.errors import ConfigError
from airlock.settings import Settings
from airlock.store import Store

# Rich falls back to 80 columns when output is not a terminal (a pipe, a log); tables need more.
console = Console(width=None if sys.stdout.isatty() else 160)


def settings() -> Settings:
    try:
        built = Settings()
    except ValidationError as error:
        # A mistyped environment variable is a person's mistake: name it, in one line.
        problems = "; ".join(
            f"AIRLOCK_{'_'.join(str(part) for part in e['loc']).upper()}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(f"bad setting: {problems}") from None
    built.prepare_environment()
    return built


def open_store(config: Settings) -> Store:
    return Store.open(config.store_url)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str, ensure_ascii=False))
