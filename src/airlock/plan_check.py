"""``check_plan``: everything that must be true of a plan before any of it runs.

It collects every problem rather than stopping at the first, each as a sentence a person can act
on: unknown tools, bindings that point nowhere or whose types do not match, cycles, writes outside
the commit phase, effects the policy does not allow, external effects without a named approver.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from airlock.errors import PlanRejected
from airlock.plan import Binding, Plan, Step
from airlock.registry import ENGINE_SUPPLIED, Phase, SideEffect, ToolRegistry, ToolSpec

RECORD_FIELD_TYPE: Any = str | None


def ensure_plan_ok(plan: Plan, registry: ToolRegistry) -> Plan:
    problems = check_plan(plan, registry)
    if problems:
        raise PlanRejected(problems)
    return plan


def check_plan(plan: Plan, registry: ToolRegistry) -> list[str]:
    problems: list[str] = []
    steps = {s.id: s for s in plan.steps}
    if len(steps) != len(plan.steps):
        problems.append("step ids must be unique")
    if len({w.id for w in plan.writes}) != len(plan.writes):
        problems.append("write ids must be unique")
    allowed = set(plan.policy.allowed_effects)

    for step in plan.steps:
        spec = _known_tool(registry, step.tool, f"step {step.id!r}", problems)
        if spec is None:
            continue
        if spec.policy.phase is Phase.COMMIT:
            problems.append(
                f"step {step.id!r} uses {spec.effect.value} tool {spec.name!r} outside the commit phase; "
                "writes belong under 'writes:'"
            )
        _check_effect(spec, allowed, f"step {step.id!r}", problems)
        _check_bindings(plan, registry, step.inputs, spec, f"step {step.id!r}", problems, allow_proposal=False)
        if step.fallback is not None:
            _check_fallback(plan, registry, step, spec, problems)

    problems.extend(_cycles(plan))

    for name, binding in plan.proposes.items():
        if binding.source != "step":
            problems.append(f"proposes.{name}: must come from a step output, not {binding}")
            continue
        _check_step_ref(plan, registry, binding, f"proposes.{name}", problems)
    for field, threshold in plan.policy.thresholds.items():
        if field not in plan.proposes:
            problems.append(f"policy.thresholds.{field}: the plan proposes no field {field!r}")
        if not 0 <= threshold <= 1:
            problems.append(f"policy.thresholds.{field}: {threshold} is not a confidence between 0 and 1")

    for write in plan.writes:
        spec = _known_tool(registry, write.tool, f"write {write.id!r}", problems)
        if spec is None:
            continue
        if spec.policy.phase is not Phase.COMMIT:
            problems.append(f"write {write.id!r}: tool {spec.name!r} has effect {spec.effect.value!r}, not a write")
        _check_effect(spec, allowed, f"write {write.id!r}", problems)
        if spec.effect is SideEffect.EXTERNAL and write.id not in plan.policy.approvals:
            problems.append(
                f"write {write.id!r}: external tool {spec.name!r} needs a named approver per record; "
                f"add {write.id!r} to policy.approvals"
            )
        for bound in ENGINE_SUPPLIED & set(write.inputs):
            problems.append(f"write {write.id!r}: {bound!r} is supplied by the engine and cannot be bound")
        _check_bindings(plan, registry, write.inputs, spec, f"write {write.id!r}", problems, allow_proposal=True)
    for write_id in plan.policy.approvals:
        if write_id not in {w.id for w in plan.writes}:
            problems.append(f"policy.approvals: there is no write {write_id!r}")
    return problems


def _known_tool(registry: ToolRegistry, name: str, where: str, problems: list[str]) -> ToolSpec[Any, Any] | None:
    spec = registry.get(name)
    if spec is None:
        known = ", ".join(sorted(t.name for t in registry)) or "none"
        problems.append(f"{where}: unknown tool {name!r} (known: {known})")
    return spec


def _check_effect(spec: ToolSpec[Any, Any], allowed: set[SideEffect], where: str, problems: list[str]) -> None:
    if spec.effect not in allowed:
        names = ", ".join(sorted(e.value for e in allowed))
        problems.append(f"{where}: tool {spec.name!r} has effect {spec.effect.value!r}, which the policy does not "
                        f"allow (allowed: {names})")


def _check_bindings(
    plan: Plan,
    registry: ToolRegistry,
    inputs: dict[str, Binding],
    spec: ToolSpec[Any, Any],
    where: str,
    problems: list[str],
    *,
    allow_proposal: bool,
) -> None:
    fields = spec.input_model.model_fields
    for name, binding in inputs.items():
        if name not in fields:
            problems.append(f"{where}: tool {spec.name!r} has no input {name!r} (inputs: {', '.join(fields)})")
            continue
        target = fields[name].annotation
        source_type = _source_type(plan, registry, binding, f"{where}.inputs.{name}", problems, allow_proposal)
        if binding.source == "literal":
            try:
                TypeAdapter(target).validate_python(binding.value, strict=True)
            except ValidationError:
                problems.append(f"{where}.inputs.{name}: literal {binding.value!r} is not a valid {_type_name(target)}")
        elif source_type is not None and not _assignable(source_type, target):
            problems.append(
                f"{where}.inputs.{name}: {binding} is {_type_name(source_type)} but {spec.name!r} expects "
                f"{_type_name(target)}"
            )
    for name, info in fields.items():
        if info.is_required() and name not in inputs and name not in ENGINE_SUPPLIED:
            problems.append(f"{where}: required input {name!r} of tool {spec.name!r} is not bound")


def _source_type(
    plan: Plan, registry: ToolRegistry, binding: Binding, where: str, problems: list[str], allow_proposal: bool
) -> Any:
    if binding.source == "record":
        if binding.field not in plan.dataset.columns:
            problems.append(f"{where}: the dataset has no column {binding.field!r}")
            return None
        return str if binding.field == plan.dataset.key else RECORD_FIELD_TYPE
    if binding.source == "step":
        if allow_proposal:  # a write: only validated (and possibly reviewer-edited) values may be written
            problems.append(f"{where}: a write takes proposal.FIELD or record.FIELD, not a step output ({binding})")
            return None
        return _check_step_ref(plan, registry, binding, where, problems)
    if binding.source == "proposal":
        if not allow_proposal:
            problems.append(f"{where}: proposal fields exist only in the commit phase; bind steps.STEP.FIELD")
            return None
        if binding.field not in plan.proposes:
            problems.append(f"{where}: the plan proposes no field {binding.field!r}")
            return None
        return _check_step_ref(plan, registry, plan.proposes[binding.field], where, [])
    return None


def _check_step_ref(plan: Plan, registry: ToolRegistry, binding: Binding, where: str, problems: list[str]) -> Any:
    step = next((s for s in plan.steps if s.id == binding.step), None)
    if step is None:
        problems.append(f"{where}: there is no step {binding.step!r}")
        return None
    spec = registry.get(step.tool)
    if spec is None:
        return None
    outputs = spec.output_model.model_fields
    if binding.field not in outputs:
        problems.append(f"{where}: tool {spec.name!r} of step {step.id!r} has no output {binding.field!r}")
        return None
    return outputs[binding.field].annotation


def _check_fallback(
    plan: Plan, registry: ToolRegistry, step: Step, primary: ToolSpec[Any, Any], problems: list[str]
) -> None:
    where = f"step {step.id!r} fallback"
    fallback = _known_tool(registry, step.fallback or "", where, problems)
    if fallback is None:
        return
    if fallback.policy.phase is Phase.COMMIT:
        problems.append(f"{where}: {fallback.effect.value} tool {fallback.name!r} cannot run outside the commit phase")
    _check_effect(fallback, set(plan.policy.allowed_effects), where, problems)
    fallback_inputs = fallback.input_model.model_fields
    for name, info in fallback_inputs.items():
        if info.is_required() and name not in step.inputs:
            problems.append(f"{where}: required input {name!r} of {fallback.name!r} is not bound by the step")
    for name, binding in step.inputs.items():
        if name not in fallback_inputs or binding.source == "literal":
            continue
        source_type = _source_type(plan, registry, binding, f"{where}.inputs.{name}", [], False)
        if source_type is not None and not _assignable(source_type, fallback_inputs[name].annotation):
            problems.append(f"{where}.inputs.{name}: {binding} is {_type_name(source_type)} but {fallback.name!r} "
                            f"expects {_type_name(fallback_inputs[name].annotation)}")
    used = _outputs_used(plan, step.id)
    outputs = fallback.output_model.model_fields
    missing = sorted(used - set(outputs))
    if missing:
        problems.append(f"{where}: {fallback.name!r} does not produce {', '.join(missing)}, which the plan uses")
    primary_outputs = primary.output_model.model_fields
    for name in sorted(used & set(outputs) & set(primary_outputs)):
        if not _assignable(outputs[name].annotation, primary_outputs[name].annotation):
            problems.append(f"{where}: {fallback.name!r} gives {name!r} as {_type_name(outputs[name].annotation)}, "
                            f"but the plan uses it as {_type_name(primary_outputs[name].annotation)}")


def _outputs_used(plan: Plan, step_id: str) -> set[str]:
    bindings = [b for s in plan.steps for b in s.inputs.values()] + list(plan.proposes.values())
    return {b.field for b in bindings if b.source == "step" and b.step == step_id and b.field}


def _cycles(plan: Plan) -> list[str]:
    graph = {s.id: sorted({b.step for b in s.inputs.values() if b.source == "step" and b.step}) for s in plan.steps}
    state: dict[str, int] = {}
    found: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, []):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt):], nxt] if nxt in path else [node, nxt]
                found.append("steps form a cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    return found


def _members(annotation: Any) -> set[Any] | None:
    """The set of plain types a value of ``annotation`` can have; None means anything."""
    if annotation is Any or annotation is None:
        return None if annotation is Any else {type(None)}
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        out: set[Any] = set()
        for arg in typing.get_args(annotation):
            members = _members(arg)
            if members is None:
                return None
            out |= members
        return out
    if origin is typing.Literal:
        return {type(v) for v in typing.get_args(annotation)}
    if origin is not None:
        return {origin}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {dict}
    return {annotation}


def _assignable(source: Any, target: Any) -> bool:
    src, dst = _members(source), _members(target)
    if src is None or dst is None:
        return True
    widened = dst | ({int} if float in dst else set())
    return src <= widened


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
