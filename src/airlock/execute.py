"""Running one plan step over the records of one chunk.

Tools are called per record inside the chunk: a record whose call still fails after the effect's
retries and the step's fallback becomes a per-record failure (a dead letter later) and the rest of
the chunk proceeds. Pure tools (effect ``none``) are cached by input, so repeated values — the same
country spelling a thousand times — cost one call (a tool whose inputs seldom repeat is not, see
``ToolCache``).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from airlock.errors import is_retryable
from airlock.plan import Binding, Plan, Step
from airlock.registry import CONFIDENCE_FIELD, FLAGS_FIELD, ToolRegistry, ToolSpec
from airlock.retry import RetryOutcome, RetryPolicy, call_with_retry

Record = dict[str, Any]
TOOL_KEY = "_tool"  # which tool (primary or fallback) produced an output
# The cyclic collector's thresholds while batches are processed, in the run's process and in worker
# processes. A batch holds millions of small dicts (records, tool outputs, proposals), none of them
# in reference cycles; with the default thresholds the collector rescans them all the time (a
# quarter of the chunk work in the run's process, four tenths of a tool step in a worker, measured).
# Even one young collection per 50,000 new objects took about a second of the run's process at
# 100,000 records (73 of them, each going through a chunk's live records and outputs); one per
# million takes a fifth of that. The chunks' few cycles (Prefect's futures) wait a little longer.
BATCH_GC_THRESHOLDS = (1_000_000, 20, 100)


@contextmanager
def batch_collection() -> Iterator[None]:
    """The collector's batch thresholds (``BATCH_GC_THRESHOLDS``, never more often than now) while a
    run works; the thresholds in force before come back after. For a whole run, not only its chunks:
    reading and pinning 100,000 records under the default thresholds took the collector most of a
    second, with full collections going through every record read so far."""
    thresholds = gc.get_threshold()
    gc.set_threshold(*(max(now, batch) for now, batch in zip(thresholds, BATCH_GC_THRESHOLDS, strict=True)))
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


@dataclass
class RecordFailure:
    tool: str
    spec_hash: str
    error_type: str
    error: str
    retryable: bool
    attempts: list[dict[str, Any]]
    input: dict[str, Any]


@dataclass
class StepResult:
    """What one step did for one chunk: outputs and failures by record id. Stored per
    (run, step, chunk), so a re-run returns it instead of calling any tool again."""

    step_id: str
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, RecordFailure] = field(default_factory=dict)
    calls: int = 0
    cache_hits: int = 0
    fallbacks: int = 0
    seconds: float = 0.0

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)  # orjson serializes dataclasses natively, far faster than asdict

    @classmethod
    def from_bytes(cls, payload: bytes) -> StepResult:
        data = orjson.loads(payload)
        data["failures"] = {k: RecordFailure(**v) for k, v in data["failures"].items()}
        return cls(**data)


class ToolCache:
    """Per-process memo for pure tools, keyed by spec hash and input values.

    A tool whose inputs seldom repeat stops being cached in this process once that is clear (after
    ``probe`` lookups, fewer than ``min_hit_rate`` of them hits): building its keys would cost more
    than its few hits save, and its entries would only hold memory, keeping the outputs of chunks
    already written alive. At 100,000 generated accounts that is the domain, industry and (most)
    e-mail steps; the country, phone and employee steps hit often."""

    def __init__(self, max_entries: int = 200_000, *, probe: int = 5_000, min_hit_rate: float = 0.05) -> None:
        self.max_entries = max_entries
        self.probe = probe
        self.min_hit_rate = min_hit_rate
        self._entries: dict[str, dict[str, dict[str, Any]]] = {}  # spec hash -> input key -> output
        self._size = 0  # approximate under threads: it only bounds memory
        self._stats: dict[str, list[int]] = {}  # spec hash -> [lookups, hits]
        self._skipped: set[str] = set()

    def caches(self, spec_hash: str) -> bool:
        return spec_hash not in self._skipped

    def get(self, spec_hash: str, key: str) -> dict[str, Any] | None:
        entries = self._entries.get(spec_hash)
        hit = entries.get(key) if entries is not None else None
        stats = self._stats.get(spec_hash) or self._stats.setdefault(spec_hash, [0, 0])
        stats[0] += 1
        if hit is not None:
            stats[1] += 1
        elif stats[0] >= self.probe and stats[1] < stats[0] * self.min_hit_rate:
            self._skipped.add(spec_hash)
            self._size -= len(self._entries.pop(spec_hash, {}))
        return hit

    def put(self, spec_hash: str, key: str, value: dict[str, Any]) -> None:
        if spec_hash in self._skipped:
            return
        if self._size >= self.max_entries:
            self._entries, self._size = {}, 0  # cheap and bounded; a pure tool just computes again
        self._entries.setdefault(spec_hash, {})[key] = value
        self._size += 1

    def __len__(self) -> int:
        return sum(len(entries) for entries in list(self._entries.values()))


# How a binding reads its value (see binding_readers).
_FROM_RECORD, _FROM_STEP, _LITERAL = 0, 1, 2
_NO_OUTPUTS: dict[str, dict[str, Any]] = {}  # what a reader that reads no step holds as outputs


def binding_readers(bindings: Iterable[tuple[str, Binding]],
                    prior: dict[str, StepResult]) -> list[tuple[str, int, Any, dict[str, dict[str, Any]]]]:
    """Each binding of a step as (input name, kind, field or literal value, outputs of the step it
    reads): worked out once per step and chunk, so that building a record's payload is a few dict
    lookups (this loop runs for every record of every step, in the run's process)."""
    readers: list[tuple[str, int, Any, dict[str, dict[str, Any]]]] = []
    for name, binding in bindings:
        if binding.source == "record":
            readers.append((name, _FROM_RECORD, binding.field or "", _NO_OUTPUTS))
        elif binding.source == "step":
            readers.append((name, _FROM_STEP, binding.field or "", prior[binding.step or ""].outputs))
        elif binding.source == "literal":
            readers.append((name, _LITERAL, binding.value, _NO_OUTPUTS))
        else:
            raise ValueError(f"binding {binding} is not available in the propose phase")
    return readers


def failed_earlier(prior: dict[str, StepResult]) -> set[str]:
    return {rid for result in prior.values() for rid in result.failures}


def run_step(
    plan: Plan,
    step: Step,
    registry: ToolRegistry,
    records: Sequence[Record],
    prior: dict[str, StepResult],
    *,
    cache: ToolCache | None = None,
    sleep: Callable[[float], None] = time.sleep,
    offload: Callable[[Step, dict[str, dict[str, Any]]], StepResult | None] | None = None,
) -> StepResult:
    """One step over one chunk. With ``offload`` (a pool of tool processes), a step whose tools are
    pure and called per record may run there instead: only the resolved inputs travel, not the chunk.
    ``offload`` answers None for a step it leaves to this process."""
    payloads = step_payloads(plan, step, records, prior)
    if offload is not None and offloadable(step, registry):
        offloaded = offload(step, payloads)
        if offloaded is not None:
            return offloaded
    return call_tools(step, registry, payloads, cache=cache, sleep=sleep)


def step_payloads(plan: Plan, step: Step, records: Sequence[Record],
                  prior: dict[str, StepResult]) -> dict[str, dict[str, Any]]:
    """Each record's tool input, by record id, from the step's bindings; records that failed an
    earlier step are left out (they are dead letters already)."""
    skip = failed_earlier(prior)
    key_field = plan.dataset.key
    readers = binding_readers(step.inputs.items(), prior)
    payloads: dict[str, dict[str, Any]] = {}
    for record in records:
        record_id = str(record[key_field])
        if record_id in skip:
            continue
        payload: dict[str, Any] = {}
        for name, kind, what, outputs in readers:
            if kind == _FROM_RECORD:
                value = record.get(what)
                payload[name] = None if value == "" else value  # an empty CSV cell is a missing value
            elif kind == _FROM_STEP:
                payload[name] = outputs[record_id].get(what)
            else:
                payload[name] = what
        payloads[record_id] = payload
    return payloads


def offloadable(step: Step, registry: ToolRegistry) -> bool:
    """Pure tools called per record: no side effect, no model, no shared state to keep in this process."""
    specs = [registry[step.tool]] + ([registry[step.fallback]] if step.fallback else [])
    return all(spec.policy.cacheable and not spec.batched for spec in specs)


@dataclass(frozen=True)
class _Caller:
    """One tool as one step calls it, worked out once per step and chunk rather than per record:
    the retry policy, and the payload fields the tool accepts (None: all of them, the usual case)."""

    spec: ToolSpec[Any, Any]
    retry: RetryPolicy
    accepted: frozenset[str] | None

    @classmethod
    def of(cls, spec: ToolSpec[Any, Any], step: Step) -> _Caller:
        accepted = frozenset(spec.input_model.model_fields)
        return cls(spec, _retry_for(spec, step), None if accepted.issuperset(step.inputs) else accepted)

    def input_of(self, payload: dict[str, Any]) -> dict[str, Any]:
        # The payloads of a step hold exactly its bindings (step_payloads), so a tool accepting all
        # of them takes the payload as it is.
        return payload if self.accepted is None else {k: v for k, v in payload.items() if k in self.accepted}


def call_tools(
    step: Step,
    registry: ToolRegistry,
    payloads: dict[str, dict[str, Any]],
    *,
    cache: ToolCache | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> StepResult:
    """The step's tools over the given inputs: the primary, then the fallback, per record or per batch."""
    started = time.perf_counter()
    primary = _Caller.of(registry[step.tool], step)
    fallback = _Caller.of(registry[step.fallback], step) if step.fallback else None
    result = StepResult(step_id=step.id)
    if primary.spec.batched:
        _run_batched(primary, fallback, step, payloads, cache, result, sleep)
    else:
        callers = (primary, fallback) if fallback is not None else (primary,)
        for record_id, payload in payloads.items():
            _one_record(record_id, payload, callers, step, cache, result, sleep)
    result.seconds = time.perf_counter() - started
    return result


def _run_batched(
    primary: _Caller,
    fallback: _Caller | None,
    step: Step,
    payloads: dict[str, dict[str, Any]],
    cache: ToolCache | None,
    result: StepResult,
    sleep: Callable[[float], None],
) -> None:
    """Many records per call (a model classifying a batch); a batch that fails after its retries goes
    record by record to the fallback."""
    size = primary.spec.batch_size or max(len(payloads), 1)
    ids = list(payloads)
    for start in range(0, len(ids), size):
        batch = ids[start:start + size]
        failed = _call_batch(primary, [payloads[i] for i in batch], batch, result, sleep)
        for record_id in batch:
            if record_id in failed:
                _one_record(record_id, payloads[record_id], (fallback,) if fallback else (), step, cache, result,
                            sleep, earlier=failed[record_id])


def _one_record(
    record_id: str,
    payload: dict[str, Any],
    callers: tuple[_Caller, ...],
    step: Step,
    cache: ToolCache | None,
    result: StepResult,
    sleep: Callable[[float], None],
    earlier: tuple[ToolSpec[Any, Any], BaseException, list[dict[str, Any]]] | None = None,
) -> None:
    """One record through the given tools in order; the first that succeeds gives its output."""
    attempts: list[dict[str, Any]] = list(earlier[2]) if earlier else []
    last: tuple[ToolSpec[Any, Any], BaseException] | None = (earlier[0], earlier[1]) if earlier else None
    for caller in callers:
        try:
            output = _call(caller, caller.input_of(payload), cache, result, attempts, sleep)
        except Exception as error:  # noqa: BLE001 - the record boundary: the failure is kept, the chunk goes on
            last = (caller.spec, error)
            continue
        result.outputs[record_id] = output
        if caller.spec.name != step.tool:
            result.fallbacks += 1
        return
    if last is not None:
        failed_spec, failure = last
        result.failures[record_id] = RecordFailure(
            tool=failed_spec.name, spec_hash=failed_spec.spec_hash, error_type=type(failure).__name__,
            error=str(failure)[:1000], retryable=is_retryable(failure), attempts=attempts, input=payload,
        )


def _call_batch(
    caller: _Caller,
    payloads: list[dict[str, Any]],
    record_ids: list[str],
    result: StepResult,
    sleep: Callable[[float], None],
) -> dict[str, tuple[ToolSpec[Any, Any], BaseException, list[dict[str, Any]]]]:
    """One call for many records, retried as the tool's effect says. Returns the records it failed."""
    spec = caller.spec
    inputs = [caller.input_of(p) for p in payloads]
    outcome = RetryOutcome()
    result.calls += 1
    try:
        outputs = call_with_retry(lambda: spec.call_batch(inputs), caller.retry, outcome=outcome, sleep=sleep)
    except Exception as error:  # noqa: BLE001 - the batch boundary: its records try the fallback one by one
        attempts = [{"tool": spec.name, **asdict(a)} for a in outcome.attempts]
        return {record_id: (spec, error, attempts) for record_id in record_ids}
    for record_id, output in zip(record_ids, outputs, strict=True):
        dumped = spec.dump_output(output)
        dumped[TOOL_KEY] = spec.name
        result.outputs[record_id] = dumped
    return {}


def _retry_for(spec: ToolSpec[Any, Any], step: Step) -> RetryPolicy:
    policy = spec.policy
    if step.attempts is None:
        return policy.retry
    return RetryPolicy(attempts=step.attempts, base_delay=policy.retry.base_delay, max_delay=policy.retry.max_delay)


def _call(
    caller: _Caller,
    tool_input: dict[str, Any],
    cache: ToolCache | None,
    result: StepResult,
    attempts: list[dict[str, Any]],
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    spec = caller.spec
    key: str | None = None
    if cache is not None and spec.policy.cacheable and cache.caches(spec.spec_hash):
        # A str, not orjson's bytes: each bytes object orjson returns keeps a 4 KiB buffer alive.
        key = orjson.dumps(tool_input, option=orjson.OPT_SORT_KEYS).decode()
        hit = cache.get(spec.spec_hash, key)
        if hit is not None:
            result.cache_hits += 1
            return hit
    result.calls += 1
    try:
        # The first attempt outside call_with_retry: it nearly always succeeds, and this is the
        # innermost loop of a run (a step's tool, once per record).
        output = spec.call(tool_input)
    except Exception as error:  # noqa: BLE001 - handed to the retry loop, which re-raises what it gives up on
        output = _retried(caller, tool_input, error, attempts, sleep)
    dumped = spec.dump_output(output)
    dumped[TOOL_KEY] = spec.name
    if key is not None:
        cache.put(spec.spec_hash, key, dumped)  # type: ignore[union-attr]
    return dumped


def _retried(caller: _Caller, tool_input: dict[str, Any], first_failure: Exception,
             attempts: list[dict[str, Any]], sleep: Callable[[float], None]) -> Any:
    """The attempts after a failed first one, as the tool's retry policy allows; every failed attempt
    is added to ``attempts`` for the dead letter."""
    outcome = RetryOutcome()
    try:
        return call_with_retry(lambda: caller.spec.call(tool_input), caller.retry, outcome=outcome, sleep=sleep,
                               first_failure=first_failure)
    finally:
        attempts.extend({"tool": caller.spec.name, **asdict(a)} for a in outcome.attempts)


def confidence_of(output: dict[str, Any]) -> float | None:
    value = output.get(CONFIDENCE_FIELD)
    return float(value) if isinstance(value, (int, float)) else None


def flags_of(output: dict[str, Any]) -> list[str]:
    value = output.get(FLAGS_FIELD)
    return [str(v) for v in value] if isinstance(value, list) else []
