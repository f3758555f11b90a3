"""A person's mistakes end in one clear line and a non-zero exit, with nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airlock.cli import main
from airlock.settings import Settings
from airlock.store import Store
from tests.conftest import PROJECT, sample_accounts, write_accounts


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], code: int, text: str) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert text in err, err
    assert "Traceback" not in err
    assert len(err.splitlines()) <= 2, err


def _no_runs() -> None:
    assert Store.open(Settings().store_url).list_runs() == []


def test_missing_playbook(airlock_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(["run", "playbooks/nope.yaml"], capsys, 2, "playbook not found")
    _no_runs()


def test_missing_input_file(airlock_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(["run", "playbooks/enrich_accounts.yaml", "--input", "/nonexistent/x.csv"], capsys, 2,
           "input file not found")
    _no_runs()


def test_wrong_columns(airlock_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,company\n1,Acme\n")
    _fails(["run", "playbooks/enrich_accounts.yaml", "--input", str(bad)], capsys, 2, "missing column")
    _no_runs()


def test_duplicate_ids(airlock_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = sample_accounts(3)
    rows[2]["id"] = rows[0]["id"]
    path = write_accounts(tmp_path / "dup.csv", rows)
    _fails(["run", "playbooks/enrich_accounts.yaml", "--input", str(path)], capsys, 2, "appear more than once")
    _no_runs()


def test_unknown_playbook_field(airlock_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    playbook = tmp_path / "p.yaml"
    playbook.write_text("name: x\ninput: data/accounts.csv\nrequest: {fill: [domain]}\npolcy: {}\n")
    _fails(["run", str(playbook)], capsys, 2, "polcy: unknown field")
    _no_runs()


def test_tampered_pinned_plan(airlock_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pinned = tmp_path / "pinned.yaml"
    assert main(["pin", "playbooks/enrich_accounts.yaml", "--out", str(pinned)]) == 0
    pinned.write_text(pinned.read_text().replace("0.8", "0.1", 1))
    _fails(["run", str(pinned)], capsys, 2, "does not match the plan")


def test_unreachable_database(airlock_env: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRLOCK_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/airlock")
    _fails(["run", "playbooks/enrich_accounts.yaml"], capsys, 3, "cannot reach the store")


def test_negative_review_timeout(airlock_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(["run", "playbooks/enrich_accounts.yaml", "--review-timeout", "-1"], capsys, 2, "--review-timeout")


def test_unknown_run(airlock_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(["runs", "show", "deadbeef"], capsys, 2, "no run")
    _fails(["dlq", "show", "42"], capsys, 2, "no dead letter 42")
    _fails(["review", "approve", "999"], capsys, 2, "no review item")
    _fails(["dlq", "discard", "1"], capsys, 2, "--reason")


def test_free_text_request_without_a_model_planner(airlock_env: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    playbook = tmp_path / "p.yaml"
    playbook.write_text("name: x\ninput: data/accounts.csv\nrequest: fill in missing phone numbers\n")
    _fails(["run", str(playbook)], capsys, 2, "needs a model planner")


def test_mistyped_setting(airlock_env: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRLOCK_PLANNER", "claude")
    monkeypatch.setenv("AIRLOCK_CHUNK_SIZE", "lots")
    _fails(["runs", "list"], capsys, 2, "bad setting: AIRLOCK_CHUNK_SIZE")
    monkeypatch.delenv("AIRLOCK_CHUNK_SIZE")
    _fails(["run", "playbooks/enrich_accounts.yaml"], capsys, 2, "AIRLOCK_PLANNER: Input should be 'rules'")
    monkeypatch.delenv("AIRLOCK_PLANNER")
    _no_runs()


def test_unreachable_prefect_api(airlock_env: Path, tmp_path: Path) -> None:
    """A Prefect API that does not answer is an outage (exit 3, one line), not a traceback; in a
    process of its own, since Prefect reads its API address as it starts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL="http://127.0.0.1:9/api", PREFECT_HOME=str(tmp_path / "prefect"))
    source = write_accounts(tmp_path / "in.csv", sample_accounts(5))
    done = subprocess.run([str(Path(sys.executable).parent / "airlock"), "run", "playbooks/enrich_accounts.yaml",
                           "--input", str(source), "--review-timeout", "0"],
                          cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: the Prefect API at http://127.0.0.1:9/api is not reachable (retryable: try again "
                      "when it is back)"], done.stderr
