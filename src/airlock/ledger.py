"""The effects ledger: every write carries an idempotency key, and is recorded before and after.

The key is derived from (run, plan hash, write, record, target system); the hash of the values is
stored beside it. A key that arrives again with other values (a tool that answered differently on
a retry) is not written: the record goes to review. The intent is recorded before the call and the
outcome after; the business system itself keeps the applied keys (the CRM in ``applied_writes``, in
the same transaction as the change), so a retry, a resume or a replay never writes twice.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from airlock.plan import Plan, Write
from airlock.registry import IDEMPOTENCY_FIELD, ToolRegistry
from airlock.retry import RetryOutcome, call_with_retry
from airlock.store import Store
from airlock.validation.findings import values_hash

DONE = ("applied", "unchanged", "duplicate")


def idempotency_key(run_id: str, plan_hash: str, write: Write, record_id: str) -> str:
    raw = "\x1f".join((run_id, plan_hash, write.id, record_id, write.target))
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def write_inputs(write: Write, record: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, binding in write.inputs.items():
        if binding.source == "record":
            value = record.get(binding.field or "")
            values[name] = None if value == "" else value
        elif binding.source == "proposal":
            values[name] = after.get(binding.field or "")
        elif binding.source == "literal":
            values[name] = binding.value
    return values


@dataclass
class CommitItem:
    record_id: str
    record: dict[str, Any]
    after: dict[str, Any]


@dataclass
class CommitResult:
    outcomes: dict[str, str] = field(default_factory=dict)  # record id -> written | unchanged | would_write
    conflicts: list[str] = field(default_factory=list)  # record ids whose key came back with other values
    duplicates_prevented: int = 0
    attempts: list[dict[str, Any]] = field(default_factory=list)


def commit(
    store: Store,
    plan: Plan,
    registry: ToolRegistry,
    run_id: str,
    items: Sequence[CommitItem],
    *,
    dry_run: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> CommitResult:
    """Write ``items`` through every write of the plan. Raises when a write is exhausted: the
    caller (a task) retries with the same keys, then dead-letters the chunk."""
    result = CommitResult()
    written: set[str] = set()
    live = {item.record_id: item for item in items}
    for write in plan.writes:
        spec = registry[write.tool]
        prepared = []
        for item in live.values():
            values = write_inputs(write, item.record, item.after)
            prepared.append((item.record_id, idempotency_key(run_id, plan.hash, write, item.record_id),
                             values_hash(values), values))
        if dry_run:
            result.outcomes.update({rid: "would_write" for rid, *_ in prepared})
            continue
        existing = store.existing_effects([key for _, key, _, _ in prepared])
        to_send, intents = [], []
        for record_id, key, vhash, values in prepared:
            known = existing.get(key)
            if known is None:
                intents.append({"idempotency_key": key, "run_id": run_id, "record_id": record_id, "write_id": write.id,
                                "target": write.target, "tool": spec.name, "values_hash": vhash})
            elif known["values_hash"] != vhash:
                result.conflicts.append(record_id)
                live.pop(record_id, None)
                continue
            elif known["status"] in DONE:
                result.duplicates_prevented += 1
                if known["status"] != "unchanged":
                    written.add(record_id)
                continue
            to_send.append((record_id, key, {**values, IDEMPOTENCY_FIELD: key, "values_hash": vhash}))
        store.record_intents(intents)
        if not to_send:
            continue
        payloads = [
            {k: v for k, v in payload.items() if k in spec.input_model.model_fields} for _, _, payload in to_send
        ]
        retry_log = RetryOutcome()
        try:
            outputs = call_with_retry(partial(spec.call_batch, payloads), spec.policy.retry, outcome=retry_log,
                                      sleep=sleep)
        except Exception as error:
            store.record_effect_outcomes([(key, "failed", f"{type(error).__name__}: {error}"[:500])
                                          for _, key, _ in to_send])
            raise
        finally:
            result.attempts += [vars(a) for a in retry_log.attempts]
        outcomes = []
        for (record_id, key, _), output in zip(to_send, outputs, strict=True):
            status = str(getattr(output, "status", "applied"))
            outcomes.append((key, status, None))
            if status == "duplicate":
                result.duplicates_prevented += 1
            if status in ("applied", "duplicate"):
                written.add(record_id)
        store.record_effect_outcomes(outcomes)
    if not dry_run:
        for record_id in live:
            result.outcomes[record_id] = "written" if record_id in written else "unchanged"
    return result
