"""Running the real flow in-process against the session's Prefect test server."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from airlock.report import build_report
from airlock.settings import Settings
from airlock.store import Store
from systems.crm import CrmDatabase

PLAYBOOK = "playbooks/enrich_accounts.yaml"


def run_flow(input_path: Path, **params: Any) -> tuple[Any, dict[str, Any]]:
    """Run ``run_request``; return its Prefect final state and the stored report (with records)."""
    from flows.run_request import run_request

    run_id = params.pop("run_id", None) or str(uuid.uuid4())
    playbook = params.pop("playbook", PLAYBOOK)
    state = asyncio.run(run_request(playbook=playbook, input_path=str(input_path), run_id=run_id,
                                    return_state=True, **params))
    return state, build_report(store(), run_id, with_records=True)


def store() -> Store:
    return Store.open(Settings().store_url)


def crm() -> CrmDatabase:
    return CrmDatabase(Settings().crm_database_url)


def assert_conserved(report: dict[str, Any], expected: int) -> None:
    """Every input record in exactly one outcome, and the counts add up to the input."""
    assert report["input_count"] == expected
    assert report["conserved"], report["counts"]
    assert sum(report["counts"].values()) == expected
    ids = [r["id"] for r in report["records"]]
    assert len(ids) == len(set(ids)) == expected
    allowed = {"written", "unchanged", "rejected", "pending_review", "dead_lettered", "would_write"}
    assert {r["outcome"] for r in report["records"]} <= allowed
