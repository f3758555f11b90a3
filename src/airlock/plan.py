"""The typed ``Plan`` a planner produces and the executor runs, and its content hash.

A plan is fixed before any record content reaches a model: per-record steps are tool calls with
input bindings (a record field, an earlier step's output, a proposal field or a literal), the
writes run only in the commit phase, and the policy says what needs a person. Approvals and
idempotency keys are bound to ``Plan.hash``.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from airlock.registry import SideEffect

IDENT = r"^[a-z][a-z0-9_]*$"


class Binding(BaseModel):
    """Where a tool input comes from. Written in YAML as ``record.phone``,
    ``steps.country.country_code``, ``proposal.domain`` or ``{literal: VALUE}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["record", "step", "proposal", "literal"]
    field: str | None = None
    step: str | None = None
    value: Any = None

    @model_validator(mode="before")
    @classmethod
    def _parse_short_form(cls, data: Any) -> Any:
        if isinstance(data, str):
            parts = data.split(".")
            if len(parts) == 2 and parts[0] in ("record", "proposal"):
                return {"source": parts[0], "field": parts[1]}
            if len(parts) == 3 and parts[0] == "steps":
                return {"source": "step", "step": parts[1], "field": parts[2]}
            raise ValueError(
                f"binding {data!r} must look like record.FIELD, steps.STEP.FIELD, proposal.FIELD or {{literal: VALUE}}"
            )
        if isinstance(data, dict) and set(data) == {"literal"}:
            return {"source": "literal", "value": data["literal"]}
        return data

    @model_serializer
    def _short_form(self) -> Any:
        if self.source == "literal":
            return {"literal": self.value}
        if self.source == "step":
            return f"steps.{self.step}.{self.field}"
        return f"{self.source}.{self.field}"

    def __str__(self) -> str:
        short = self._short_form()
        return short if isinstance(short, str) else f"literal {self.value!r}"


class Step(BaseModel):
    """One per-record tool call in the propose phase."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=IDENT)
    tool: str
    inputs: dict[str, Binding] = Field(default_factory=dict)
    fallback: str | None = Field(default=None, description="tool tried when the primary one is exhausted")
    attempts: int | None = Field(default=None, ge=1, le=10, description="overrides the effect's retry attempts")


class Write(BaseModel):
    """A commit-phase write of a passed or approved proposal to a business system."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=IDENT)
    tool: str
    target: str = Field(description="the business system written to; part of the idempotency key")
    inputs: dict[str, Binding] = Field(default_factory=dict)


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    key: str = "id"
    columns: list[str]


_LATER_POLICY_FIELDS = ("budget_tokens", "budget_usd")


class Policy(BaseModel):
    """What needs a person. Fields added later must stay optional so older playbooks keep working."""

    model_config = ConfigDict(extra="forbid")

    thresholds: dict[str, float] = Field(default_factory=dict, description="proposal field -> minimum confidence")
    review_on: list[str] = Field(default_factory=list, description="tool flags that send a record to review")
    reject_on: list[str] = Field(default_factory=list, description="tool flags that reject a record")
    allowed_effects: list[SideEffect] = Field(
        default_factory=lambda: [SideEffect.NONE, SideEffect.READ, SideEffect.WRITE]
    )
    approvals: list[str] = Field(default_factory=list, description="write ids that need a named approver per record")
    four_eyes: bool = False
    chunk_size: int | None = Field(default=None, ge=1)
    review_timeout_seconds: float = Field(default=0, ge=0)
    budget_tokens: int | None = Field(default=None, ge=0, description="per-run cap on model tokens (in+out)")
    budget_usd: float | None = Field(default=None, ge=0, description="per-run cap on model spend, USD")

    @model_serializer(mode="wrap")
    def _omit_unset_later_fields(self, handler: Any) -> Any:
        # Fields added after plans were first pinned are left out while unset, so the canonical form
        # (and the hash) of every older plan stays what it was.
        data = handler(self)
        for name in _LATER_POLICY_FIELDS:
            if isinstance(data, dict) and data.get(name) is None:
                data.pop(name, None)
        return data


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    request: str = Field(description="what was asked, in words, for the audit trail and reviewers")
    dataset: DatasetSpec
    steps: list[Step]
    proposes: dict[str, Binding] = Field(description="the fields a run fills: proposal field -> step output")
    writes: list[Write] = Field(default_factory=list)
    policy: Policy = Field(default_factory=Policy)

    @cached_property
    def hash(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:20]

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def execution_order(self) -> list[Step]:
        """Steps in dependency order (plans are checked acyclic before this is called)."""
        by_id = {s.id: s for s in self.steps}
        done: list[Step] = []
        seen: set[str] = set()

        def visit(step: Step) -> None:
            if step.id in seen:
                return
            seen.add(step.id)
            for binding in step.inputs.values():
                if binding.source == "step" and binding.step in by_id:
                    visit(by_id[binding.step])
            done.append(step)

        for step in self.steps:
            visit(step)
        return done
