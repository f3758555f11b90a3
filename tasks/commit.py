"""Commit: write passed (or approved) proposals through the effects ledger, then record each
record's outcome. Re-running a commit writes nothing twice: the ledger and the business system's
applied keys both say it is done."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from prefect import task
from prefect.cache_policies import NO_CACHE

from airlock.ledger import CommitItem, commit
from airlock.plan import Plan
from tasks.resources import resources
from tasks.verdicts import ChunkVerdicts

MARKER = "@commit"


@dataclass
class CommitSummary:
    outcomes: dict[str, int] = field(default_factory=dict)
    duplicates_prevented: int = 0
    conflicts: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)


def commit_records(run_id: str, plan: Plan, passed: Sequence[tuple[str, dict[str, Any]]], *, dry_run: bool,
                   actor: str, retry_refused: bool = False,
                   chunk_records: Sequence[dict[str, Any]] | None = None) -> CommitSummary:
    """Write these (record id, values) pairs and record the outcomes; shared by the chunk commit,
    the commit of approved review items and dead-letter replays. The input records come from
    ``chunk_records`` when the caller holds them (a chunk's commit), else from the run's snapshot."""
    res = resources()
    store = res.store
    key = plan.dataset.key
    held = {str(r[key]): r for r in chunk_records or ()}
    missing = [rid for rid, _ in passed if rid not in held]
    records = {**held, **{str(r[key]): r for r in (store.records_by_id(run_id, missing) if missing else ())}}
    items = [CommitItem(rid, records[rid], after) for rid, after in passed]
    result = commit(store, plan, res.registry, run_id, items, dry_run=dry_run, retry_refused=retry_refused,
                    actor=actor)
    summary = CommitSummary(duplicates_prevented=result.duplicates_prevented, conflicts=result.conflicts)
    # An idempotency conflict and an external write whose outcome is unknown both need a person.
    to_review = {rid: "idempotency_conflict" for rid in result.conflicts}
    to_review.update({rid: "outcome_unknown" for rid in result.unknown})
    for outcome in result.outcomes.values():
        summary.outcomes[outcome] = summary.outcomes.get(outcome, 0) + 1
    if not dry_run:
        store.set_outcomes(run_id, {**result.outcomes, **dict.fromkeys(to_review, "pending_review")})
        if to_review:
            proposals = {p["record_id"]: p for p in store.proposals_for(run_id, list(to_review))}
            existing = {i["record_id"] for i in store.review_items_for(run_id=run_id, status=None)}
            store.add_review_items([
                {"run_id": run_id, "record_id": rid, "proposal_hash": proposals[rid]["proposal_hash"],
                 "reasons": [reason], "risk": 2.0}
                for rid, reason in to_review.items() if rid not in existing
            ])
        store.audit("commit", actor=actor, run_id=run_id, data={
            "outcomes": summary.outcomes, "duplicates_prevented": result.duplicates_prevented,
            "conflicts": result.conflicts, "unknown": result.unknown, "compensated": result.compensated,
            "writes": [w.id for w in plan.writes], "attempts": result.attempts,
        })
    else:
        store.set_outcomes(run_id, result.outcomes)
    return summary


def commit_chunk_fn(run_id: str, plan: Plan, verdicts: ChunkVerdicts, dry_run: bool, actor: str,
                    retry_refused: bool = False, records: Sequence[dict[str, Any]] | None = None) -> CommitSummary:
    res = resources()
    store = res.store
    if store.get_step_outcome(run_id, MARKER, verdicts.chunk_no) is not None:
        return CommitSummary()
    summary = commit_records(run_id, plan, verdicts.passed, dry_run=dry_run, actor=actor,
                             retry_refused=retry_refused, chunk_records=records)
    store.save_step_outcome(run_id, MARKER, verdicts.chunk_no, summary.to_bytes())
    store.renew_lease(run_id, res.settings.lease_seconds)
    return summary


# Retried with the same idempotency keys, so a retry cannot apply a change twice.
commit_chunk = task(name="commit-chunk", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 2, 4])(
    commit_chunk_fn)


def commit_decided_fn(run_id: str, plan: Plan, dry_run: bool, actor: str) -> CommitSummary:
    """Carry out review decisions not yet carried out: approved items are written, rejected ones
    end rejected. Used while a run waits and, after it stopped waiting, by a follow-up commit."""
    store = resources().store
    decided = store.decided_uncommitted(run_id)
    if not decided:
        return CommitSummary()
    approved = [i["record_id"] for i in decided if i["status"] == "approved"]
    rejected = [i["record_id"] for i in decided if i["status"] == "rejected"]
    proposals = {p["record_id"]: p for p in store.proposals_for(run_id, approved)}
    passed = [(rid, {f: c["after"] for f, c in proposals[rid]["changes"].items()}) for rid in approved]
    summary = commit_records(run_id, plan, passed, dry_run=dry_run, actor=actor) if passed else CommitSummary()
    if rejected:
        store.set_outcomes(run_id, {rid: "rejected" for rid in rejected})
        summary.outcomes["rejected"] = summary.outcomes.get("rejected", 0) + len(rejected)
    if not dry_run:
        # An approval whose write hit an idempotency conflict was not carried out: it goes back to a
        # person (reopened with that reason) instead of being marked done with nothing to act on.
        conflicts = set(summary.conflicts)
        conflicted = {i["id"] for i in decided if i["record_id"] in conflicts}
        store.reopen_review_items(sorted(conflicted), reason="idempotency_conflict", actor=actor)
        store.mark_committed([i["id"] for i in decided if i["id"] not in conflicted])
    return summary


commit_decided = task(name="commit-decided", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 2, 4])(
    commit_decided_fn)
