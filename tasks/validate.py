"""Validate one chunk's proposals (GX suite, contract, rules, thresholds) and store one verdict per
record, the review items and the per-record dead letters, all in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from prefect import task
from prefect.cache_policies import NO_CACHE

from airlock.execute import StepResult
from airlock.plan import Plan
from airlock.validation import Verdict, risk_of, validate_chunk
from expectations.accounts import RULES, ProposedAccount, build_suite
from tasks.resources import resources

MARKER = "@validate"


@dataclass
class ChunkVerdicts:
    chunk_no: int
    passed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (record id, proposed values)
    review: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_bytes(cls, payload: bytes) -> ChunkVerdicts:
        data = orjson.loads(payload)
        data["passed"] = [tuple(p) for p in data["passed"]]
        return cls(**data)


def validate_chunk_fn(run_id: str, plan: Plan, chunk_no: int, records: list[dict[str, Any]],
                      results: dict[str, StepResult]) -> ChunkVerdicts:
    res = resources()
    stored = res.store.get_step_outcome(run_id, MARKER, chunk_no)
    if stored is not None:
        return ChunkVerdicts.from_bytes(stored)
    checked = validate_chunk(plan, records, results, gx=res.gx, suite_factory=build_suite,
                             contract=ProposedAccount, rules=RULES)
    verdicts = ChunkVerdicts(chunk_no)
    proposal_rows, review_rows = [], []
    outcome_of = {Verdict.PASS: "proposed", Verdict.REVIEW: "pending_review", Verdict.REJECT: "rejected"}
    for proposal in checked.proposals:
        verdict = checked.verdicts[proposal.record_id]
        proposal_hash = proposal.proposal_hash  # a hash of the values: compute it once per record
        proposal_rows.append({
            "record_id": proposal.record_id, "chunk_no": chunk_no, "changes": proposal.changes(),
            "proposal_hash": proposal_hash, "verdict": verdict.verdict.value, "reasons": verdict.reasons,
            "outcome": outcome_of[verdict.verdict],
        })
        if verdict.verdict is Verdict.PASS:
            verdicts.passed.append((proposal.record_id, proposal.after))
        elif verdict.verdict is Verdict.REVIEW:
            verdicts.review.append(proposal.record_id)
            review_rows.append({"record_id": proposal.record_id, "proposal_hash": proposal_hash,
                                "reasons": verdict.reasons, "risk": risk_of(proposal, verdict)})
        else:
            verdicts.rejected.append(proposal.record_id)
    dead_rows = []
    for record_id, (step_id, failure) in checked.failures.items():
        verdicts.dead_lettered.append(record_id)
        reason = f"failed:{step_id}"
        proposal_rows.append({"record_id": record_id, "chunk_no": chunk_no, "changes": {}, "proposal_hash": "",
                              "verdict": None, "reasons": [reason], "outcome": "dead_lettered"})
        dead_rows.append({
            "kind": "record", "stage": "execute", "step_id": step_id, "chunk_no": chunk_no,
            "record_ids": [record_id], "tool": failure.tool, "spec_hash": failure.spec_hash,
            "error_type": failure.error_type, "error": failure.error, "retryable": failure.retryable,
            "attempts": failure.attempts, "payload": {"input": failure.input},
        })
    res.store.save_chunk_verdicts(run_id, chunk_no, proposal_rows=proposal_rows, review_rows=review_rows,
                                  dead_letter_rows=dead_rows, marker_step=MARKER, marker=verdicts.to_bytes())
    return verdicts


validate_chunk_task = task(name="validate-chunk", cache_policy=NO_CACHE, retries=1,
                           retry_delay_seconds=1)(validate_chunk_fn)
