"""A run whose pure tools and validation run in a worker process proposes, validates and writes
exactly what a run doing everything in its own process does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tasks.resources import resources
from tests.conftest import sample_accounts, write_accounts
from tests.integration.flow_helpers import assert_conserved, run_flow, store

pytestmark = pytest.mark.slow


def _outcomes(report: dict) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {r["id"]: (r["outcome"], tuple(sorted(r.get("reasons") or []))) for r in report["records"]}


def _proposals(report: dict) -> dict[str, dict]:
    ids = [r["id"] for r in report["records"]]
    return {row["record_id"]: row["changes"] for row in store().proposals_for(report["run_id"], ids)}


def test_tools_and_validation_in_a_worker_process_give_the_same_run(
        prefect_backend: None, airlock_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = sample_accounts(120, start=40)
    csv_path = write_accounts(tmp_path / "in.csv", rows)

    monkeypatch.setenv("AIRLOCK_TOOL_PROCESSES", "0")
    state, in_place = run_flow(csv_path, review_timeout=0)
    assert state.is_completed(), state
    assert resources().tool_processes is None
    proposed_in_place = _proposals(in_place)  # read now: the store is chosen by the environment

    monkeypatch.setenv("AIRLOCK_HOME", str(tmp_path / "offloaded"))
    monkeypatch.setenv("AIRLOCK_TOOL_PROCESSES", "1")
    monkeypatch.setenv("AIRLOCK_TOOL_PROCESS_MIN_RECORDS", "1")
    state, offloaded = run_flow(csv_path, review_timeout=0)
    assert state.is_completed(), state
    pool = resources().tool_processes
    assert pool is not None and pool.worker_pids  # the tools and the validation really ran elsewhere
    assert pool.offloaded["tool:normalize_phone"] > 0 and pool.offloaded["judge_chunk"] > 0
    assert "tool:lookup_firmographics" not in pool.offloaded  # it reads the CRM: never sent
    try:
        assert_conserved(offloaded, 120)
        assert offloaded["counts"] == in_place["counts"] and offloaded["counts"]["written"] > 40
        assert _outcomes(offloaded) == _outcomes(in_place)
        assert _proposals(offloaded) == proposed_in_place
    finally:
        pool.close()


def test_a_run_about_to_start_starts_its_workers_before_the_flow(
        airlock_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``airlock run`` checks its input first (preflight) and then waits for Prefect to start the
    flow run: the workers start then, so their GX import is done before the first chunk is validated.
    Pinning a plan (preflight without a run after it) starts nothing."""
    from flows.run_request import preflight

    csv_path = write_accounts(tmp_path / "in.csv", sample_accounts(30))
    monkeypatch.setenv("AIRLOCK_TOOL_PROCESSES", "1")
    monkeypatch.setenv("AIRLOCK_TOOL_PROCESS_MIN_RECORDS", "1")
    monkeypatch.setenv("AIRLOCK_HOME", str(tmp_path / "pin"))
    preflight("playbooks/enrich_accounts.yaml", str(csv_path))
    idle = resources().tool_processes
    assert idle is not None and not idle.started

    monkeypatch.setenv("AIRLOCK_HOME", str(tmp_path / "run"))
    preflight("playbooks/enrich_accounts.yaml", str(csv_path), warm=True)
    pool = resources().tool_processes
    assert pool is not None and pool is not idle
    try:
        assert pool.started
    finally:
        pool.close()


def test_what_a_worker_imports_for_validation_leaves_prefect_out() -> None:
    """A worker imports ``tasks.verdicts`` by name: Prefect there would cost every worker its start-up."""
    probe = "import sys, tasks.verdicts; print('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"
