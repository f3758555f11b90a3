"""`airlock runs reap` and `airlock runs resume` at the command line: one-line refusals, crashed runs
shown with the command that resumes them."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from airlock.cli import main
from tests.integration.flow_helpers import store


def _run(run_id: str, seconds: float) -> None:
    s = store()
    s.create_run(id=run_id, playbook="playbooks/enrich_accounts.yaml", plan_hash="h", status="running",
                 started_by="t", input_hash=f"i-{run_id}", record_count=1, chunk_size=1, chunk_count=1,
                 spec_hashes={}, lease_expires_at=s.now() + timedelta(seconds=seconds))


def test_resume_refuses_a_run_whose_lease_is_alive(airlock_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run("11111111-aaaa-4000-8000-000000000001", 600)
    assert main(["runs", "resume", "11111111"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "is running and its lease is alive" in err and "Traceback" not in err


def test_reap_marks_expired_runs_crashed_and_list_says_how_to_resume(
    airlock_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run("22222222-bbbb-4000-8000-000000000002", -1)
    _run("33333333-cccc-4000-8000-000000000003", 600)
    assert main(["runs", "reap", "--json"]) == 0
    reaped = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in reaped] == ["22222222-bbbb-4000-8000-000000000002"]
    assert main(["runs", "list"]) == 0
    out = capsys.readouterr().out
    assert "crashed (resume: airlock runs resume 22222222)" in " ".join(out.split())
    assert store().get_run("33333333")["status"] == "running"
    assert main(["runs", "reap", "--json"]) == 0 and json.loads(capsys.readouterr().out) == []


def test_every_command_reaps_first(airlock_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run("44444444-dddd-4000-8000-000000000004", -1)
    assert main(["dlq", "list", "--json"]) == 0
    assert store().get_run("44444444")["status"] == "crashed"


def test_a_run_this_process_stops_driving_is_released_for_resume(airlock_env: Path) -> None:
    """Ctrl-C, or a Prefect API gone mid-run: the run is marked interrupted (its lease dropped) so
    that `runs resume` can take it at once; a run that already ended, or was never pinned, is left be."""
    from airlock.cli.run import _mark_interrupted

    s = store()
    _run("44444444-dddd-4000-8000-000000000004", 600)
    _mark_interrupted(s, "44444444-dddd-4000-8000-000000000004", "tester")
    run = s.get_run("44444444-dddd-4000-8000-000000000004")
    assert run["status"] == "interrupted" and run["lease_expires_at"] is None
    assert [e["kind"] for e in s.audit_trail("44444444-dddd-4000-8000-000000000004")] == ["run.interrupted"]
    _run("55555555-eeee-4000-8000-000000000005", 600)
    s.update_run("55555555-eeee-4000-8000-000000000005", status="completed")
    _mark_interrupted(s, "55555555-eeee-4000-8000-000000000005", "tester")
    assert s.get_run("55555555-eeee-4000-8000-000000000005")["status"] == "completed"
    _mark_interrupted(s, "66666666-ffff-4000-8000-000000000006", "tester")  # never pinned: nothing to mark
    assert s.audit_trail("66666666-ffff-4000-8000-000000000006") == []
