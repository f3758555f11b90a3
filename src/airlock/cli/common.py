"""What every command shares: settings from the environment, the store (schema-checked), output."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

from airlock.settings import Settings
from airlock.store import Store

console = Console()


def settings() -> Settings:
    built = Settings()
    built.prepare_environment()
    return built


def open_store(config: Settings) -> Store:
    return Store.open(config.store_url)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str, ensure_ascii=False))
