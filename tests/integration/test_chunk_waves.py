"""Chunks mapped in waves: every chunk of every wave is executed, validated and committed once, and a
failure in a later wave is traced to its own chunk and record."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import sqlalchemy as sa

from airlock.execute import StepResult
from airlock.store.schema import step_outcomes
from tasks.verdicts import ChunkVerdicts
from tests.conftest import sample_accounts, write_accounts
from tests.integration.flow_helpers import assert_conserved, run_flow, store

pytestmark = pytest.mark.slow


def test_twelve_chunks_in_four_waves(prefect_backend: None, airlock_env: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_CHUNK_SIZE", "10")
    monkeypatch.setenv("AIRLOCK_MAX_CHUNKS", "12")
    monkeypatch.setenv("AIRLOCK_CHUNK_WAVE", "3")
    rows = sample_accounts(120, start=600)
    poison = rows[115]  # chunk 11, the last wave
    poison["phone"] = "5" * 5000
    state, report = run_flow(write_accounts(tmp_path / "in.csv", rows), review_timeout=0)
    assert state.is_completed(), state
    assert_conserved(report, 120)
    assert report["counts"]["dead_lettered"] == 1
    assert {r["id"] for r in report["records"] if r["outcome"] == "dead_lettered"} == {poison["id"]}
    with store().tx() as connection:
        stored = connection.execute(sa.select(step_outcomes.c.step_id, step_outcomes.c.chunk_no)
                                    .where(step_outcomes.c.run_id == report["run_id"])).all()
    by_stage: dict[str, set[int]] = {}
    for step_id, chunk_no in stored:
        by_stage.setdefault(step_id, set()).add(chunk_no)
    assert by_stage["@validate"] == by_stage["@commit"] == set(range(12))
    steps = [s for s in by_stage if not s.startswith("@")]
    assert len(steps) == 7 and all(by_stage[s] == set(range(12)) for s in steps)


def test_verdicts_do_not_depend_on_how_the_run_is_cut_into_chunks(
        prefect_backend: None, airlock_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Duplicate domains across chunk boundaries: the first account claiming a domain passes and every
    later one goes to review, whether the run has one chunk or twelve."""
    rows = sample_accounts(100, start=300)
    rows += [{**rows[i], "id": f"ACC-9{i:05d}"} for i in (2, 17, 40, 41, 77)]  # copies under new ids
    rows += [{**rows[5], "id": "ACC-999999"}]
    source = write_accounts(tmp_path / "in.csv", rows)
    verdicts = []
    for chunk_size, max_chunks in ((len(rows), 1), (10, 12)):
        monkeypatch.setenv("AIRLOCK_CHUNK_SIZE", str(chunk_size))
        monkeypatch.setenv("AIRLOCK_MAX_CHUNKS", str(max_chunks))
        state, report = run_flow(source, review_timeout=0)
        assert state.is_completed(), state
        assert_conserved(report, len(rows))
        # The second run finds the first one's values in the CRM: written there is unchanged here.
        verdicts.append({r["id"]: ("passed" if r["outcome"] in ("written", "unchanged") else r["outcome"],
                                   r["reasons"]) for r in report["records"]})
    one_chunk, twelve_chunks = verdicts
    assert one_chunk == twelve_chunks
    duplicate = "gx:expect_column_values_to_be_unique:domain"
    copies = [r["id"] for r in rows[100:]]
    assert all(duplicate in one_chunk[rid][1] for rid in copies)
    originals = [rows[i]["id"] for i in (2, 17, 40, 41, 77, 5)]
    assert not any(duplicate in one_chunk[rid][1] for rid in originals)


def test_a_committed_chunk_lets_go_of_its_records_and_step_results(
        prefect_backend: None, airlock_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prefect's futures hold task results in reference cycles; with the cyclic collector off, what a
    chunk held is only gone if the flow emptied it once the chunk was committed."""
    monkeypatch.setenv("AIRLOCK_CHUNK_SIZE", "20")
    rows = sample_accounts(80, start=900)
    gc.collect()
    gc.disable()
    try:
        state, report = run_flow(write_accounts(tmp_path / "in.csv", rows), review_timeout=0)
        assert state.is_completed(), state
        assert_conserved(report, 80)
        step_results = [o for o in gc.get_objects() if isinstance(o, StepResult)]
        verdicts = [o for o in gc.get_objects() if isinstance(o, ChunkVerdicts)]
    finally:
        gc.enable()
    assert len(step_results) >= 7 * 4 and len(verdicts) >= 4  # still there, in Prefect's cycles...
    assert all(not r.outputs and not r.failures for r in step_results)  # ...but empty
    assert all(not v.passed for v in verdicts)
    assert report["counts"]["written"] > 20  # emptied after the commit, not before it
