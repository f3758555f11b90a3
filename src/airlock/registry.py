"""The tool registry: typed tools with declared side effects, and the one place policy comes from.

A tool is a function with one pydantic input model and one output model (both ``extra="forbid"``),
a description the planner reads, the record fields it ``requires`` and ``produces``, and a declared
``SideEffect``. ``policy_for`` turns the effect into retries, caching and review gating; nothing
else in Airlock decides those things.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from airlock.errors import ToolInputError, ToolOutputError
from airlock.retry import NO_RETRY, RetryPolicy

I = TypeVar("I", bound=BaseModel)  # noqa: E741 - conventional generic names
O = TypeVar("O", bound=BaseModel)  # noqa: E741

# Output fields with a meaning to the engine rather than to the record.
CONFIDENCE_FIELD = "confidence"
FLAGS_FIELD = "flags"
IDEMPOTENCY_FIELD = "idempotency_key"
# Filled in by the engine at commit time: never a record field, never bound by a plan.
ENGINE_SUPPLIED = frozenset({IDEMPOTENCY_FIELD, "values_hash"})


class SideEffect(StrEnum):
    NONE = "none"
    READ = "read"
    WRITE = "write"
    EXTERNAL = "external"


class Phase(StrEnum):
    PROPOSE = "propose"
    COMMIT = "commit"


@dataclass(frozen=True)
class EffectPolicy:
    """What the executor may do with a tool, derived from its side effect alone."""

    retry: RetryPolicy
    cacheable: bool
    phase: Phase
    needs_identified_approval: bool
    # Prefect-level retries of a whole chunk task after an infrastructure failure.
    task_retries: int
    task_retry_delay_seconds: float


def policy_for(effect: SideEffect) -> EffectPolicy:
    """The single mapping from declared side effect to executor policy (DESIGN.md §3)."""
    if effect is SideEffect.NONE:
        return EffectPolicy(RetryPolicy(attempts=2, base_delay=0.0), True, Phase.PROPOSE, False, 2, 0.5)
    if effect is SideEffect.READ:
        return EffectPolicy(
            RetryPolicy(attempts=4, base_delay=0.05, max_delay=5.0, jitter=True, honour_retry_after=True),
            False, Phase.PROPOSE, False, 2, 1.0,
        )
    if effect is SideEffect.WRITE:
        # Retried with the SAME idempotency key, so a retry can never apply twice.
        return EffectPolicy(
            RetryPolicy(attempts=4, base_delay=0.1, max_delay=10.0, jitter=True, honour_retry_after=True),
            False, Phase.COMMIT, False, 3, 2.0,
        )
    # External effects are irreversible: never retried blindly, each needs a named approver.
    return EffectPolicy(NO_RETRY, False, Phase.COMMIT, True, 0, 0.0)


@dataclass(frozen=True)
class ToolSpec(Generic[I, O]):
    name: str
    version: str
    description: str
    effect: SideEffect
    input_model: type[I]
    output_model: type[O]
    requires: tuple[str, ...]
    produces: tuple[str, ...]
    fn: Callable[..., Any] = field(repr=False, compare=False)
    batched: bool = False
    # Records per call of a batched propose-phase tool (a model call classifying many records).
    batch_size: int | None = None
    # A write tool's own test of the records it acts on, from the values it would be sent (without
    # the engine-supplied key and hash): the ledger neither keys, records nor sends the others. A
    # write that touches few records (a ticket for broken contacts) then costs nothing for the rest.
    acts_on: Callable[[dict[str, Any]], bool] | None = field(default=None, repr=False, compare=False)

    @cached_property
    def policy(self) -> EffectPolicy:
        return policy_for(self.effect)

    @cached_property
    def spec_hash(self) -> str:
        """Stable over name, version, description, schemas and the implementation's source."""
        module = inspect.getmodule(self.fn)
        try:
            source = inspect.getsource(module) if module is not None else inspect.getsource(self.fn)
        except (OSError, TypeError):
            source = getattr(self.fn, "__qualname__", self.name)
        body = {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "effect": self.effect.value,
            "input": self.input_model.model_json_schema(),
            "output": self.output_model.model_json_schema(),
            "requires": list(self.requires),
            "produces": list(self.produces),
            "source": hashlib.sha256(source.encode()).hexdigest(),
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    @cached_property
    def _validate_input(self) -> Callable[[Any], I]:
        # The model's own validator: ``model_validate`` without its Python wrapper, a third less per
        # call, and this runs once per record of every step.
        return self.input_model.__pydantic_validator__.validate_python

    def validate_input(self, payload: dict[str, Any]) -> I:
        try:
            return self._validate_input(payload)
        except ValidationError as error:
            raise ToolInputError(f"{self.name}: input does not match its schema: {_short(error)}") from error

    def validate_output(self, value: Any) -> O:
        if isinstance(value, self.output_model):
            return value
        try:
            return self.output_model.model_validate(value)
        except ValidationError as error:
            raise ToolOutputError(f"{self.name}: output breaks its contract: {_short(error)}") from error

    @staticmethod
    def dump_output(output: BaseModel) -> dict[str, Any]:
        """An output as JSON values: ``model_dump(mode="json")`` through the model's own serializer,
        without the wrapper (half the cost, once per record of every step)."""
        dumped: dict[str, Any] = output.__pydantic_serializer__.to_python(output, mode="json")
        return dumped

    def call(self, payload: dict[str, Any]) -> O:
        """One record: validate the input, run the tool, hold the output to its contract."""
        if self.batched:
            return self.call_batch([payload])[0]
        return self.validate_output(self.fn(self.validate_input(payload)))

    def call_batch(self, payloads: Sequence[dict[str, Any]]) -> list[O]:
        inputs = [self.validate_input(p) for p in payloads]
        if not self.batched:
            return [self.validate_output(self.fn(i)) for i in inputs]
        outputs = list(self.fn(inputs))
        if len(outputs) != len(inputs):
            raise ToolOutputError(f"{self.name}: returned {len(outputs)} results for {len(inputs)} inputs")
        return [self.validate_output(o) for o in outputs]

    def catalog_entry(self) -> dict[str, Any]:
        """What a planner is told about the tool."""
        return {
            "name": self.name,
            "description": self.description,
            "effect": self.effect.value,
            "requires": list(self.requires),
            "produces": list(self.produces),
            "input_schema": self.input_model.model_json_schema(),
            "output_schema": self.output_model.model_json_schema(),
        }


def _short(error: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in error.errors()[:3]]
    more = f" (+{error.error_count() - 3} more)" if error.error_count() > 3 else ""
    return "; ".join(parts) + more


def _require_forbid(model: type[BaseModel], role: str, tool_name: str) -> None:
    if model.model_config.get("extra") != "forbid":
        raise TypeError(f"tool {tool_name}: its {role} model {model.__name__} must set extra='forbid'")


def _models_of(fn: Callable[..., Any], batched: bool) -> tuple[type[BaseModel], type[BaseModel]]:
    hints = typing.get_type_hints(fn)
    params = [p for p in inspect.signature(fn).parameters if p != "return"]
    if len(params) != 1 or "return" not in hints:
        raise TypeError(f"tool {fn.__name__} must take one annotated argument and annotate its return")
    arg, ret = hints[params[0]], hints["return"]
    if batched:
        arg_items, ret_items = typing.get_args(arg), typing.get_args(ret)
        if typing.get_origin(arg) is not list or typing.get_origin(ret) is not list or not arg_items or not ret_items:
            raise TypeError(f"batched tool {fn.__name__} must take list[Input] and return list[Output]")
        arg, ret = arg_items[0], ret_items[0]
    models = (arg, ret)
    if not all(isinstance(m, type) and issubclass(m, BaseModel) for m in models):
        raise TypeError(f"tool {fn.__name__}: input and output must be pydantic models")
    return arg, ret


def tool(
    *,
    effect: SideEffect,
    name: str | None = None,
    version: str = "1",
    description: str | None = None,
    requires: Sequence[str] | None = None,
    produces: Sequence[str] | None = None,
    batched: bool = False,
    batch_size: int | None = None,
    acts_on: Callable[[dict[str, Any]], bool] | None = None,
) -> Callable[[Callable[..., Any]], ToolSpec[Any, Any]]:
    """Declare a tool. ``requires`` defaults to the input model's fields, ``produces`` to the
    output's (less ``confidence`` and ``flags``, which speak about the values rather than being one).
    A batched tool takes ``list[Input]`` and returns ``list[Output]`` of the same length. A write
    tool may say which records it ``acts_on`` (see ``ToolSpec.acts_on``); it must still answer
    ``unchanged`` for the others when it is called with them directly."""

    def decorate(fn: Callable[..., Any]) -> ToolSpec[Any, Any]:
        tool_name = name or fn.__name__
        input_model, output_model = _models_of(fn, batched)
        _require_forbid(input_model, "input", tool_name)
        _require_forbid(output_model, "output", tool_name)
        commits = policy_for(effect).phase is Phase.COMMIT  # a write or external tool
        if commits and IDEMPOTENCY_FIELD not in input_model.model_fields:
            raise TypeError(f"tool {tool_name}: a {effect.value} tool's input needs an '{IDEMPOTENCY_FIELD}' field")
        if acts_on is not None and not commits:
            raise TypeError(f"tool {tool_name}: only a write or external tool can say which records it acts on")
        req = tuple(requires) if requires is not None else tuple(
            f for f in input_model.model_fields if f not in ENGINE_SUPPLIED
        )
        prod = tuple(produces) if produces is not None else tuple(
            f for f in output_model.model_fields if f not in (CONFIDENCE_FIELD, FLAGS_FIELD)
        )
        doc = description or inspect.getdoc(fn) or ""
        if not doc:
            raise TypeError(f"tool {tool_name} needs a description (docstring): the planner reads it")
        return ToolSpec(tool_name, version, doc, effect, input_model, output_model, req, prod, fn, batched, batch_size,
                        acts_on)

    return decorate


class ToolRegistry:
    """The tools one organisation's flows may use, by name."""

    def __init__(self, tools: Sequence[ToolSpec[Any, Any]] = ()) -> None:
        self._tools: dict[str, ToolSpec[Any, Any]] = {}
        for spec in tools:
            self.register(spec)

    def register(self, spec: ToolSpec[Any, Any]) -> ToolSpec[Any, Any]:
        if spec.name in self._tools:
            raise ValueError(f"tool {spec.name!r} is registered twice")
        self._tools[spec.name] = spec
        return spec

    def get(self, name: str) -> ToolSpec[Any, Any] | None:
        return self._tools.get(name)

    def __getitem__(self, name: str) -> ToolSpec[Any, Any]:
        return self._tools[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[ToolSpec[Any, Any]]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def producers_of(self, output_field: str) -> list[ToolSpec[Any, Any]]:
        return [t for t in self._tools.values() if output_field in t.produces]

    def spec_hashes(self) -> dict[str, str]:
        return {name: spec.spec_hash for name, spec in self._tools.items()}

    def catalog(self) -> list[dict[str, Any]]:
        return [spec.catalog_entry() for spec in self._tools.values()]
