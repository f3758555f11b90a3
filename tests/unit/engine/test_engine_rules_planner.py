"""The rules planner: chaining tools through requires/produces, and the shipped playbook's plan."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from airlock.errors import PlanRejected
from airlock.plan import Binding, Plan, Policy
from airlock.plan_check import check_plan
from airlock.planning.rules import RulesPlanner
from airlock.playbook import StructuredRequest, WriteRequest, load_playbook
from airlock.registry import SideEffect, ToolRegistry, tool
from tools import build_registry

ACCOUNT_COLUMNS = ["id", "name", "website", "email", "phone", "country", "city", "employees", "industry",
                   "description"]


def plan_for(registry: ToolRegistry, fill: list[str], columns: list[str], policy: Policy | None = None,
             write: WriteRequest | None = None) -> Plan:
    return RulesPlanner().plan(StructuredRequest(fill=fill, write=write), columns, policy or Policy(), registry)


def test_a_chain_brings_in_the_producer_of_a_missing_input(registry: ToolRegistry) -> None:
    plan = plan_for(registry, ["phone_e164"], ["id", "phone", "country"])
    assert [s.id for s in plan.steps] == ["clean_country", "format_phone"]
    phone = plan.step("format_phone")
    assert phone.inputs == {"phone": Binding(source="record", field="phone"),
                            "country_code": Binding(source="step", step="clean_country", field="country_code")}
    assert plan.step("clean_country").inputs == {"country": Binding(source="record", field="country")}
    assert plan.proposes == {"phone_e164": Binding(source="step", step="format_phone", field="phone_e164")}
    assert [s.id for s in plan.execution_order()] == ["clean_country", "format_phone"]
    assert check_plan(plan, registry) == []


def test_a_column_is_used_instead_of_a_tool_when_the_record_has_it(registry: ToolRegistry) -> None:
    plan = plan_for(registry, ["phone_e164"], ["id", "phone", "country_code"])
    assert [s.id for s in plan.steps] == ["format_phone"]
    assert plan.step("format_phone").inputs["country_code"] == Binding(source="record", field="country_code")


def test_a_second_producer_becomes_the_fallback(registry: ToolRegistry) -> None:
    plan = plan_for(registry, ["country_code"], ["id", "country"])
    step = plan.step("clean_country")
    assert step.tool == "clean_country" and step.fallback == "country_lookup"


def test_no_fallback_when_the_policy_forbids_the_second_producer(registry: ToolRegistry) -> None:
    plan = plan_for(registry, ["country_code"], ["id", "country"], Policy(allowed_effects=[SideEffect.NONE]))
    assert plan.step("clean_country").fallback is None


def test_a_producer_the_policy_forbids_is_not_used(registry: ToolRegistry) -> None:
    with pytest.raises(PlanRejected, match="no available tool produces 'country_code'"):
        plan_for(registry, ["country_code"], ["id", "country"], Policy(allowed_effects=[SideEffect.WRITE]))


def test_a_field_no_tool_produces_is_refused(registry: ToolRegistry) -> None:
    with pytest.raises(PlanRejected) as raised:
        plan_for(registry, ["revenue"], ["id", "name"])
    assert raised.value.problems == ["no available tool produces 'revenue'"]


def test_a_required_input_nothing_provides_is_explained(registry: ToolRegistry) -> None:
    with pytest.raises(PlanRejected, match="cannot produce 'doubled': no available tool produces 'amount'"):
        plan_for(registry, ["doubled"], ["id", "name"])


def test_free_text_is_refused_with_a_pointer_to_the_model_planner(registry: ToolRegistry) -> None:
    with pytest.raises(PlanRejected, match="a free-text request needs a model planner"):
        RulesPlanner().plan("fill in whatever is missing", ["id"], Policy(), registry)


def test_the_write_binds_the_key_and_the_proposals(registry: ToolRegistry) -> None:
    plan = plan_for(registry, ["country_code", "phone_e164"], ["id", "phone", "country"],
                    write=WriteRequest(tool="crm_write", target="crm", id="crm"))
    [write] = plan.writes
    assert (write.id, write.tool, write.target) == ("crm", "crm_write", "crm")
    assert write.inputs == {
        "account_id": Binding(source="record", field="id"),
        "country_code": Binding(source="proposal", field="country_code"),
        "phone_e164": Binding(source="proposal", field="phone_e164"),
    }
    assert plan.request == "fill country_code, phone_e164 for accounts and write them to crm"


def test_an_unknown_write_tool_is_refused(registry: ToolRegistry) -> None:
    with pytest.raises(PlanRejected, match="write: unknown tool 'nope'"):
        plan_for(registry, ["country_code"], ["id", "country"], write=WriteRequest(tool="nope", target="crm"))


def test_a_planned_external_write_still_goes_through_check_plan(registry: ToolRegistry) -> None:
    with pytest.raises(PlanRejected, match="needs a named approver per record"):
        plan_for(registry, ["country_code"], ["id", "country"],
                 Policy(allowed_effects=list(SideEffect)),
                 write=WriteRequest(tool="send_email", target="mail"))


# -- the shipped playbook against the real registry ---------------------------------------------------

@pytest.fixture
def real_registry(project_dir: Path, tmp_path: Path) -> ToolRegistry:
    return build_registry(project_dir, f"sqlite:///{tmp_path / 'crm.db'}")


def test_the_enrich_accounts_playbook_plans_and_passes_the_check(project_dir: Path, real_registry: ToolRegistry,
                                                                 tmp_path: Path) -> None:
    playbook = load_playbook(project_dir / "playbooks" / "enrich_accounts.yaml")
    assert isinstance(playbook.request, StructuredRequest)
    plan = RulesPlanner().plan(playbook.request, ACCOUNT_COLUMNS, playbook.effective_policy, real_registry)
    assert check_plan(plan, real_registry) == []
    assert set(plan.proposes) == set(playbook.request.fill)
    assert plan.policy == playbook.effective_policy

    again = RulesPlanner().plan(playbook.request, ACCOUNT_COLUMNS, playbook.effective_policy,
                                build_registry(project_dir, f"sqlite:///{tmp_path / 'crm.db'}"))
    assert again.hash == plan.hash
    assert again.model_dump(mode="json") == plan.model_dump(mode="json")

    order = [s.id for s in plan.execution_order()]
    assert sorted(order) == sorted(s.id for s in plan.steps)
    for step in plan.steps:
        for binding in step.inputs.values():
            if binding.source == "step":
                assert order.index(binding.step or "") < order.index(step.id), (binding, step.id)
    assert order.index("normalize_country") < order.index("normalize_phone")

    write, ticket = plan.writes  # a multi-system update: the CRM first, then the ticketing service
    assert write.tool == "crm_update_accounts" and write.target == "crm"
    assert write.inputs["account_id"] == Binding(source="record", field="id")
    assert "idempotency_key" not in write.inputs and "values_hash" not in write.inputs
    assert ticket.tool == "tickets_open" and ticket.target == "tickets"
    assert set(ticket.inputs) == {"account_id", "email_status", "phone_e164"}
    for step in plan.steps:
        assert real_registry[step.tool].effect in (SideEffect.NONE, SideEffect.READ)


# -- planner gaps --------------------------------------------------------------------------------------

class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NameIn(Strict):
    name: str | None = None


class PairIn(Strict):
    left: str | None = None
    right: str


class LeftOut(Strict):
    left: str | None = None


class ScoreOut(Strict):
    score: float = 0.0


class FirmOut(Strict):
    size: int | None = None
    sector: str | None = None


class SizeOut(Strict):
    size: int | None = None


@tool(effect=SideEffect.NONE)
def score_from_pair(data: PairIn) -> ScoreOut:
    """A score from two values."""
    return ScoreOut(score=1.0)


@tool(effect=SideEffect.NONE)
def make_left(data: NameIn) -> LeftOut:
    """The left value from a name."""
    return LeftOut(left=data.name)


@tool(effect=SideEffect.NONE)
def score_from_name(data: NameIn) -> ScoreOut:
    """A score from a name."""
    return ScoreOut(score=0.5)


@tool(effect=SideEffect.NONE)
def firmographics(data: NameIn) -> FirmOut:
    """Company size and sector from its name."""
    return FirmOut(size=10, sector="Software")


@tool(effect=SideEffect.NONE)
def size_guess(data: NameIn) -> SizeOut:
    """Company size guessed from its name."""
    return SizeOut(size=10)


def test_a_rejected_candidate_leaves_no_orphan_steps() -> None:
    registry = ToolRegistry([score_from_pair, make_left, score_from_name])
    plan = plan_for(registry, ["score"], ["id", "name"])
    assert plan.proposes["score"] == Binding(source="step", step="score_from_name", field="score")
    assert [s.id for s in plan.steps] == ["score_from_name"]


def test_a_fallback_that_cannot_cover_every_used_output_is_left_out() -> None:
    registry = ToolRegistry([firmographics, size_guess])
    plan = plan_for(registry, ["size", "sector"], ["id", "name"])
    assert plan.step("firmographics").fallback is None


def test_a_tool_with_none_of_its_inputs_available_is_not_planned(real_registry: ToolRegistry) -> None:
    # No country column and nothing produces 'country': normalize_country would always see None.
    with pytest.raises(PlanRejected, match="country"):
        RulesPlanner().plan(StructuredRequest(fill=["country_code"]), ["id", "name"], Policy(), real_registry)


def test_a_filled_field_the_write_tool_cannot_take_is_refused(registry: ToolRegistry) -> None:
    with pytest.raises(PlanRejected, match="word_count"):
        plan_for(registry, ["country_code", "word_count"], ["id", "country", "text"],
                 write=WriteRequest(tool="crm_write", target="crm"))
