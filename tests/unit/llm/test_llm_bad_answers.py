"""A corpus of bad planner answers. Each is rejected before anything runs; with a good answer after
it, the plan is repaired; with nothing better, a free-text request is refused and a structured one
falls back to the rules planner. No tool runs at planning time, whatever the answer names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airlock.errors import PlanRejected
from airlock.plan import Policy
from airlock.plan_check import check_plan
from airlock.planning.llm import LLMPlanner
from airlock.playbook import StructuredRequest, WriteRequest
from tests.fakes.model_stub import ModelStub, Reply, tool_answer
from tests.unit.llm.conftest import client_for
from tests.unit.llm.planning_helpers import COLUMNS, FREE_TEXT, SENTINEL_CALLS, good, registry_with


def _with(change: Any) -> dict[str, Any]:
    answer = good()
    change(answer)
    return answer


def _step(**step: Any) -> Any:
    return lambda a: a["steps"].append(step)


BAD: dict[str, Reply] = {
    "unknown tool": tool_answer("submit_plan", _with(_step(id="ticket", tool="create_ticket",
                                                           inputs={"email": "record.email"}))),
    "wrong literal type": tool_answer("submit_plan", _with(
        lambda a: a["steps"][0].update(inputs={"country": {"literal": 49}}))),
    "model sets its own policy": tool_answer("submit_plan", _with(
        lambda a: a.update(policy={"allowed_effects": ["none", "read", "write", "external"]}))),
    "extra field in a step": tool_answer("submit_plan", _with(lambda a: a["steps"][0].update(retries=9))),
    "cycle": tool_answer("submit_plan", _with(lambda a: a["steps"][0].update(
        inputs={"country": "steps.phone.phone_e164"}))),
    "write before the gate": tool_answer("submit_plan", _with(_step(
        id="early_write", tool="crm_update_accounts",
        inputs={"account_id": "record.id", "industry": "steps.industry.industry"}))),
    "external effect without approval": tool_answer("submit_plan", _with(lambda a: a["writes"].append(
        {"id": "mail", "tool": "send_email", "target": "mail", "inputs": {"email": "record.email"}}))),
    "truncated json": tool_answer("submit_plan", '{"steps": [{"id": "country", "tool": "normalize_country", "inp'),
    "prose instead of a plan": Reply(text="To do this I would first normalise the phone numbers, then..."),
    "unknown column": tool_answer("submit_plan", _with(
        lambda a: a["steps"][0].update(inputs={"country": "record.vat_number"}))),
    "unknown step output": tool_answer("submit_plan", _with(
        lambda a: a["steps"][1]["inputs"].update(country_code="steps.country.iso"))),
    "proposal straight from the record": tool_answer("submit_plan", _with(
        lambda a: a["proposes"].update(industry="record.industry"))),
    "write takes a step output": tool_answer("submit_plan", _with(
        lambda a: a["writes"][0]["inputs"].update(industry="steps.industry.industry"))),
    "duplicate step ids": tool_answer("submit_plan", _with(_step(
        id="country", tool="normalize_country", inputs={"country": "record.country"}))),
    "bad step id": tool_answer("submit_plan", _with(lambda a: a["steps"][0].update(id="Normalize Country!"))),
    "binds the idempotency key": tool_answer("submit_plan", _with(
        lambda a: a["writes"][0]["inputs"].update(idempotency_key={"literal": "k1"}))),
    "two plans": Reply(tool_calls=[("submit_plan", good()), ("submit_plan", good())]),
    "calls a business tool directly": Reply(tool_calls=[
        ("submit_plan", good()), ("crm_update_accounts", {"account_id": "A1", "industry": "Software"})]),
    "calls an external tool directly": Reply(tool_calls=[("send_email", {"email": "ceo@example.com"})]),
    "arguments are a list": tool_answer("submit_plan", "[1, 2, 3]"),
    "empty plan": tool_answer("submit_plan", {"steps": [], "proposes": {}}),
    "fallback with other outputs": tool_answer("submit_plan", _with(
        lambda a: a["steps"][0].update(fallback="check_email"))),
    "malformed binding": tool_answer("submit_plan", _with(
        lambda a: a["steps"][0].update(inputs={"country": "record"}))),
    "proposal field in a step": tool_answer("submit_plan", _with(
        lambda a: a["steps"][0].update(inputs={"country": "proposal.country_code"}))),
    "input the tool does not have": tool_answer("submit_plan", _with(
        lambda a: a["steps"][0].update(inputs={"land": "record.country"}))),
    "steps is not a list": tool_answer("submit_plan", _with(lambda a: a.update(steps={"id": "country"}))),
}
WIRE = {name: ("anthropic", "openai")[n % 2] for n, name in enumerate(BAD)}


def test_the_corpus_is_large_enough() -> None:
    assert len(BAD) >= 20


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_answer_is_repaired(name: str, stub: ModelStub, tmp_path: Path) -> None:
    client = client_for(WIRE[name], stub)
    registry = registry_with(client, tmp_path)
    SENTINEL_CALLS.clear()
    stub.add(BAD[name], tool_answer("submit_plan", good()))
    outcome = LLMPlanner(client).plan_outcome(FREE_TEXT, COLUMNS, Policy(), registry)
    assert outcome.status == "repaired", outcome.problems
    assert outcome.plan is not None and check_plan(outcome.plan, registry) == []
    assert "send_email" not in {s.tool for s in outcome.plan.steps} | {w.tool for w in outcome.plan.writes}
    assert stub.seen[1].text().count("rejected before anything ran") == 1  # the problems went back
    assert SENTINEL_CALLS == []


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_answer_that_persists_is_refused_never_run(name: str, stub: ModelStub, tmp_path: Path) -> None:
    client = client_for(WIRE[name], stub)
    registry = registry_with(client, tmp_path)
    SENTINEL_CALLS.clear()
    stub.add(BAD[name], BAD[name], BAD[name])
    with pytest.raises(PlanRejected) as caught:
        LLMPlanner(client, repairs=2).plan(FREE_TEXT, COLUMNS, Policy(), registry)
    assert caught.value.problems and caught.value.problems[0]
    assert SENTINEL_CALLS == []


def test_a_bad_answer_to_a_structured_request_routes_to_the_rules_planner(stub: ModelStub, tmp_path: Path) -> None:
    client = client_for("openai", stub)
    registry = registry_with(client, tmp_path)
    request = StructuredRequest(fill=["phone_e164"], write=WriteRequest(tool="crm_update_accounts", target="crm"))
    stub.add(*[BAD["external effect without approval"]] * 3)
    outcome = LLMPlanner(client).plan_outcome(request, COLUMNS, Policy(), registry)
    assert outcome.status == "fallback_rules"
    assert outcome.plan is not None and [w.tool for w in outcome.plan.writes] == ["crm_update_accounts"]
