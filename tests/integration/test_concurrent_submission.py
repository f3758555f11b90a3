"""The same plan and records submitted while a run of them is alive is refused with that run's id;
a run that stopped renewing its lease (its process died, or was interrupted) does not block."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from airlock.cli import main
from tests.conftest import sample_accounts, write_accounts
from tests.integration.flow_helpers import assert_conserved, run_flow, store

pytestmark = pytest.mark.slow


def test_a_second_submission_is_refused_while_the_first_is_alive(
    prefect_backend: None, airlock_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AIRLOCK_REVIEW_POLL_INTERVAL", "1")
    source = write_accounts(tmp_path / "in.csv", sample_accounts(40, start=60))
    run_id = str(uuid.uuid4())
    outcome: list[Any] = []
    first = threading.Thread(target=lambda: outcome.append(run_flow(source, review_timeout=6, run_id=run_id)))
    first.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if store().get_run(run_id)["status"] == "waiting_review":
                break
        except Exception:  # noqa: BLE001 - not pinned yet
            pass
        time.sleep(0.2)
    assert main(["run", "playbooks/enrich_accounts.yaml", "--input", str(source), "--review-timeout", "0"]) == 2
    err = capsys.readouterr().err
    assert f"run {run_id} is already processing this plan and input" in err and "Traceback" not in err
    first.join(60)
    state, report = outcome[0]
    assert state.is_completed()
    assert_conserved(report, 40)
    assert len(store().list_runs()) == 1
    # Once it finished, the same submission is a new run.
    assert main(["run", "playbooks/enrich_accounts.yaml", "--input", str(source), "--review-timeout", "0"]) == 0
    assert len(store().list_runs()) == 2


def test_a_run_whose_lease_ran_out_does_not_block(airlock_env: Path, tmp_path: Path) -> None:
    from datetime import timedelta

    s = store()
    common = {"playbook": "p", "plan_hash": "h", "started_by": "t", "input_hash": "i", "record_count": 1,
              "chunk_size": 1, "chunk_count": 1, "spec_hashes": {}}
    s.create_run(id="alive", status="running", lease_expires_at=s.now() + timedelta(minutes=5), **common)
    assert s.active_run_for("h", "i") == "alive"
    s.update_run("alive", lease_expires_at=s.now() - timedelta(seconds=1))  # its process stopped renewing
    assert s.active_run_for("h", "i") is None
