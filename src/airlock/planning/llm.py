"""The model planner: the request becomes a plan the model proposes and ``check_plan`` accepts.

Every answer is held to the plan schema and checked against the registry before anything runs. On
rejection the problems go back to the model for a bounded number of repairs; then a structured
request falls back to the rules planner; otherwise the request is refused with the conversation kept
as a planning dead letter. A request asking for something no tool does gets a plan of what is
possible and a note of what is not, never a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from airlock.errors import ModelError, PlanRejected
from airlock.llm.client import ModelClient
from airlock.llm.types import AnswerTool, Message, ModelRequest, ModelResponse, Usage
from airlock.plan import DatasetSpec, Plan, Policy
from airlock.plan_check import check_plan
from airlock.planning.prompt import (
    ANSWER_TOOL,
    PlanAnswer,
    answer_schema,
    catalog_text,
    repair_prompt,
    user_prompt,
)
from airlock.planning.rules import RulesPlanner
from airlock.playbook import StructuredRequest
from airlock.registry import ToolRegistry
from airlock.retry import RetryPolicy

Status = Literal["accepted", "repaired", "fallback_rules", "refused", "dead_letter"]
SYSTEM = "You are a careful planner. You answer only by calling submit_plan."


@dataclass
class PlanOutcome:
    """What planning did, kept in the store whatever happened (the audit trail of the planner)."""

    request: str
    status: Status
    planner: str
    plan: Plan | None = None
    problems: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    conversation: list[dict[str, str]] = field(default_factory=list)
    answers: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0

    def explain(self) -> str:
        """One paragraph a person can read: what was planned and what could not be."""
        parts = []
        if self.plan is not None:
            parts.append(f"plan {self.plan.hash} ({self.status}, {len(self.plan.steps)} steps, fills "
                         f"{', '.join(self.plan.proposes)})")
        if self.unsupported:
            parts.append("not possible with the registered tools: " + "; ".join(self.unsupported))
        if self.plan is None and self.problems:
            parts.append("last problems: " + "; ".join(self.problems[:5]))
        return ". ".join(parts)


class LLMPlanner:
    def __init__(self, client: ModelClient, *, repairs: int = 2, retry: RetryPolicy | None = None,
                 fallback: RulesPlanner | None = None) -> None:
        self.client = client
        self.repairs = repairs
        self.retry = retry or RetryPolicy(attempts=3, base_delay=0.5, max_delay=30.0)
        self.fallback = fallback or RulesPlanner()

    def plan(self, request: StructuredRequest | str, columns: list[str], policy: Policy, registry: ToolRegistry,
             *, samples: Sequence[dict[str, Any]] = (), dataset: str | None = None) -> Plan:
        outcome = self.plan_outcome(request, columns, policy, registry, samples=samples, dataset=dataset)
        if outcome.plan is None:
            raise PlanRejected([outcome.explain()])
        return outcome.plan

    def plan_outcome(self, request: StructuredRequest | str, columns: list[str], policy: Policy,
                     registry: ToolRegistry, *, samples: Sequence[dict[str, Any]] = (),
                     key: str = "id", dataset: str | None = None) -> PlanOutcome:
        """``dataset`` names the data of a request in words (a structured request names its own)."""
        text = request.describe() if isinstance(request, StructuredRequest) else request
        dataset = request.dataset if isinstance(request, StructuredRequest) else (dataset or "records")
        outcome = PlanOutcome(request=text, status="dead_letter", planner=self.client.name)
        messages = [Message("user", user_prompt(request, columns, key, samples, policy))]
        model_request = ModelRequest(
            system=SYSTEM, cached_context=catalog_text(registry), messages=messages,
            answer_tool=AnswerTool(ANSWER_TOOL, "Submit the plan (it is checked, never run by you).",
                                   answer_schema()),
            max_tokens=self.client.max_tokens,
        )
        for attempt in range(self.repairs + 1):
            if attempt:
                model_request = ModelRequest(model_request.system, model_request.cached_context, list(messages),
                                             model_request.answer_tool, model_request.max_tokens)
            try:
                response = self.client.complete(model_request, purpose="plan", retry=self.retry)
            except ModelError as error:  # the provider is down or the budget is spent: no more answers
                outcome.problems = [f"model unavailable: {error.message}"]
                break
            outcome.answers += 1
            outcome.usage.add(response.usage)
            outcome.cost_usd += self.client.prices.cost(response.model, response.usage)
            messages.append(Message("assistant", response.describe()))
            outcome.conversation = [{"role": m.role, "content": m.content} for m in messages]
            plan, problems, unsupported = read_answer(response, text, dataset, columns, key, policy, registry)
            outcome.unsupported = unsupported
            if plan is not None and not problems:
                outcome.plan = plan
                outcome.status = "accepted" if attempt == 0 else "repaired"
                outcome.problems = []
                return outcome
            if not problems:  # nothing wrong, and nothing possible: the model says no tool can do it
                outcome.status = "refused"
                outcome.problems = ["no registered tool can do any part of this request"]
                return outcome
            outcome.problems = problems
            if attempt < self.repairs:  # the conversation holds what the model was actually sent
                messages.append(Message("user", repair_prompt(problems)))
        outcome.conversation = [{"role": m.role, "content": m.content} for m in messages]
        if isinstance(request, StructuredRequest):
            try:
                outcome.plan = self.fallback.plan(request, columns, policy, registry)
            except PlanRejected as error:
                outcome.problems += [f"rules planner: {p}" for p in error.problems]
                return outcome
            outcome.status = "fallback_rules"
        return outcome


def read_answer(response: ModelResponse, request: str, dataset: str, columns: list[str], key: str, policy: Policy,
                registry: ToolRegistry) -> tuple[Plan | None, list[str], list[str]]:
    """(the plan, problems, unsupported notes) of one answer. Problems are sentences for the model."""
    calls = response.tool_calls
    if not calls:
        return None, [f"no plan: the answer was text, not a call of {ANSWER_TOOL}"], []
    others = sorted({c.name for c in calls if c.name != ANSWER_TOOL})
    if others:
        return None, [f"the answer called {', '.join(others)}; you cannot call tools, only {ANSWER_TOOL} "
                      "with a plan"], []
    if len(calls) > 1:
        return None, [f"{ANSWER_TOOL} was called {len(calls)} times; call it once"], []
    call = calls[0]
    if call.arguments is None:
        return None, [f"the {ANSWER_TOOL} arguments are not a JSON object (truncated or malformed): "
                      f"{call.raw[:200]!r}"], []
    try:
        answer = PlanAnswer.model_validate(call.arguments)
    except ValidationError as error:
        return None, [_problem(e) for e in error.errors()[:10]], []
    if not answer.steps and not answer.proposes:
        if answer.unsupported:
            return None, [], answer.unsupported
        return None, ["the plan is empty: it has no steps and proposes nothing"], []
    # Thresholds of fields this plan does not fill would be rejected; the rest of the policy is ours.
    kept = {name: value for name, value in policy.thresholds.items() if name in answer.proposes}
    try:
        plan = Plan(request=request, dataset=DatasetSpec(name=dataset, key=key, columns=columns),
                    steps=answer.steps, proposes=answer.proposes, writes=answer.writes,
                    policy=policy.model_copy(update={"thresholds": kept}))
    except ValidationError as error:
        return None, [_problem(e) for e in error.errors()[:10]], answer.unsupported
    return plan, check_plan(plan, registry), answer.unsupported


def _problem(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "plan"
    message = "unknown field (not in the plan schema)" if error["type"] == "extra_forbidden" else error["msg"]
    return f"{where}: {message}"


class ConversationLog(Protocol):
    def save_plan_conversation(self, *, actor: str, request: str, planner: str, status: str,
                               plan_hash: str | None, problems: list[str], unsupported: list[str],
                               conversation: list[dict[str, str]], tokens: int, cost_usd: float) -> int: ...


def plan_and_record(planner: LLMPlanner, log: ConversationLog, actor: str, request: StructuredRequest | str,
                    columns: list[str], policy: Policy, registry: ToolRegistry,
                    samples: Sequence[dict[str, Any]] = (), dataset: str | None = None) -> tuple[PlanOutcome, int]:
    """Plan, keep the conversation (whatever happened), and refuse clearly when there is no plan: the
    kept conversation is then the planning dead letter."""
    outcome = planner.plan_outcome(request, columns, policy, registry, samples=samples, dataset=dataset)
    conversation_id = log.save_plan_conversation(
        actor=actor, request=outcome.request, planner=outcome.planner, status=outcome.status,
        plan_hash=outcome.plan.hash if outcome.plan else None, problems=outcome.problems,
        unsupported=outcome.unsupported, conversation=outcome.conversation, tokens=outcome.usage.total,
        cost_usd=round(outcome.cost_usd, 8),
    )
    if outcome.plan is None:
        raise PlanRejected([f"{outcome.explain()} (the planning conversation is kept as planning dead letter "
                            f"{conversation_id}: airlock plan --show {conversation_id})"])
    return outcome, conversation_id
