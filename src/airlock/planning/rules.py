"""The rules planner: a structured request becomes a plan by chaining tools through
``requires``/``produces``. Deterministic, free, and the fallback of the model planner."""

from __future__ import annotations

from typing import Any

from airlock.errors import PlanRejected
from airlock.plan import Binding, DatasetSpec, Plan, Policy, Step, Write
from airlock.plan_check import ensure_plan_ok
from airlock.playbook import StructuredRequest, WriteRequest
from airlock.registry import ENGINE_SUPPLIED, Phase, ToolRegistry, ToolSpec


class RulesPlanner:
    def plan(
        self, request: StructuredRequest | str, columns: list[str], policy: Policy, registry: ToolRegistry
    ) -> Plan:
        if isinstance(request, str):
            raise PlanRejected(
                ["a free-text request needs a model planner; the rules planner takes a structured "
                 "request (request: {fill: [...], write: {...}})"]
            )
        builder = _ChainBuilder(columns, policy, registry)
        proposes = {field: builder.resolve(field, ()) for field in request.fill}
        writes = [_write_for(write, registry, proposes) for write in request.writes]
        plan = Plan(
            request=request.describe(),
            dataset=DatasetSpec(name=request.dataset, columns=columns),
            steps=builder.steps,
            proposes=proposes,
            writes=writes,
            policy=policy,
        )
        return ensure_plan_ok(plan, registry)


class _ChainBuilder:
    def __init__(self, columns: list[str], policy: Policy, registry: ToolRegistry) -> None:
        self.columns = set(columns)
        self.allowed = set(policy.allowed_effects)
        self.registry = registry
        self.steps: list[Step] = []
        self.producer_step: dict[str, Step] = {}

    def _candidates(self, field: str) -> list[ToolSpec[Any, Any]]:
        return [
            t for t in self.registry.producers_of(field)
            if t.policy.phase is Phase.PROPOSE and t.effect in self.allowed
        ]

    def resolve(self, field: str, chain: tuple[str, ...]) -> Binding:
        """A binding that yields ``field``, adding the steps that compute it."""
        if field in self.producer_step:
            return Binding(source="step", step=self.producer_step[field].id, field=field)
        candidates = self._candidates(field)
        if not candidates:
            raise PlanRejected([f"no available tool produces {field!r}"])
        failures: list[str] = []
        for spec in candidates:
            if spec.name in chain:
                failures.append(f"{spec.name} would depend on itself")
                continue
            saved_steps, saved_producers = list(self.steps), dict(self.producer_step)
            try:
                inputs = self._bind_inputs(spec, (*chain, spec.name))
            except PlanRejected as error:
                # Steps added for this candidate's inputs would run for nothing: take them back.
                self.steps, self.producer_step = saved_steps, saved_producers
                failures.extend(error.problems)
                continue
            step = Step(id=spec.name, tool=spec.name, inputs=inputs, fallback=self._fallback(spec, inputs))
            self.steps.append(step)
            for produced in spec.produces:
                self.producer_step.setdefault(produced, step)
            return Binding(source="step", step=step.id, field=field)
        raise PlanRejected([f"cannot produce {field!r}: " + "; ".join(failures)])

    def _bind_inputs(self, spec: ToolSpec[Any, Any], chain: tuple[str, ...]) -> dict[str, Binding]:
        inputs: dict[str, Binding] = {}
        for name, info in spec.input_model.model_fields.items():
            if name in ENGINE_SUPPLIED:
                continue
            if name in self.columns:  # the raw record value wins: a tool cleaning 'industry' reads the raw one
                inputs[name] = Binding(source="record", field=name)
                continue
            try:
                inputs[name] = self.resolve(name, chain)
            except PlanRejected:
                if info.is_required():
                    raise
        if spec.requires and not set(inputs) & set(spec.requires):
            raise PlanRejected([f"{spec.name}: none of its inputs ({', '.join(spec.requires)}) is available"])
        return inputs

    def _fallback(self, primary: ToolSpec[Any, Any], inputs: dict[str, Binding]) -> str | None:
        for spec in self._candidates(primary.produces[0]):
            if spec.name == primary.name or not set(primary.produces) <= set(spec.produces):
                continue
            needed = {n for n, i in spec.input_model.model_fields.items() if i.is_required()}
            if needed <= set(inputs) and set(spec.input_model.model_fields) <= set(inputs):
                return spec.name
        return None


def _write_for(request: WriteRequest, registry: ToolRegistry, proposes: dict[str, Binding]) -> Write:
    spec = registry.get(request.tool)
    if spec is None:
        raise PlanRejected([f"write: unknown tool {request.tool!r}"])
    fields = spec.input_model.model_fields
    inputs = {request.key: Binding(source="record", field="id")}
    taken = list(proposes) if request.fields is None else request.fields
    not_filled = [name for name in taken if name not in proposes]
    if not_filled:
        raise PlanRejected([f"write {request.id}: {', '.join(not_filled)} is not filled by the request"])
    cannot_take = [name for name in taken if name not in fields]
    if cannot_take:
        raise PlanRejected([f"write: tool {spec.name!r} cannot take {', '.join(cannot_take)}; "
                            "they would be proposed and never written"])
    for name in taken:
        inputs[name] = Binding(source="proposal", field=name)
    unbound = sorted(n for n, i in fields.items() if i.is_required() and n not in inputs and n not in ENGINE_SUPPLIED)
    if unbound:
        raise PlanRejected([f"write: tool {spec.name!r} needs {', '.join(unbound)}, which the request does not fill"])
    return Write(id=request.id, tool=spec.name, target=request.target, inputs=inputs)
