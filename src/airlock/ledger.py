"""The effects ledger: every write carries an idempotency key, and is recorded before and after.

The key is derived from (run, plan hash, write, record, target system); the hash of the values is
stored beside it. A key that arrives again with other values (a tool that answered differently on
a retry) is not written: the record goes to review. The intent is recorded before the call and the
outcome after; the business system itself keeps the applied keys (the CRM in ``applied_writes``, in
the same transaction as the change; the ticketing service keyed by its ``Idempotency-Key`` header),
so a retry, a resume or a replay never writes twice.

What happens when a call fails depends on the tool's effect:

- a call that raised a retryable error (a timeout after which the system may have applied the
  write) has an ``unknown`` outcome. A ``write`` tool is simply called again with the same key; an
  ``external`` tool never is: its records go to review (``outcome_unknown``).
- a call that answered ``failed`` for one record (the system refused it) marks that key
  ``refused``. The record's earlier writes in the same run are compensated: the same tool is called
  with the before-image the ledger kept, under a compensation key recorded as an intent first. The
  record becomes a dead letter; a compensation that fails becomes a dead letter of its own.
- after a compensation, a replay of the record writes again under a new key (``supersedes``), since
  the system has already answered the old one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from airlock.errors import is_retryable
from airlock.plan import Plan, Write
from airlock.registry import IDEMPOTENCY_FIELD, SideEffect, ToolRegistry, ToolSpec
from airlock.retry import RetryOutcome, call_with_retry
from airlock.store import Store
from airlock.validation.findings import values_hash

DONE = ("applied", "unchanged", "duplicate")
# An output field of a write tool: the values an applied write replaced (its before-image).
BEFORE_FIELD = "before"
COMPENSATE_SUFFIX = "~compensate"


def idempotency_key(run_id: str, plan_hash: str, write: Write, record_id: str) -> str:
    raw = "\x1f".join((run_id, plan_hash, write.id, record_id, write.target))
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def derived_key(key: str, purpose: str) -> str:
    """A key for the compensation of ``key``, or for writing again after it was compensated."""
    return hashlib.sha256(f"{key}\x1f{purpose}".encode()).hexdigest()[:40]


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
    outcomes: dict[str, str] = field(default_factory=dict)  # record id -> written | unchanged | would_write | ...
    conflicts: list[str] = field(default_factory=list)  # record ids whose key came back with other values
    unknown: list[str] = field(default_factory=list)  # external writes with an unknown outcome: to review
    duplicates_prevented: int = 0
    compensated: int = 0
    attempts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Ctx:
    store: Store
    plan: Plan
    registry: ToolRegistry
    run_id: str
    actor: str
    sleep: Callable[[float], None]


def _resolve_keys(store: Store, keys: list[str],
                  existing: dict[str, dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any] | None]]:
    """Base key -> (the key to use now, its ledger row), from ``existing`` (the ledger rows of the
    base keys). A compensated key is followed to its redo."""
    resolved = {}
    for base in keys:
        key, row = base, existing.get(base)
        while row is not None and row["status"] == "compensated":
            key = derived_key(key, "redo")
            row = store.existing_effects([key]).get(key)
        resolved[base] = (key, row)
    return resolved


def commit(
    store: Store,
    plan: Plan,
    registry: ToolRegistry,
    run_id: str,
    items: Sequence[CommitItem],
    *,
    dry_run: bool = False,
    retry_refused: bool = False,
    actor: str = "airlock",
    sleep: Callable[[float], None] = time.sleep,
) -> CommitResult:
    """Write ``items`` through every write of the plan, in order. Raises when a write is exhausted:
    the caller (a task) retries with the same keys, then dead-letters the chunk. Records a system
    refused stay dead-lettered unless ``retry_refused`` (a replay)."""
    ctx = _Ctx(store, plan, registry, run_id, actor, sleep)
    result = CommitResult()
    written: set[str] = set()
    live = {item.record_id: item for item in items}
    if dry_run:
        if plan.writes:
            result.outcomes.update(dict.fromkeys(live, "would_write"))
        return result
    # Each write's values for the records it acts on, their base keys, and the keys' ledger rows in
    # one query: a write's processing never touches the keys of the writes after it, so the rows are
    # current when each write is resolved.
    values_of = {write.id: _acted_on(write, registry[write.tool], live.values()) for write in plan.writes}
    base_keys = {write.id: {rid: idempotency_key(run_id, plan.hash, write, rid) for rid in values_of[write.id]}
                 for write in plan.writes}
    rows = store.existing_effects([k for keys in base_keys.values() for k in keys.values()])
    if not retry_refused:
        _skip_refused(base_keys, rows, live)
    for index, write in enumerate(plan.writes):
        spec = registry[write.tool]
        keys = base_keys[write.id]
        prepared = [(record_id, keys[record_id], values_hash(values), values)
                    for record_id, values in values_of[write.id].items() if record_id in live]
        resolved = _resolve_keys(store, [base for _, base, _, _ in prepared], rows)
        to_send, intents = [], []
        for record_id, base, vhash, values in prepared:
            key, known = resolved[base]
            if known is None:
                intents.append({"idempotency_key": key, "run_id": run_id, "record_id": record_id, "write_id": write.id,
                                "target": write.target, "tool": spec.name, "values_hash": vhash,
                                "supersedes": None if key == base else base})
            elif known["values_hash"] != vhash:
                result.conflicts.append(record_id)
                live.pop(record_id, None)
                continue
            elif known["status"] in DONE:
                result.duplicates_prevented += 1
                if known["status"] != "unchanged":
                    written.add(record_id)
                continue
            elif known["status"] == "refused" and not retry_refused:
                live.pop(record_id, None)  # dead-lettered when it was refused; a replay retries it
                continue
            elif spec.effect is SideEffect.EXTERNAL and known["status"] in ("intent", "unknown"):
                # It may have happened: an irreversible call is never repeated blindly.
                result.unknown.append(record_id)
                live.pop(record_id, None)
                continue
            to_send.append((record_id, key, {**values, IDEMPOTENCY_FIELD: key, "values_hash": vhash}))
        store.record_intents(intents)
        if not to_send:
            continue
        outputs = _call(ctx, spec, to_send, result)
        if outputs is None:  # an external write with an unknown outcome: its records wait for a person
            for record_id, _, _ in to_send:
                result.unknown.append(record_id)
                live.pop(record_id, None)
            continue
        outcomes: list[tuple[str, str, str | None]] = []
        images: dict[str, dict[str, Any]] = {}
        refused: list[tuple[str, str, str, dict[str, Any]]] = []
        for (record_id, key, payload), output in zip(to_send, outputs, strict=True):
            status = str(getattr(output, "status", "applied"))
            if status == "failed":
                error = str(getattr(output, "error", "") or "refused")[:500]
                outcomes.append((key, "refused", error))
                refused.append((record_id, key, error, payload))
                continue
            outcomes.append((key, status, None))
            before = getattr(output, BEFORE_FIELD, None)
            if status == "applied" and isinstance(before, dict):
                images[key] = before
            if status == "duplicate":
                result.duplicates_prevented += 1
            if status in ("applied", "duplicate"):
                written.add(record_id)
        store.record_effect_outcomes(outcomes, images)
        for record_id, key, error, payload in refused:
            item = live.pop(record_id)
            result.compensated += _compensate_record(ctx, item, plan.writes[:index])
            result.outcomes[record_id] = "dead_lettered"
            _dead_letter(ctx, record_id, "commit", write.id, spec, "WriteRefused", error,
                         {"write": write.id, "idempotency_key": key,
                          "values": {k: v for k, v in payload.items() if k != IDEMPOTENCY_FIELD}})
    for record_id in live:
        result.outcomes[record_id] = "written" if record_id in written else "unchanged"
    return result


def _acted_on(write: Write, spec: ToolSpec[Any, Any], items: Iterable[CommitItem]) -> dict[str, dict[str, Any]]:
    """Record id -> the write's values, for the records the write's tool acts on (all of them unless
    it says otherwise): the others have no key, no ledger row and are not sent."""
    values = ((item.record_id, write_inputs(write, item.record, item.after)) for item in items)
    acts_on = spec.acts_on
    return {rid: v for rid, v in values if acts_on is None or acts_on(v)}


def _skip_refused(base_keys: dict[str, dict[str, str]], known: dict[str, dict[str, Any]],
                  live: dict[str, CommitItem]) -> None:
    """A record one of whose writes a system refused was dead-lettered then (and its other writes
    compensated); a commit of its chunk again leaves it to the replay."""
    for keys in base_keys.values():
        for record_id, key in keys.items():
            row = known.get(key)
            if row is not None and row["status"] == "refused":
                live.pop(record_id, None)


def _call(ctx: _Ctx, spec: ToolSpec[Any, Any], to_send: list[tuple[str, str, dict[str, Any]]],
          result: CommitResult) -> list[Any] | None:
    fields = set(spec.input_model.model_fields)  # looked up once: a property on the class, not a dict
    payloads = [{k: v for k, v in payload.items() if k in fields} for _, _, payload in to_send]
    retry_log = RetryOutcome()
    # An external tool is never retried blindly (its policy has one attempt).
    try:
        return call_with_retry(partial(spec.call_batch, payloads), spec.policy.retry, outcome=retry_log,
                               sleep=ctx.sleep)
    except Exception as error:
        # A retryable error (a timeout, a lost connection) may come after the system applied the
        # write: the outcome is unknown, not failed.
        status = "unknown" if is_retryable(error) else "failed"
        ctx.store.record_effect_outcomes([(key, status, f"{type(error).__name__}: {error}"[:500])
                                          for _, key, _ in to_send])
        if spec.effect is SideEffect.EXTERNAL and status == "unknown":
            return None
        raise
    finally:
        result.attempts += [vars(a) for a in retry_log.attempts]


def _compensate_record(ctx: _Ctx, item: CommitItem, earlier: Sequence[Write]) -> int:
    """Undo the record's applied earlier writes of this run with their before-images. Returns how
    many were undone; one that cannot be undone becomes a dead letter."""
    ids = {w.id: w for w in earlier}
    done = 0
    for row in ctx.store.effects_for_record(ctx.run_id, item.record_id):
        write = ids.get(row["write_id"])
        if write is None or row["status"] not in ("applied", "duplicate") or row["before_image"] is None:
            continue
        spec = ctx.registry[row["tool"]]
        before = dict(row["before_image"])
        fixed = {n: v for n, v in write_inputs(write, item.record, item.after).items()
                 if write.inputs[n].source != "proposal"}
        comp_key = derived_key(row["idempotency_key"], "compensate")
        vhash = values_hash(before)
        existing = ctx.store.existing_effects([comp_key]).get(comp_key)
        if existing is None:
            ctx.store.record_intents([{
                "idempotency_key": comp_key, "run_id": ctx.run_id, "record_id": item.record_id,
                "write_id": write.id + COMPENSATE_SUFFIX, "target": write.target, "tool": spec.name,
                "values_hash": vhash, "compensates": row["idempotency_key"], "before_image": before,
            }])
        payload = {k: v for k, v in {**fixed, **before, IDEMPOTENCY_FIELD: comp_key, "values_hash": vhash}.items()
                   if k in spec.input_model.model_fields}
        if existing is None or existing["status"] not in DONE:
            retry_log = RetryOutcome()
            try:
                output = call_with_retry(partial(spec.call_batch, [payload]), spec.policy.retry, outcome=retry_log,
                                         sleep=ctx.sleep)[0]
                status = str(getattr(output, "status", "applied"))
                if status == "failed":
                    raise RuntimeError(str(getattr(output, "error", "") or "compensation refused"))
            except Exception as error:  # noqa: BLE001 - a failed compensation is kept and dead-lettered
                message = f"{type(error).__name__}: {error}"[:500]
                ctx.store.record_effect_outcomes([(comp_key, "failed", message)])
                _dead_letter(ctx, item.record_id, "compensate", write.id, spec, type(error).__name__, message,
                             {"compensates": row["idempotency_key"], "idempotency_key": comp_key,
                              "before_image": before, "payload": payload},
                             attempts=[vars(a) for a in retry_log.attempts], retryable=is_retryable(error))
                continue
            ctx.store.record_effect_outcomes([(comp_key, status, None)])
        ctx.store.set_effect_status(row["idempotency_key"], "compensated")
        ctx.store.audit("effect.compensated", actor=ctx.actor, run_id=ctx.run_id, subject=item.record_id,
                        data={"write": write.id, "key": row["idempotency_key"], "compensation_key": comp_key})
        done += 1
    return done


def retry_compensation(store: Store, registry: ToolRegistry, run_id: str, payload: dict[str, Any],
                       actor: str) -> str:
    """Replay of a compensation dead letter: call the compensation again under its own key."""
    key = payload["idempotency_key"]
    row = store.existing_effects([key]).get(key)
    if row is None:
        raise KeyError(key)
    if row["status"] not in DONE:
        spec = registry[row["tool"]]
        retry_log = RetryOutcome()
        try:
            output = call_with_retry(partial(spec.call_batch, [payload["payload"]]), spec.policy.retry,
                                     outcome=retry_log)[0]
        except Exception as error:
            store.record_effect_outcomes([(key, "failed", f"{type(error).__name__}: {error}"[:500])])
            raise
        store.record_effect_outcomes([(key, str(getattr(output, "status", "applied")), None)])
    store.set_effect_status(payload["compensates"], "compensated")
    store.audit("effect.compensated", actor=actor, run_id=run_id, subject=row["record_id"],
                data={"key": payload["compensates"], "compensation_key": key, "replayed": True})
    return "compensated"


def _dead_letter(ctx: _Ctx, record_id: str, stage: str, step_id: str, spec: ToolSpec[Any, Any], error_type: str,
                 error: str, payload: dict[str, Any], *, attempts: list[dict[str, Any]] | None = None,
                 retryable: bool = False) -> None:
    letter_id = ctx.store.add_dead_letter(
        run_id=ctx.run_id, kind="record", stage=stage, step_id=step_id, chunk_no=None, record_ids=[record_id],
        tool=spec.name, spec_hash=spec.spec_hash, error_type=error_type, error=error, retryable=retryable,
        attempts=attempts or [], payload=payload,
    )
    ctx.store.audit(f"deadletter.{stage}", actor=ctx.actor, run_id=ctx.run_id, subject=str(letter_id),
                    data={"record": record_id, "write": step_id, "error": error})
