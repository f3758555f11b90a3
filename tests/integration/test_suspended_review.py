"""A long review under a deployment suspends the run: its process exits while people decide, the
decision reschedules it on the worker, and the second pass repeats no work and no write."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import PROJECT, sample_accounts, write_accounts
from tests.integration.test_deployments import AIRLOCK, Stack, _wait_for_final_state
from tests.integration.test_deployments import stack as stack  # the fixture, reused

pytestmark = pytest.mark.slow
RECORDS = 60


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[dict[str, str]]:
    """SQLite only (the deployment tests cover PostgreSQL), and every review window suspends."""
    (tmp_path / "store").mkdir()
    yield {"AIRLOCK_DATABASE_URL": f"sqlite:///{tmp_path / 'store' / 'airlock.db'}",
           "AIRLOCK_REVIEW_SUSPEND_AFTER": "0"}


def _processes_of(flow_run_id: str) -> list[int]:
    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if process.environ().get("PREFECT__FLOW_RUN_ID") == flow_run_id:
                found.append(process.pid)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def _until(predicate: object, what: str, stack: Stack, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except Exception:  # noqa: BLE001 - not there yet
            pass
        time.sleep(1)
    pytest.fail(f"never happened: {what}\n{stack.tail()}")


def test_a_long_review_suspends_repeats_nothing_and_a_closed_window_fails_closed(stack: Stack, tmp_path: Path) -> None:
    from airlock.report import build_report
    from airlock.store import Store
    from systems.crm import CrmDatabase

    source = write_accounts(tmp_path / "in.csv", sample_accounts(RECORDS, start=300))
    flow_run_id = _start(stack, source, 900)
    store = Store.open(stack.store_url)
    api = httpx.Client(base_url=stack.api, timeout=10)
    try:
        _until(lambda: api.get(f"/flow_runs/{flow_run_id}").json()["state"]["name"] == "Suspended",
               "the run is suspended", stack)
        [run] = store.list_runs()
        assert run["status"] == "waiting_review"
        # No process is held while people decide.
        _until(lambda: not _processes_of(flow_run_id), "the flow-run process has exited", stack, 60)
        pending = store.review_items_for(run_id=run["id"])
        assert pending
        commits_before = len(store.audit_trail(run["id"], "commit"))

        decided = subprocess.run([str(AIRLOCK), "review", "approve", "--run", run["id"][:8], "--all"],
                                 cwd=PROJECT, env=stack.env | {"AIRLOCK_USER": "bob"}, capture_output=True,
                                 text=True, timeout=120, check=False)
        assert decided.returncode == 0, decided.stdout + decided.stderr
        assert "resumed" in decided.stdout
        assert _wait_for_final_state(api, flow_run_id, stack) == "COMPLETED", stack.tail()

        report = build_report(store, run["id"])
        assert report["conserved"] and report["input_count"] == RECORDS
        assert report["counts"]["pending_review"] == 0
        assert [r["id"] for r in store.list_runs()] == [run["id"]]  # the second pass found its run
        assert len(store.audit_trail(run["id"], "run.started")) == 1
        # The chunks were committed before the suspension and not again; one commit of the decisions.
        assert len(store.audit_trail(run["id"], "commit")) == commits_before + 1
        assert {d["actor"] for d in store.decisions_for(run["id"])} == {"bob"}
        crm = CrmDatabase(stack.crm_url)
        try:
            assert crm.count_applied() == report["counts"]["written"] + report["counts"]["unchanged"]
        finally:
            crm.dispose()

        # A window that closes: nothing flagged is written, the items stay pending in the queue, and a
        # later decision is committed by a follow-up run.
        late = _start(stack, write_accounts(tmp_path / "late.csv", sample_accounts(RECORDS, start=700)), 3)
        _until(lambda: api.get(f"/flow_runs/{late}").json()["state"]["name"] == "Suspended",
               "the second run is suspended", stack)
        late_run = next(r for r in store.list_runs() if r["prefect_flow_run_id"] == late)
        waiting = store.review_items_for(run_id=late_run["id"])
        assert waiting
        time.sleep(5)  # past its window
        assert store.review_items_for(run_id=late_run["id"]) == waiting
        decided = subprocess.run([str(AIRLOCK), "review", "approve", "--run", late_run["id"][:8], "--all"],
                                 cwd=PROJECT, env=stack.env | {"AIRLOCK_USER": "bob"}, capture_output=True,
                                 text=True, timeout=180, check=False)
        assert decided.returncode == 0, decided.stdout + decided.stderr
        assert "committed by a follow-up (its flow run is over)" in decided.stdout
        after = build_report(store, late_run["id"])
        assert after["conserved"] and after["counts"]["pending_review"] == 0
        assert store.get_run(late_run["id"])["status"] == "completed"
    finally:
        api.close()
        store.engine.dispose()


def _start(stack: Stack, source: Path, window: float) -> str:
    result = subprocess.run(
        [str(AIRLOCK.parent / "prefect"), "deployment", "run", "run-request/run-request",
         "--param", f"input_path={source}", "--param", f"review_timeout={window}"],
        cwd=PROJECT, env=stack.env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.split("UUID:")[1].split()[0]
