"""What every command shares: settings from the environment, the store (schema-checked), output."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from airlock.deadletter import Replayer
from airlock.errors import ConfigError
from airlock.notify import notifier_for
from airlock.project import load_project_object
from airlock.recovery import reap
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


def open_store(config: Settings, *, reap_crashed: bool = True) -> Store:
    """The store, schema-checked; runs whose process died (expired lease) are marked crashed first, so
    no command ever shows a dead run as running."""
    store = Store.open(config.store_url)
    if reap_crashed:
        reap_runs(store, config)
    return store


def reap_runs(store: Store, config: Settings) -> list[dict[str, Any]]:
    notifier = notifier_for(config.webhooks)
    crashed = reap(store, notifier, actor=config.actor, review_url=config.review_url)
    flush = getattr(notifier, "flush", None)
    if crashed and flush is not None:
        flush(timeout=10)
    return crashed


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def acting_as(config: Settings, store: Store, role: str) -> str:
    """Who a command acts as: the user of AIRLOCK_TOKEN once users exist (with at least ``role``),
    before that AIRLOCK_USER or the OS user."""
    from airlock.review.auth import cli_identity

    return cli_identity(store, config, role).name


def run_flow(flow: Callable[..., Coroutine[Any, Any, Any]], **parameters: Any) -> Any:
    """One of the project's async flows, run from a command. Prefect's API not answering is an outage
    (one line, exit 3), not a traceback."""
    from airlock.orchestration import api_outage_is_infrastructure  # imports Prefect: only when a flow runs

    with api_outage_is_infrastructure():
        return asyncio.run(flow(**parameters))


def dead_letter_replayer(config: Settings) -> Replayer:
    """The project's replay flow as ``airlock.deadletter.replay`` calls it (the CLI and the review page)."""
    flow = load_project_object(config.project_dir, "flows/replay.py:replay_dead_letters")

    def replayer(letters: list[dict[str, Any]], actor: str, why: str, allow: bool) -> dict[str, Any]:
        result: dict[str, Any] = run_flow(flow, letters=letters, actor=actor, reason=why, allow_changed_tools=allow)
        return result

    return replayer
