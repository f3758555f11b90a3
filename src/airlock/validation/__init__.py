"""The validation layer: every proposed change gets one verdict before anything is written.

Sources, in one pass per batch (chunk): the output contract (pydantic), the GX suite on the
proposed records, business rules, tool flags named by the policy, and per-field confidence
thresholds. If validation itself fails, the batch fails closed: nothing of it is written.
Uniqueness is judged over the whole run (``run_scope``): the caller passes what earlier chunks
claimed and gets back what this one claims.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from airlock.execute import TOOL_KEY, RecordFailure, StepResult, confidence_of, flags_of
from airlock.plan import Plan
from airlock.registry import FLAGS_FIELD
from airlock.validation.findings import Finding, Proposal, RecordVerdict, Verdict, decide, risk_of, values_hash
from airlock.validation.gx_runner import GxReport, GxRunner, RunScoped, SuiteFactory, process_gx, warm_process_gx
from airlock.validation.rules import Rule, check_contract, check_policy, check_rules
from airlock.validation.run_scope import Claimed, Claims, RunClaims, claim_unique, merge_claims

__all__ = [
    "ChunkValidation", "Claimed", "Claims", "Finding", "GxReport", "GxRunner", "Proposal", "RecordVerdict", "Rule",
    "RunClaims", "RunScoped", "Verdict", "build_proposals", "decide", "merge_claims", "process_gx", "risk_of",
    "validate_chunk", "values_hash", "warm_process_gx",
]


@dataclass
class ChunkValidation:
    proposals: list[Proposal] = field(default_factory=list)
    verdicts: dict[str, RecordVerdict] = field(default_factory=dict)
    failures: dict[str, tuple[str, RecordFailure]] = field(default_factory=dict)
    claims: Claims = field(default_factory=dict)  # values first claimed in the run by this chunk


def build_proposals(
    plan: Plan, records: Sequence[dict[str, Any]], results: dict[str, StepResult]
) -> tuple[list[Proposal], dict[str, tuple[str, RecordFailure]]]:
    """The proposed values per record, where each came from, and the records that failed a step."""
    failures: dict[str, tuple[str, RecordFailure]] = {}
    for step in plan.execution_order():
        for record_id, failure in results[step.id].failures.items():
            failures.setdefault(record_id, (step.id, failure))
    key = plan.dataset.key
    # Each step's outputs and each proposed field's source looked up once per chunk, not per record:
    # this loop runs for every record of a run.
    every_output = [results[step.id].outputs for step in plan.steps]
    fields = [(name, results[binding.step or ""].outputs, binding.field or "", binding.step)
              for name, binding in plan.proposes.items()]
    proposals: list[Proposal] = []
    for record in records:
        record_id = str(record[key])
        if record_id in failures:
            continue
        after: dict[str, Any] = {}
        sources: dict[str, dict[str, Any]] = {}
        flags: set[str] = set()
        for outputs in every_output:
            output = outputs.get(record_id)
            if output is not None and output.get(FLAGS_FIELD):
                flags.update(flags_of(output))
        for name, outputs, field_name, step_id in fields:
            output = outputs[record_id]
            after[name] = output.get(field_name)
            sources[name] = {"step": step_id, "tool": output.get(TOOL_KEY), "confidence": confidence_of(output)}
        before = {name: (record.get(name) or None) for name in after}
        proposals.append(Proposal(record_id, after, before, sources, sorted(flags)))
    return proposals, failures


def validate_chunk(
    plan: Plan,
    records: Sequence[dict[str, Any]],
    results: dict[str, StepResult],
    *,
    gx: GxRunner,
    suite_factory: SuiteFactory | None,
    contract: type[BaseModel] | None = None,
    rules: Sequence[Rule] = (),
    claimed: Claimed | None = None,
) -> ChunkValidation:
    """One verdict per proposal of the chunk. ``claimed``: the values earlier chunks of the run
    claimed for the suite's uniqueness expectations (none: this is the run's first chunk)."""
    proposals, failures = build_proposals(plan, records, results)
    by_id = {str(r[plan.dataset.key]): r for r in records}
    report = GxReport()
    if suite_factory is not None and proposals:
        rows = [{plan.dataset.key: p.record_id, **p.after} for p in proposals]
        report = gx.validate(suite_factory, rows, plan.dataset.key)
    duplicates, claims = claim_unique(proposals, report.run_scoped, claimed or {})
    verdicts: dict[str, RecordVerdict] = {}
    for proposal in proposals:
        findings: list[Finding] = [
            *check_contract(proposal, contract),
            *report.by_record.get(proposal.record_id, []),
            *report.batch,
            *duplicates.get(proposal.record_id, ()),
            *check_rules(proposal, by_id[proposal.record_id], list(rules)),
            *check_policy(proposal, plan.policy),
        ]
        verdicts[proposal.record_id] = decide(proposal.record_id, findings)
    return ChunkValidation(proposals, verdicts, failures, claims)
