"""The end of a run: chunks that could not be processed become dead letters, and the report
accounts for every input record exactly once."""

from __future__ import annotations

from typing import Any

from airlock.report import build_report
from tasks.resources import resources


def dead_letter_chunk(run_id: str, chunk_no: int, stage: str, step_id: str | None, error: BaseException | str,
                      actor: str) -> int:
    """An infrastructure failure of a whole chunk: its records without a settled outcome become
    dead letters together, with what a replay needs (the records are in the run's snapshot)."""
    store = resources().store
    records = store.chunk_records(run_id, chunk_no)
    ids = [str(r["id"]) for r in records]
    known = {p["record_id"]: p for p in store.proposals_for(run_id, chunk_no=chunk_no)}
    unsettled = [rid for rid in ids if known.get(rid, {}).get("outcome") in (None, "proposed")]
    if not unsettled:
        return 0
    error_type = type(error).__name__ if isinstance(error, BaseException) else "TaskFailed"
    letter_id = store.add_dead_letter(
        run_id=run_id, kind="chunk", stage=stage, step_id=step_id, chunk_no=chunk_no, record_ids=unsettled,
        tool=None, spec_hash=None, error_type=error_type, error=str(error)[:2000], retryable=True, attempts=[],
        payload={"chunk_no": chunk_no},
    )
    missing = [rid for rid in unsettled if rid not in known]
    store.save_proposals(run_id, [
        {"record_id": rid, "chunk_no": chunk_no, "changes": {}, "proposal_hash": "", "verdict": None,
         "reasons": [f"chunk_failed:{stage}"], "outcome": "dead_lettered"} for rid in missing
    ])
    store.set_outcomes(run_id, {rid: "dead_lettered" for rid in unsettled if rid in known})
    store.audit("deadletter.chunk", actor=actor, run_id=run_id, subject=str(letter_id),
                data={"chunk_no": chunk_no, "stage": stage, "step": step_id, "records": len(unsettled),
                      "error": str(error)[:500]})
    return letter_id


def finish_run(run_id: str, status: str, actor: str) -> dict[str, Any]:
    store = resources().store
    report = build_report(store, run_id, status=status)
    store.update_run(run_id, status=status, report=report, finished_at=store.now(), lease_expires_at=None)
    store.audit("run.finished", actor=actor, run_id=run_id, data={"status": status, "counts": report["counts"]})
    return report
