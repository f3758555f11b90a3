"""Approving a paused run in the Prefect UI itself: a local ``prefect server start``, a run paused
for review (started by ``airlock run`` in its own process), the run page, its Resume dialog,
Approve All, Submit. The run completes and every decision is audited as the dashboard's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airlock.review import DASHBOARD_ACTOR
from airlock.store import Store
from tests.browser.conftest import free_port
from tests.conftest import PROJECT, sample_accounts, write_accounts

pytestmark = [pytest.mark.slow, pytest.mark.browser]
BIN = Path(sys.executable).parent


def _until(predicate: Any, what: str, seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception:  # noqa: BLE001 - not there yet
            pass
        time.sleep(0.5)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A real Prefect server with its UI on a free port; the UI is told that port."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_API_HOST": "127.0.0.1",
           "PREFECT_SERVER_API_PORT": str(port), "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = (tmp_path / "prefect-server.log").open("w")
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: httpx.get(f"{url}/api/health").status_code == 200, "the Prefect server is up", 90)
        yield url, {**env, "PREFECT_API_URL": f"{url}/api"}
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def test_approve_a_paused_run_in_the_prefect_ui(browser: Any, prefect_server: tuple[str, dict[str, str]],
                                                tmp_path: Path) -> None:
    url, env = prefect_server
    home = tmp_path / "state"
    env = {**env, "AIRLOCK_HOME": str(home), "AIRLOCK_PROJECT_DIR": str(PROJECT), "AIRLOCK_USER": "tester",
           "AIRLOCK_REVIEW_POLL_INTERVAL": "1"}
    for name in ("AIRLOCK_DATABASE_URL", "AIRLOCK_CRM_URL", "AIRLOCK_WEBHOOKS"):
        env.pop(name, None)
    source = write_accounts(tmp_path / "in.csv", sample_accounts(60, start=300))
    log = (tmp_path / "run.log").open("w")
    runner = subprocess.Popen([str(BIN / "airlock"), "run", "playbooks/enrich_accounts.yaml", "-i", str(source),
                               "--review-timeout", "600"], env=env, cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT)
    try:
        store = _until(lambda: Store.open(f"sqlite:///{home / 'airlock.db'}", create_if_empty=False),
                       "the run's store exists")
        run = _until(lambda: next(r for r in store.list_runs(1) if r["status"] == "waiting_review"), "the run waits")
        flow_run_id = run["prefect_flow_run_id"]
        _until(lambda: httpx.get(f"{url}/api/flow_runs/{flow_run_id}").json()["state"]["type"] == "PAUSED",
               "Prefect shows the run paused")
        pending = store.review_items_for(run_id=run["id"])
        assert pending

        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/runs/flow-run/{flow_run_id}")
        page.get_by_role("button", name="Resume").first.click()
        dialog = page.locator(".p-modal__card")
        dialog.get_by_text("Resume Flow Run").wait_for()
        # Our description, rendered from markdown: the dialog shows its title first and the run's
        # input form and description once it has fetched them.
        dialog.get_by_text("needs review").wait_for()
        assert dialog.get_by_text("needs review").count() == 1
        dialog.get_by_role("switch").first.click()  # Approve All
        dialog.locator("textarea").first.fill("looked fine in the dashboard")
        dialog.get_by_role("button", name="Submit").click()

        assert runner.wait(120) == 0, (tmp_path / "run.log").read_text()[-3000:]
        assert _until(lambda: httpx.get(f"{url}/api/flow_runs/{flow_run_id}").json()["state"]["type"]
                      == "COMPLETED", "the run completes", 30)
        page.close()
    finally:
        if runner.poll() is None:
            runner.terminate()
            runner.wait(30)
        log.close()

    assert store.get_run(run["id"])["status"] == "completed"
    assert store.review_items_for(run_id=run["id"]) == []
    decisions = store.decisions_for(run["id"])
    assert len(decisions) == len(pending)
    assert {(d["actor"], d["source"], d["decision"]) for d in decisions} == {
        (DASHBOARD_ACTOR, "prefect-ui", "approved")}
    assert {d["note"] for d in decisions} == {"looked fine in the dashboard"}
