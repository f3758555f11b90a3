"""run_step: per-record failures, fallbacks, retries, the pure-tool cache, and skipping failed records."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from airlock.errors import ToolInputError, TransientToolError
from airlock.execute import (
    BATCH_GC_THRESHOLDS,
    TOOL_KEY,
    RecordFailure,
    StepResult,
    ToolCache,
    batch_collection,
    confidence_of,
    flags_of,
    run_step,
    step_payloads,
)
from airlock.plan import Plan, Step
from airlock.registry import SideEffect, ToolRegistry, ToolSpec, tool

RECORDS = [{"id": "1", "name": "acme"}, {"id": "2", "name": "boom"}, {"id": "3", "name": "beta"}]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NameIn(Strict):
    name: str | None = None


class UpperOut(Strict):
    upper: str | None = None
    confidence: float = 1.0
    flags: list[str] = []


class TagsIn(Strict):
    name: str | None = None
    tags: list[str] = []


class LengthIn(Strict):
    upper: str | None = None


class LengthOut(Strict):
    length: int = 0


def plan_with(steps: list[dict[str, Any]], proposes: dict[str, str]) -> Plan:
    return Plan.model_validate({"request": "test", "dataset": {"name": "d", "columns": ["id", "name"]},
                                "steps": steps, "proposes": proposes})


def upper_tool(effect: SideEffect, calls: list[str], *, name: str = "upper",
               fails: dict[str, list[BaseException]] | None = None, always: BaseException | None = None,
               confidence: float = 1.0) -> ToolSpec[Any, Any]:
    """A tool upper-casing the name; ``fails`` lists errors raised for a name before it succeeds,
    ``always`` is raised for the name 'boom' on every call."""
    pending = {k: list(v) for k, v in (fails or {}).items()}

    def upper(data: NameIn) -> UpperOut:
        """Upper-cases a name."""
        calls.append(data.name or "")
        if always is not None and data.name == "boom":
            raise always
        queue = pending.get(data.name or "")
        if queue:
            raise queue.pop(0)
        return UpperOut(upper=(data.name or "").upper(), confidence=confidence, flags=["shouted"])

    return tool(effect=effect, name=name)(upper)


def one_step_plan(fallback: str | None = None) -> Plan:
    step: dict[str, Any] = {"id": "up", "tool": "upper", "inputs": {"name": "record.name"}}
    if fallback:
        step["fallback"] = fallback
    return plan_with([step], {"upper": "steps.up.upper"})


def test_a_record_that_keeps_failing_is_a_failure_and_the_rest_go_on(sleeps: list[float]) -> None:
    calls: list[str] = []
    registry = ToolRegistry([upper_tool(SideEffect.READ, calls, always=TransientToolError("timeout"))])
    plan = one_step_plan()
    result = run_step(plan, plan.steps[0], registry, RECORDS, {}, sleep=sleeps.append)

    assert set(result.outputs) == {"1", "3"}
    assert result.outputs["1"]["upper"] == "ACME" and result.outputs["1"][TOOL_KEY] == "upper"
    failure = result.failures["2"]
    assert (failure.tool, failure.error_type, failure.error, failure.retryable) == (
        "upper", "TransientToolError", "timeout", True)
    assert failure.spec_hash == registry["upper"].spec_hash
    assert failure.input == {"name": "boom"}
    assert [a["number"] for a in failure.attempts] == [1, 2, 3, 4]  # the read policy's attempts
    assert all(a["tool"] == "upper" for a in failure.attempts)
    assert calls.count("boom") == 4 and len(sleeps) == 3
    assert result.calls == 3 and result.fallbacks == 0


def test_a_non_retryable_failure_is_tried_once(sleeps: list[float]) -> None:
    calls: list[str] = []
    registry = ToolRegistry([upper_tool(SideEffect.READ, calls, always=ToolInputError("not a name"))])
    plan = one_step_plan()
    result = run_step(plan, plan.steps[0], registry, RECORDS, {}, sleep=sleeps.append)
    assert calls.count("boom") == 1 and sleeps == []
    assert result.failures["2"].retryable is False and len(result.failures["2"].attempts) == 1


def test_retryable_errors_are_retried_then_succeed(sleeps: list[float]) -> None:
    calls: list[str] = []
    errors: list[BaseException] = [TransientToolError("429", retry_after=0.5), ConnectionError("reset")]
    registry = ToolRegistry([upper_tool(SideEffect.READ, calls, fails={"beta": errors})])
    plan = one_step_plan()
    result = run_step(plan, plan.steps[0], registry, RECORDS, {}, sleep=sleeps.append)
    assert result.failures == {}
    assert result.outputs["3"]["upper"] == "BETA"
    assert calls.count("beta") == 3
    assert sleeps[0] == 0.5 and len(sleeps) == 2


def test_step_attempts_override_the_effect_policy(sleeps: list[float]) -> None:
    calls: list[str] = []
    registry = ToolRegistry([upper_tool(SideEffect.READ, calls, always=TransientToolError("timeout"))])
    plan = plan_with([{"id": "up", "tool": "upper", "inputs": {"name": "record.name"}, "attempts": 2}],
                     {"upper": "steps.up.upper"})
    result = run_step(plan, plan.steps[0], registry, RECORDS, {}, sleep=sleeps.append)
    assert calls.count("boom") == 2 and len(result.failures["2"].attempts) == 2


def test_the_fallback_is_used_when_the_primary_fails(sleeps: list[float]) -> None:
    primary_calls: list[str] = []
    fallback_calls: list[str] = []
    registry = ToolRegistry([
        upper_tool(SideEffect.NONE, primary_calls, always=ToolInputError("primary refuses")),
        upper_tool(SideEffect.NONE, fallback_calls, name="upper_backup"),
    ])
    plan = one_step_plan(fallback="upper_backup")
    result = run_step(plan, plan.steps[0], registry, RECORDS, {}, sleep=sleeps.append)
    assert result.failures == {}
    assert result.outputs["2"]["upper"] == "BOOM" and result.outputs["2"][TOOL_KEY] == "upper_backup"
    assert result.outputs["1"][TOOL_KEY] == "upper"
    assert result.fallbacks == 1 and fallback_calls == ["boom"]


def test_when_primary_and_fallback_fail_both_are_in_the_attempts(sleeps: list[float]) -> None:
    registry = ToolRegistry([
        upper_tool(SideEffect.NONE, [], always=ToolInputError("primary refuses")),
        upper_tool(SideEffect.NONE, [], name="upper_backup", always=ToolInputError("backup refuses")),
    ])
    plan = one_step_plan(fallback="upper_backup")
    result = run_step(plan, plan.steps[0], registry, RECORDS, {}, sleep=sleeps.append)
    failure = result.failures["2"]
    assert failure.tool == "upper_backup" and failure.error == "backup refuses"
    assert [a["tool"] for a in failure.attempts] == ["upper", "upper_backup"]
    assert set(result.outputs) == {"1", "3"}


def test_a_contract_breaking_output_is_a_record_failure(sleeps: list[float]) -> None:
    def broken(data: NameIn) -> UpperOut:
        """Returns a number where text belongs."""
        return {"upper": 42} if data.name == "boom" else UpperOut(upper="ok")  # type: ignore[return-value]

    registry = ToolRegistry([tool(effect=SideEffect.NONE, name="upper")(broken)])
    plan = one_step_plan()
    result = run_step(plan, plan.steps[0], registry, RECORDS, {}, sleep=sleeps.append)
    assert result.failures["2"].error_type == "ToolOutputError" and set(result.outputs) == {"1", "3"}


def test_pure_tools_hit_the_cache_for_repeated_inputs(sleeps: list[float]) -> None:
    calls: list[str] = []
    registry = ToolRegistry([upper_tool(SideEffect.NONE, calls)])
    plan = one_step_plan()
    records = [{"id": str(i), "name": "same" if i % 2 else "other"} for i in range(10)]
    cache = ToolCache()
    result = run_step(plan, plan.steps[0], registry, records, {}, cache=cache, sleep=sleeps.append)
    assert sorted(calls) == ["other", "same"]
    assert (result.calls, result.cache_hits) == (2, 8)
    assert {o["upper"] for o in result.outputs.values()} == {"SAME", "OTHER"} and len(result.outputs) == 10
    again = run_step(plan, plan.steps[0], registry, records, {}, cache=cache, sleep=sleeps.append)
    assert (again.calls, again.cache_hits) == (0, 10) and len(calls) == 2


def test_read_tools_are_not_cached(sleeps: list[float]) -> None:
    calls: list[str] = []
    registry = ToolRegistry([upper_tool(SideEffect.READ, calls)])
    plan = one_step_plan()
    records = [{"id": str(i), "name": "same"} for i in range(4)]
    result = run_step(plan, plan.steps[0], registry, records, {}, cache=ToolCache(), sleep=sleeps.append)
    assert len(calls) == 4 and result.cache_hits == 0


def test_the_cache_is_bounded() -> None:
    cache = ToolCache(max_entries=2)
    cache.put("tool", "a", {"v": 1})
    cache.put("tool", "b", {"v": 2})
    cache.put("tool", "c", {"v": 3})
    assert cache.get("tool", "c") == {"v": 3} and cache.get("tool", "a") is None


def test_a_tool_whose_inputs_seldom_repeat_stops_being_cached(sleeps: list[float]) -> None:
    calls: list[str] = []
    registry = ToolRegistry([upper_tool(SideEffect.NONE, calls)])
    plan = one_step_plan()
    cache = ToolCache(probe=20, min_hit_rate=0.25)
    # 19 distinct names out of 20: one hit, 5% of the lookups, under the 25% asked for.
    unique = [{"id": str(i), "name": f"n{max(i, 1)}"} for i in range(20)]
    first = run_step(plan, plan.steps[0], registry, unique, {}, cache=cache, sleep=sleeps.append)
    assert (first.calls, first.cache_hits) == (19, 1)
    assert not cache.caches(registry["upper"].spec_hash) and len(cache) == 0  # its entries are dropped
    again = run_step(plan, plan.steps[0], registry, unique, {}, cache=cache, sleep=sleeps.append)
    assert (again.calls, again.cache_hits) == (20, 0)  # called every time now, same outputs
    assert again.outputs == first.outputs
    # Another tool, whose inputs repeat, is still cached by the same cache.
    repeated = ToolCache(probe=20, min_hit_rate=0.25)
    same = [{"id": str(i), "name": "same" if i % 2 else "other"} for i in range(40)]
    result = run_step(plan, plan.steps[0], registry, same, {}, cache=repeated, sleep=sleeps.append)
    assert (result.calls, result.cache_hits) == (2, 38) and repeated.caches(registry["upper"].spec_hash)


def test_records_failed_in_an_earlier_step_are_skipped(sleeps: list[float]) -> None:
    calls: list[str] = []
    registry = ToolRegistry([upper_tool(SideEffect.NONE, calls)])
    plan = one_step_plan()
    failed = RecordFailure(tool="earlier", spec_hash="x", error_type="ToolInputError", error="no", retryable=False,
                           attempts=[], input={})
    prior = {"earlier": StepResult(step_id="earlier", outputs={"1": {}, "3": {}}, failures={"2": failed})}
    result = run_step(plan, plan.steps[0], registry, RECORDS, prior, sleep=sleeps.append)
    assert "boom" not in calls
    assert set(result.outputs) == {"1", "3"} and result.failures == {}


def test_step_outputs_feed_later_steps_and_empty_values_become_none(sleeps: list[float]) -> None:
    lengths: list[str | None] = []

    def length(data: LengthIn) -> LengthOut:
        """Length of the upper-cased name."""
        lengths.append(data.upper)
        return LengthOut(length=len(data.upper or ""))

    registry = ToolRegistry([upper_tool(SideEffect.NONE, []), tool(effect=SideEffect.NONE)(length)])
    plan = plan_with(
        [{"id": "up", "tool": "upper", "inputs": {"name": "record.name"}},
         {"id": "len", "tool": "length", "inputs": {"upper": "steps.up.upper"}}],
        {"length": "steps.len.length"},
    )
    records = [{"id": "1", "name": "acme"}, {"id": "2", "name": ""}]
    first = run_step(plan, plan.steps[0], registry, records, {}, sleep=sleeps.append)
    assert first.outputs["2"]["upper"] == ""  # the tool saw None ('' in a record means missing) and said ''
    second = run_step(plan, plan.steps[1], registry, records, {"up": first}, sleep=sleeps.append)
    assert lengths == ["ACME", ""] and second.outputs["1"]["length"] == 4


def test_payloads_hold_each_binding_and_a_proposal_binding_is_refused_before_the_commit_phase() -> None:
    plan = plan_with(
        [{"id": "up", "tool": "upper", "inputs": {"name": "record.name", "mode": {"literal": "strict"},
                                                   "earlier": "steps.prev.value"}}],
        {"upper": "steps.up.upper"},
    )
    prior = {"prev": StepResult(step_id="prev", outputs={"1": {"value": 7}, "2": {"value": None}},
                                failures={"3": RecordFailure("t", "h", "E", "no", False, [], {})})}
    records = [{"id": "1", "name": "acme"}, {"id": "2", "name": ""}, {"id": "3", "name": "gone"}]
    assert step_payloads(plan, plan.steps[0], records, prior) == {
        "1": {"name": "acme", "mode": "strict", "earlier": 7},
        "2": {"name": None, "mode": "strict", "earlier": None},  # record 3 failed earlier: left out
    }
    late = Step.model_validate({"id": "late", "tool": "upper", "inputs": {"name": "proposal.domain"}})
    with pytest.raises(ValueError, match="not available in the propose phase"):
        step_payloads(plan, late, records, {})


def test_literals_reach_the_tool(sleeps: list[float]) -> None:
    seen: list[list[str]] = []

    def tag(data: TagsIn) -> UpperOut:
        """Tags a name."""
        seen.append(data.tags)
        return UpperOut(upper=f"{data.name}:{','.join(data.tags)}")

    registry = ToolRegistry([tool(effect=SideEffect.NONE, name="upper")(tag)])
    plan = plan_with([{"id": "up", "tool": "upper", "inputs": {"name": "record.name", "tags": {"literal": ["x"]}}}],
                     {"upper": "steps.up.upper"})
    result = run_step(plan, plan.steps[0], registry, RECORDS[:1], {}, sleep=sleeps.append)
    assert result.outputs["1"]["upper"] == "acme:x" and seen == [["x"]]


def test_the_cache_copes_with_list_inputs(sleeps: list[float]) -> None:
    def tag(data: TagsIn) -> UpperOut:
        """Tags a name."""
        return UpperOut(upper=f"{data.name}:{','.join(data.tags)}")

    registry = ToolRegistry([tool(effect=SideEffect.NONE, name="upper")(tag)])
    plan = plan_with([{"id": "up", "tool": "upper", "inputs": {"name": "record.name", "tags": {"literal": ["x"]}}}],
                     {"upper": "steps.up.upper"})
    result = run_step(plan, plan.steps[0], registry, RECORDS, {}, cache=ToolCache(), sleep=sleeps.append)
    assert result.failures == {}, {k: v.error for k, v in result.failures.items()}
    assert result.outputs["1"]["upper"] == "acme:x"


def test_step_result_round_trips_through_bytes(sleeps: list[float]) -> None:
    registry = ToolRegistry([upper_tool(SideEffect.NONE, [], always=ToolInputError("nope"))])
    plan = one_step_plan()
    result = run_step(plan, plan.steps[0], registry, RECORDS, {}, sleep=sleeps.append)
    restored = StepResult.from_bytes(result.to_bytes())
    assert restored == result
    assert isinstance(restored.failures["2"], RecordFailure)


def test_confidence_and_flags_helpers() -> None:
    assert confidence_of({"confidence": 0.7}) == 0.7 and confidence_of({"confidence": 1}) == 1.0
    assert confidence_of({}) is None and confidence_of({"confidence": "high"}) is None
    assert flags_of({"flags": ["a", 3]}) == ["a", "3"] and flags_of({"flags": "a"}) == []


def test_batch_collection_raises_the_thresholds_and_gives_the_earlier_ones_back() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 500)  # a generation already collected more rarely stays so
        with batch_collection():
            assert gc.get_threshold() == (BATCH_GC_THRESHOLDS[0], BATCH_GC_THRESHOLDS[1], 500)
            with batch_collection():  # nested: the enclosing thresholds stay and come back
                assert gc.get_threshold()[0] == BATCH_GC_THRESHOLDS[0]
            assert gc.get_threshold()[0] == BATCH_GC_THRESHOLDS[0]
        assert gc.get_threshold() == (700, 10, 500)
        with pytest.raises(RuntimeError), batch_collection():
            raise RuntimeError("a failed run")
        assert gc.get_threshold() == (700, 10, 500)
    finally:
        gc.set_threshold(*before)
