"""The whole pipeline through real Prefect, GX, SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from airlock.settings import Settings
from tests.conftest import PROJECT, sample_accounts, write_accounts
from tests.integration.flow_helpers import assert_conserved, crm, run_flow, store

pytestmark = pytest.mark.slow


def _check_written(report: dict) -> None:
    written = {r["id"] for r in report["records"] if r["outcome"] == "written"}
    accounts = crm().get(written)
    assert set(accounts) == written
    # The CRM recorded an applied key for every record written or found unchanged, once.
    assert crm().count_applied() == report["counts"]["written"] + report["counts"]["unchanged"]
    sample = next(iter(written))
    row = store().proposals_for(report["run_id"], [sample])[0]
    for field, change in row["changes"].items():
        assert accounts[sample][field] == change["after"]


def test_headless_run_on_sqlite(prefect_backend: None, airlock_env: Path, tmp_path: Path) -> None:
    rows = sample_accounts(300)
    state, report = run_flow(write_accounts(tmp_path / "in.csv", rows), review_timeout=0)
    assert state.is_completed(), state
    assert_conserved(report, 300)
    assert report["counts"]["written"] > 100
    assert report["counts"]["pending_review"] > 0  # the sample has dirt that needs a person
    _check_written(report)
    kinds = [e["kind"] for e in store().audit_trail(report["run_id"])]
    assert kinds[0] == "run.started" and kinds[-1] == "run.finished" and "commit" in kinds


@pytest.mark.pg
def test_headless_run_on_postgres(prefect_backend: None, airlock_env: Path, pg_databases: tuple[str, str],
                                  tmp_path: Path) -> None:
    state, report = run_flow(write_accounts(tmp_path / "in.csv", sample_accounts(250, start=500)), review_timeout=0)
    assert state.is_completed(), state
    assert store().engine.dialect.name == "postgresql"
    assert_conserved(report, 250)
    _check_written(report)


def test_rerun_of_a_run_repeats_nothing(prefect_backend: None, airlock_env: Path, tmp_path: Path) -> None:
    source = write_accounts(tmp_path / "in.csv", sample_accounts(120, start=900))
    _, first = run_flow(source, review_timeout=0)
    applied = crm().count_applied()
    effects = {e["idempotency_key"]: e["attempts"] for e in store().effects_for(first["run_id"])}
    # The same run again, even with the playbook changed since: it goes on with its pinned plan, and
    # every (step, chunk) returns its stored outcome; no tool, no write.
    changed = tmp_path / "changed.yaml"
    changed.write_text((PROJECT / "playbooks" / "enrich_accounts.yaml").read_text().replace("industry: 0.65",
                                                                                             "industry: 0.99"))
    state, again = run_flow(source, review_timeout=0, run_id=first["run_id"], playbook=str(changed))
    assert state.is_completed()
    assert again["plan_hash"] == first["plan_hash"]
    assert again["counts"] == first["counts"]
    assert crm().count_applied() == applied
    assert {e["idempotency_key"]: e["attempts"] for e in store().effects_for(first["run_id"])} == effects


def test_commit_twice_writes_nothing_the_second_time(prefect_backend: None, airlock_env: Path,
                                                     tmp_path: Path) -> None:
    from airlock.plan import Plan
    from tasks.commit import commit_records

    _, report = run_flow(write_accounts(tmp_path / "in.csv", sample_accounts(80, start=1200)), review_timeout=0)
    run = store().get_run(report["run_id"])
    plan = Plan.model_validate(store().get_plan(run["plan_hash"]))
    written = [p for p in store().proposals_for(run["id"]) if p["outcome"] in ("written", "unchanged")]
    passed = [(p["record_id"], {f: c["after"] for f, c in p["changes"].items()}) for p in written]
    applied = crm().count_applied()
    # The ledger's own record says these were done: nothing is sent.
    summary = commit_records(run["id"], plan, passed, dry_run=False, actor="tester")
    recorded = store().effects_for(run["id"])
    # Every CRM update, and a ticket for each broken contact (the ticket tool acts on no other record).
    assert sorted({e["target"] for e in recorded}) == ["crm", "tickets"]
    assert sum(e["target"] == "crm" for e in recorded) == len(passed) > sum(e["target"] == "tickets" for e in recorded)
    assert summary.duplicates_prevented == len(recorded)
    assert crm().count_applied() == applied
    # Even with the ledger's outcome lost (a crash after the write), the CRM's applied keys stop a
    # second write: the key is sent again and the CRM answers 'duplicate'.
    with store().tx() as connection:
        import sqlalchemy as sa

        from airlock.store.schema import effects
        connection.execute(sa.update(effects).where(effects.c.run_id == run["id"]).values(status="intent"))
    tickets = httpx.get(f"{Settings().tickets_url}/tickets").json()
    summary = commit_records(run["id"], plan, passed, dry_run=False, actor="tester")
    assert summary.duplicates_prevented >= len(passed)  # every CRM key, and every ticket key that was sent
    assert crm().count_applied() == applied
    assert httpx.get(f"{Settings().tickets_url}/tickets").json() == tickets
    assert_conserved(__import__("airlock.report").report.build_report(store(), run["id"], with_records=True), 80)


def test_dry_run_writes_nothing(prefect_backend: None, airlock_env: Path, tmp_path: Path) -> None:
    state, report = run_flow(write_accounts(tmp_path / "in.csv", sample_accounts(100)), review_timeout=0,
                             dry_run=True)
    assert state.is_completed()
    assert_conserved(report, 100)
    assert report["counts"]["would_write"] > 0
    shown = [r for r in report["records"] if r["outcome"] == "would_write"]
    assert all(r["changes"]["country_code"]["after"] for r in shown)  # the report shows what would change
    assert not (airlock_env / "crm.db").exists()  # the business system was not even opened
    assert store().effects_for(report["run_id"]) == []


def test_review_window_ends_completed_when_nobody_reviews(prefect_backend: None, airlock_env: Path,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_REVIEW_POLL_INTERVAL", "1")
    state, report = run_flow(write_accounts(tmp_path / "in.csv", sample_accounts(60)), review_timeout=3)
    assert state.is_completed(), state  # not Failed by Prefect's pause timeout
    assert_conserved(report, 60)
    assert report["counts"]["pending_review"] > 0
    events = store().audit_trail(report["run_id"])
    assert any(e["kind"] == "review.waiting" for e in events)
    resumed = [e for e in events if e["kind"] == "review.resumed"]
    assert resumed and resumed[-1]["data"]["timed_out"] is True
