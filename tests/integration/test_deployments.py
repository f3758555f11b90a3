"""prefect.yaml and deployments/ as an operator uses them: a real Prefect server, the work pool, the
crash-detection automations, `prefect deploy --all`, a process worker, and a deployment run whose
flow-run process finds the project code and Airlock's settings on its own.

The stack is started with deployments/local_stack.sh, the script the production notes point to, so
the script is exercised too. Everything runs in the test's tmp folder and on a free port; the
PostgreSQL variant puts Prefect's server, Airlock's store and the CRM on throwaway databases, as
deployments/README.md describes for production.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from tests.conftest import PROJECT, create_pg_database, drop_pg_database, sample_accounts, write_accounts

PREFECT = PROJECT / ".venv" / "bin" / "prefect"
AIRLOCK = PROJECT / ".venv" / "bin" / "airlock"
STACK_SCRIPT = PROJECT / "deployments" / "local_stack.sh"
AUTOMATIONS = PROJECT / "deployments" / "automations" / "crash-detection.yaml"
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
RECORDS = 40


@dataclass
class Stack:
    api: str
    env: dict[str, str]
    log: Path
    folder: Path
    store_url: str
    crm_url: str

    def tail(self) -> str:
        """The stack's own output and the worker's, for failure messages."""
        parts = []
        for path in (self.log, self.folder / "worker.log", self.folder / "server.log"):
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-40:]
                parts.append(f"--- {path.name} ---\n" + "\n".join(lines))
        return "\n".join(parts)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _clean_environment() -> dict[str, str]:
    """This machine's environment without Prefect or Airlock settings: a developer's
    PREFECT_API_URL or AIRLOCK_DATABASE_URL must never leak into the stack under test."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AIRLOCK_"))}


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the stack and everything it started. The script stops its worker and server on
    SIGTERM; flow-run processes run in sessions of their own, so they are collected by ancestry
    first and killed by pid if anything outlives the script."""
    try:
        started = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        started = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for child in started:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    process.wait(timeout=10)
    psutil.wait_procs(started, timeout=10)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Where Prefect's server, Airlock's store and the CRM keep their data."""
    if request.param == "sqlite":
        # The store outside AIRLOCK_HOME, the CRM left to its default inside it: finding each where
        # it belongs proves that both variables reached the flow-run process.
        (tmp_path / "store").mkdir()
        yield {"AIRLOCK_DATABASE_URL": f"sqlite:///{tmp_path / 'store' / 'airlock.db'}"}
        return
    admin: str = request.getfixturevalue("pg_server")  # skips, or fails under AIRLOCK_REQUIRE_PG=1
    base = admin.rsplit("/", 1)[0]
    names = [create_pg_database(admin) for _ in range(3)]
    prefect_db, store_db, crm_db = names
    asyncpg_base = base.replace("postgresql", "postgresql+asyncpg", 1)  # Prefect's server is async
    try:
        yield {
            "PREFECT_API_DATABASE_CONNECTION_URL": f"{asyncpg_base}/{prefect_db}",
            "AIRLOCK_DATABASE_URL": f"{base}/{store_db}",
            "AIRLOCK_CRM_URL": f"{base}/{crm_db}",
        }
    finally:
        for name in names:
            drop_pg_database(admin, name)


@pytest.fixture
def stack(databases: dict[str, str], tmp_path: Path) -> Iterator[Stack]:
    port = _free_port()
    folder = tmp_path / "stack"
    home = tmp_path / "airlock-home"
    env = _clean_environment() | databases | {
        "AIRLOCK_STACK_DIR": str(folder),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "AIRLOCK_HOME": str(home),
        "AIRLOCK_PROJECT_DIR": str(PROJECT),
        "AIRLOCK_WORKER_LIMIT": "1",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # The worker polls every 10 s by default; the test should not wait for that.
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    }
    # The production order: the store's schema first, then the workers that write to it.
    migrated = subprocess.run([str(AIRLOCK), "db", "upgrade"], cwd=PROJECT, env=env, capture_output=True,
                              text=True, timeout=120, check=False)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr

    log = tmp_path / "local_stack.out"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["bash", str(STACK_SCRIPT), str(port)], cwd=PROJECT, env=env,
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    api = f"http://127.0.0.1:{port}/api"
    running = Stack(api=api, env=env | {"PREFECT_API_URL": api}, log=log, folder=folder,
                    store_url=databases["AIRLOCK_DATABASE_URL"],
                    crm_url=databases.get("AIRLOCK_CRM_URL", f"sqlite:///{home / 'crm.db'}"))
    try:
        deadline = time.monotonic() + 120
        while "stack ready" not in log.read_text(errors="replace"):
            if process.poll() is not None:
                pytest.fail(f"local_stack.sh exited with {process.returncode}\n{running.tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"local_stack.sh was not ready within 120 s\n{running.tail()}")
            time.sleep(0.5)
        assert httpx.get(f"{api}/health", timeout=5).json() is True
        yield running
    finally:
        _stop(process)


def _deployment(client: httpx.Client, name: str) -> dict[str, Any]:
    response = client.get(f"/deployments/name/run-request/{name}")
    assert response.status_code == 200, f"{name}: {response.status_code} {response.text}"
    body: dict[str, Any] = response.json()
    return body


def _check_deployments(client: httpx.Client) -> None:
    nightly = _deployment(client, "enrich-accounts-nightly")
    assert nightly["entrypoint"] == "flows/run_request.py:run_request"
    assert nightly["work_pool_name"] == "airlock"
    [schedule] = nightly["schedules"]
    assert schedule["active"] is True
    assert schedule["schedule"]["cron"] == "0 2 * * *"
    assert schedule["schedule"]["timezone"] == "UTC"
    # Prefect 3 keeps a deployment's concurrency limit as a global concurrency limit of its own.
    assert nightly["global_concurrency_limit"]["limit"] == 1
    assert nightly["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    assert nightly["parameters"]["playbook"] == "playbooks/enrich_accounts.pinned.yaml"
    assert nightly["parameters"]["review_timeout"] == 0

    ad_hoc = _deployment(client, "run-request")
    assert ad_hoc["schedules"] == []
    assert ad_hoc["global_concurrency_limit"] is None
    assert ad_hoc["enforce_parameter_schema"] is True
    # The UI's run form is drawn from this schema: types and the docstring's descriptions.
    properties = ad_hoc["parameter_openapi_schema"]["properties"]
    assert properties["playbook"]["type"] == "string"
    assert properties["dry_run"]["type"] == "boolean"
    assert {"type": "number"} in properties["review_timeout"]["anyOf"]
    assert {"type": "string"} in properties["input_path"]["anyOf"]
    for name in ("playbook", "input_path", "review_timeout", "dry_run", "run_id", "started_by"):
        assert properties[name].get("description"), f"{name} has no description for the form"
    assert ad_hoc["parameters"]["playbook"] == "playbooks/enrich_accounts.yaml"

    for deployment in (nightly, ad_hoc):
        # Deployed without AIRLOCK_PROJECT_DIR, the pull steps keep the placeholder: the stored
        # deployment names no host path, and each worker resolves it from its own environment.
        check, change_directory = deployment["pull_steps"]
        assert "{{ $AIRLOCK_PROJECT_DIR }}" in check["prefect.deployments.steps.run_shell_script"]["script"]
        assert change_directory == {
            "prefect.deployments.steps.set_working_directory": {"directory": "{{ $AIRLOCK_PROJECT_DIR }}"}
        }
        assert deployment["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "60"


def _start_run(stack: Stack, input_path: Path) -> str:
    result = subprocess.run(
        [str(PREFECT), "deployment", "run", "run-request/run-request",
         "--param", f"input_path={input_path}", "--param", "review_timeout=0"],
        cwd=PROJECT, env=stack.env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"UUID:\s*([0-9a-f-]{36})", result.stdout)
    assert found, result.stdout
    return found.group(1)


def _wait_for_final_state(client: httpx.Client, flow_run_id: str, stack: Stack, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    state = "UNKNOWN"
    while time.monotonic() < deadline:
        body = client.get(f"/flow_runs/{flow_run_id}").json()
        state = (body.get("state") or {}).get("type", "UNKNOWN")
        if state in FINAL_STATES:
            return state
        time.sleep(1)
    pytest.fail(f"flow run {flow_run_id} still {state} after {timeout} s\n{stack.tail()}")


def _event_trigger(automation: Any) -> Any:
    from prefect.events.schemas.automations import EventTrigger

    assert isinstance(automation.trigger, EventTrigger), automation.name
    return automation.trigger


def test_crash_detection_automations_validate() -> None:
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, Posture

    documents = yaml.safe_load(AUTOMATIONS.read_text())["automations"]
    automations = [AutomationCore.model_validate(document) for document in documents]
    assert [a.name for a in automations] == ["airlock-crash-silent-flow-runs", "airlock-crash-overlong-flow-runs"]
    for automation in automations:
        # The schema ignores unknown keys, so check that what we wrote is what it read.
        trigger = _event_trigger(automation)
        assert trigger.posture == Posture.Proactive
        assert trigger.for_each == {"prefect.resource.id"}
        assert {"prefect.flow-run.Completed", "prefect.flow-run.Suspended"} <= trigger.expect
        [action] = automation.actions
        assert isinstance(action, ChangeFlowRunState)
        assert action.state.value == "CRASHED"
    silent, overlong = (_event_trigger(a) for a in automations)
    assert silent.after == {"prefect.flow-run.heartbeat"}
    assert overlong.after == {"prefect.flow-run.Running"}
    # Five missed beats at the heartbeat frequency that prefect.yaml gives the flow-run processes.
    config = yaml.safe_load((PROJECT / "prefect.yaml").read_text())
    frequency = int(config["definitions"]["work_pool"]["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"])
    assert silent.within.total_seconds() == 5 * frequency


def test_environment_overlays_name_real_settings() -> None:
    """Every AIRLOCK_* in the overlays is a setting Airlock reads (a misspelt one is silently
    ignored), the files are plain KEY=value lines, and they carry placeholders, not secrets."""
    from airlock.settings import Settings

    known = {f"AIRLOCK_{name.upper()}" for name in Settings.model_fields}
    for path in sorted((PROJECT / "deployments").glob("*.env")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            where = f"{path.name}:{number}"
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*=\S*", stripped), f"{where}: not KEY=value: {line!r}"
            key, value = stripped.split("=", 1)
            # systemd and docker --env-file do not expand variables: only literal values work everywhere.
            assert "$" not in value, f"{where}: {key} uses shell expansion"
            if key.startswith("AIRLOCK_"):
                assert key in known, f"{where}: {key} is not an Airlock setting"
            if "://" in value and "@" in value:
                assert ":CHANGE_ME@" in value, f"{where}: {key} looks like it holds a real password"


def test_pinned_playbook_of_the_nightly_deployment_still_checks(tmp_path: Path) -> None:
    """The nightly deployment runs the pinned plan unattended: it must still pass the plan check
    against today's tools, or the first sign of a renamed tool would be a failed run at 02:00."""
    from airlock.plan_check import ensure_plan_ok
    from airlock.playbook import load_playbook
    from tools import build_registry

    config = yaml.safe_load((PROJECT / "prefect.yaml").read_text())
    [nightly] = [d for d in config["deployments"] if d["name"] == "enrich-accounts-nightly"]
    playbook = load_playbook(PROJECT / nightly["parameters"]["playbook"])
    assert playbook.plan is not None, "the nightly playbook must be pinned (airlock pin)"
    assert playbook.plan_hash == playbook.plan.hash, "edited by hand after pinning: pin it again"
    ensure_plan_ok(playbook.plan, build_registry(PROJECT, f"sqlite:///{tmp_path / 'crm.db'}"))


@pytest.mark.slow
def test_deployments_run_on_a_process_worker(stack: Stack, tmp_path: Path) -> None:
    input_path = write_accounts(tmp_path / "accounts-40.csv", sample_accounts(RECORDS))
    with httpx.Client(base_url=stack.api, timeout=10) as client:
        _check_deployments(client)
        automations = client.post("/automations/filter", json={}).json()
        assert {a["name"] for a in automations} >= {"airlock-crash-silent-flow-runs",
                                                    "airlock-crash-overlong-flow-runs"}

        flow_run_id = _start_run(stack, input_path)
        state = _wait_for_final_state(client, flow_run_id, stack)
        assert state == "COMPLETED", f"flow run ended {state}\n{stack.tail()}"

    from airlock.report import build_report
    from airlock.store import Store
    from systems.crm import CrmDatabase

    store = Store.open(stack.store_url)
    try:
        [run] = store.list_runs()
        assert run["status"] == "completed"
        assert run["prefect_flow_run_id"] == flow_run_id
        assert run["started_by"] == "prefect-deployment (unauthenticated)"
        report = build_report(store, run["id"])
    finally:
        store.engine.dispose()
    assert report["input_count"] == RECORDS
    assert sum(report["counts"].values()) == RECORDS
    assert report["conserved"] is True
    # The writes landed in the CRM that the flow-run process was configured with.
    crm = CrmDatabase(stack.crm_url)
    try:
        assert crm.count_applied() == report["counts"]["written"] + report["counts"]["unchanged"]
    finally:
        crm.dispose()
