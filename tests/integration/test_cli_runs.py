"""The CLI's main jobs end to end: `airlock run --json` and `airlock demo`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airlock.cli import main
from tests.conftest import sample_accounts, write_accounts
from tests.integration.flow_helpers import crm

pytestmark = pytest.mark.slow


def test_run_json_prints_a_report_that_accounts_for_every_record(
    prefect_backend: None, airlock_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_accounts(tmp_path / "in.csv", sample_accounts(70, start=40))
    assert main(["run", "playbooks/enrich_accounts.yaml", "--input", str(source), "--review-timeout", "0",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"run_id", "plan_hash", "counts", "records", "input_count"} <= set(report)
    assert report["input_count"] == 70 and sum(report["counts"].values()) == 70
    assert set(report["counts"]) == {"written", "unchanged", "rejected", "pending_review", "dead_lettered"}
    assert len(report["records"]) == 70
    assert all({"id", "outcome", "reasons"} <= set(r) for r in report["records"])
    flagged = [r for r in report["records"] if r["outcome"] == "pending_review"]
    assert flagged and all(r["reasons"] for r in flagged)
    # `runs show --json` gives the same report afterwards.
    assert main(["runs", "show", report["run_id"][:8], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == report["counts"]


def test_demo_enriches_the_sample_and_says_how_to_review(
    prefect_backend: None, airlock_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "2000 of 2000 input" in out
    assert "airlock review list --run" in out and "airlock review approve ITEM" in out
    assert crm().count_accounts() > 1000
