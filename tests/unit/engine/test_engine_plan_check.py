"""check_plan: every malformed plan is refused before it runs, with a sentence a person can act on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from airlock.errors import PlanRejected
from airlock.ledger import write_inputs
from airlock.plan import Binding, Plan
from airlock.plan_check import check_plan, ensure_plan_ok
from airlock.registry import SideEffect, ToolRegistry, tool

Body = dict[str, Any]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CountryNumberIn(Strict):
    country: int | None = None


class CodeOut(Strict):
    country_code: str | None = None


class TextIn(Strict):
    text: str | None = None


class WordsText(Strict):
    word_count: str = ""


@tool(effect=SideEffect.NONE)
def country_by_number(data: CountryNumberIn) -> CodeOut:
    """ISO code from an ISO 3166 numeric code."""
    return CodeOut(country_code={276: "DE", 250: "FR"}.get(data.country or 0))


@tool(effect=SideEffect.NONE)
def words_as_text(data: TextIn) -> WordsText:
    """How many words a text has, spelled out."""
    return WordsText(word_count=str(len((data.text or "").split())))


def _step(body: Body, step_id: str) -> dict[str, Any]:
    return next(s for s in body["steps"] if s["id"] == step_id)


def unknown_tool(body: Body) -> None:
    _step(body, "country")["tool"] = "geocode"


def unknown_fallback(body: Body) -> None:
    _step(body, "country")["fallback"] = "ask_the_oracle"


def missing_column(body: Body) -> None:
    _step(body, "country")["inputs"]["country"] = "record.region"


def missing_step(body: Body) -> None:
    _step(body, "phone")["inputs"]["country_code"] = "steps.ghost.country_code"


def missing_step_output(body: Body) -> None:
    _step(body, "phone")["inputs"]["country_code"] = "steps.country.iso3"


def int_output_into_str_input(body: Body) -> None:
    body["steps"].insert(0, {"id": "words", "tool": "count_words", "inputs": {"text": "record.notes"}})
    _step(body, "phone")["inputs"]["phone"] = "steps.words.word_count"


def optional_str_column_into_int_input(body: Body) -> None:
    body["steps"].append({"id": "double", "tool": "double_amount", "inputs": {"amount": "record.notes"}})


def literal_of_wrong_type(body: Body) -> None:
    body["steps"].append({"id": "double", "tool": "double_amount", "inputs": {"amount": {"literal": "3"}}})


def bool_literal_for_int(body: Body) -> None:
    body["steps"].append({"id": "double", "tool": "double_amount", "inputs": {"amount": {"literal": True}}})


def required_input_unbound(body: Body) -> None:
    body["steps"].append({"id": "double", "tool": "double_amount", "inputs": {}})


def input_the_tool_does_not_have(body: Body) -> None:
    _step(body, "country")["inputs"]["region"] = "record.country"


def two_step_cycle(body: Body) -> None:
    body["steps"] = [
        {"id": "a", "tool": "clean_country", "inputs": {"country": "steps.b.country_code"}},
        {"id": "b", "tool": "clean_country", "inputs": {"country": "steps.a.country_code"}},
    ]
    body["proposes"] = {"country_code": "steps.a.country_code"}
    body["writes"] = []


def self_cycle(body: Body) -> None:
    _step(body, "country")["inputs"]["country"] = "steps.country.country_code"


def write_tool_as_step(body: Body) -> None:
    body["steps"].append({"id": "save", "tool": "crm_write", "inputs": {"account_id": "record.id"}})


def external_tool_as_step(body: Body) -> None:
    body["policy"]["allowed_effects"] = ["none", "read", "write", "external"]
    body["steps"].append({"id": "mail", "tool": "send_email", "inputs": {"account_id": "record.id"}})


def read_tool_not_allowed(body: Body) -> None:
    _step(body, "country")["tool"] = "country_lookup"
    body["policy"]["allowed_effects"] = ["none", "write"]


def pure_only_policy_with_a_write(body: Body) -> None:
    body["policy"]["allowed_effects"] = ["none"]


def external_write_without_approval(body: Body) -> None:
    body["policy"]["allowed_effects"] = ["none", "read", "write", "external"]
    body["writes"].append({"id": "notify", "tool": "send_email", "target": "mail",
                           "inputs": {"account_id": "record.id", "subject": {"literal": "hello"}}})


def approval_for_a_missing_write(body: Body) -> None:
    body["policy"]["approvals"] = ["notify"]


def engine_supplied_key_bound(body: Body) -> None:
    body["writes"][0]["inputs"]["idempotency_key"] = "record.id"


def engine_supplied_values_hash_bound(body: Body) -> None:
    body["writes"][0]["inputs"]["values_hash"] = {"literal": "abc"}


def non_write_tool_under_writes(body: Body) -> None:
    body["writes"][0]["tool"] = "count_words"
    body["writes"][0]["inputs"] = {"text": "record.notes"}


def proposes_from_record(body: Body) -> None:
    body["proposes"]["country_code"] = "record.country"


def proposes_from_missing_output(body: Body) -> None:
    body["proposes"]["country_code"] = "steps.country.code"


def proposal_bound_in_a_step(body: Body) -> None:
    _step(body, "phone")["inputs"]["country_code"] = "proposal.country_code"


def write_binds_unproposed_field(body: Body) -> None:
    body["writes"][0]["inputs"]["phone_e164"] = "proposal.mobile"


def threshold_for_unproposed_field(body: Body) -> None:
    body["policy"]["thresholds"]["industry"] = 0.8


def threshold_out_of_range(body: Body) -> None:
    body["policy"]["thresholds"]["country_code"] = 1.5


def negative_threshold(body: Body) -> None:
    body["policy"]["thresholds"]["country_code"] = -0.1


def duplicate_step_ids(body: Body) -> None:
    body["steps"].append({"id": "country", "tool": "clean_country", "inputs": {"country": "record.name"}})


def duplicate_write_ids(body: Body) -> None:
    body["writes"].append(dict(body["writes"][0]))


def fallback_missing_used_output(body: Body) -> None:
    _step(body, "country")["fallback"] = "partial_country"


def fallback_with_commit_effect(body: Body) -> None:
    _step(body, "country")["fallback"] = "crm_write"


def fallback_needs_unbound_input(body: Body) -> None:
    body["steps"].append({"id": "words", "tool": "count_words", "inputs": {"text": "record.notes"},
                          "fallback": "double_amount"})


MALFORMED = [
    pytest.param(unknown_tool, "step 'country': unknown tool 'geocode' (known: ", id="unknown-tool"),
    pytest.param(unknown_fallback, "step 'country' fallback: unknown tool 'ask_the_oracle'", id="unknown-fallback"),
    pytest.param(missing_column, "step 'country'.inputs.country: the dataset has no column 'region'",
                 id="missing-column"),
    pytest.param(missing_step, "step 'phone'.inputs.country_code: there is no step 'ghost'", id="missing-step"),
    pytest.param(missing_step_output, "tool 'clean_country' of step 'country' has no output 'iso3'",
                 id="missing-step-output"),
    pytest.param(int_output_into_str_input,
                 "step 'phone'.inputs.phone: steps.words.word_count is int but 'format_phone' expects str | None",
                 id="int-into-str"),
    pytest.param(optional_str_column_into_int_input,
                 "step 'double'.inputs.amount: record.notes is str | None but 'double_amount' expects int",
                 id="optional-str-column-into-int"),
    pytest.param(literal_of_wrong_type, "step 'double'.inputs.amount: literal '3' is not a valid int",
                 id="literal-wrong-type"),
    pytest.param(bool_literal_for_int, "literal True is not a valid int", id="bool-literal-for-int"),
    pytest.param(required_input_unbound, "step 'double': required input 'amount' of tool 'double_amount' is not bound",
                 id="required-input-unbound"),
    pytest.param(input_the_tool_does_not_have, "tool 'clean_country' has no input 'region' (inputs: country)",
                 id="unknown-input"),
    pytest.param(two_step_cycle, "steps form a cycle: a -> b -> a", id="cycle"),
    pytest.param(self_cycle, "steps form a cycle: country -> country", id="self-cycle"),
    pytest.param(write_tool_as_step, "step 'save' uses write tool 'crm_write' outside the commit phase",
                 id="write-in-propose-phase"),
    pytest.param(external_tool_as_step, "step 'mail' uses external tool 'send_email' outside the commit phase",
                 id="external-in-propose-phase"),
    pytest.param(read_tool_not_allowed,
                 "step 'country': tool 'country_lookup' has effect 'read', which the policy does not allow "
                 "(allowed: none, write)", id="effect-not-allowed"),
    pytest.param(pure_only_policy_with_a_write,
                 "write 'crm': tool 'crm_write' has effect 'write', which the policy does not allow",
                 id="write-not-allowed"),
    pytest.param(external_write_without_approval,
                 "write 'notify': external tool 'send_email' needs a named approver per record; "
                 "add 'notify' to policy.approvals", id="external-without-approval"),
    pytest.param(approval_for_a_missing_write, "policy.approvals: there is no write 'notify'",
                 id="approval-for-missing-write"),
    pytest.param(engine_supplied_key_bound,
                 "write 'crm': 'idempotency_key' is supplied by the engine and cannot be bound",
                 id="idempotency-key-bound"),
    pytest.param(engine_supplied_values_hash_bound,
                 "write 'crm': 'values_hash' is supplied by the engine and cannot be bound", id="values-hash-bound"),
    pytest.param(non_write_tool_under_writes, "write 'crm': tool 'count_words' has effect 'none', not a write",
                 id="non-write-under-writes"),
    pytest.param(proposes_from_record, "proposes.country_code: must come from a step output, not record.country",
                 id="proposes-from-record"),
    pytest.param(proposes_from_missing_output,
                 "proposes.country_code: tool 'clean_country' of step 'country' has no output 'code'",
                 id="proposes-missing-output"),
    pytest.param(proposal_bound_in_a_step,
                 "step 'phone'.inputs.country_code: proposal fields exist only in the commit phase",
                 id="proposal-in-propose-phase"),
    pytest.param(write_binds_unproposed_field, "write 'crm'.inputs.phone_e164: the plan proposes no field 'mobile'",
                 id="write-binds-unproposed"),
    pytest.param(threshold_for_unproposed_field, "policy.thresholds.industry: the plan proposes no field 'industry'",
                 id="threshold-unproposed"),
    pytest.param(threshold_out_of_range, "policy.thresholds.country_code: 1.5 is not a confidence between 0 and 1",
                 id="threshold-above-1"),
    pytest.param(negative_threshold, "policy.thresholds.country_code: -0.1 is not a confidence between 0 and 1",
                 id="threshold-below-0"),
    pytest.param(duplicate_step_ids, "step ids must be unique", id="duplicate-step-ids"),
    pytest.param(duplicate_write_ids, "write ids must be unique", id="duplicate-write-ids"),
    pytest.param(fallback_missing_used_output,
                 "step 'country' fallback: 'partial_country' does not produce country_code, which the plan uses",
                 id="fallback-missing-output"),
    pytest.param(fallback_with_commit_effect,
                 "step 'country' fallback: write tool 'crm_write' cannot run outside the commit phase",
                 id="fallback-commit-effect"),
    pytest.param(fallback_needs_unbound_input,
                 "step 'words' fallback: required input 'amount' of 'double_amount' is not bound by the step",
                 id="fallback-unbound-input"),
]


def test_the_base_plan_is_valid(plan_body: Body, registry: ToolRegistry) -> None:
    plan = Plan.model_validate(plan_body)
    assert check_plan(plan, registry) == []
    assert ensure_plan_ok(plan, registry) is plan


@pytest.mark.parametrize(("mutate", "expected"), MALFORMED)
def test_malformed_plan_is_refused_with_a_readable_problem(
    plan_body: Body, registry: ToolRegistry, mutate: Callable[[Body], None], expected: str
) -> None:
    mutate(plan_body)
    problems = check_plan(Plan.model_validate(plan_body), registry)
    assert any(expected in problem for problem in problems), problems
    assert all("\n" not in problem for problem in problems)


def test_every_problem_is_collected_not_just_the_first(plan_body: Body, registry: ToolRegistry) -> None:
    unknown_tool(plan_body)
    missing_step(plan_body)
    threshold_out_of_range(plan_body)
    problems = check_plan(Plan.model_validate(plan_body), registry)
    assert len(problems) == 3, problems


def test_ensure_plan_ok_raises_plan_rejected_listing_every_problem(plan_body: Body, registry: ToolRegistry) -> None:
    unknown_tool(plan_body)
    threshold_for_unproposed_field(plan_body)
    with pytest.raises(PlanRejected) as raised:
        ensure_plan_ok(Plan.model_validate(plan_body), registry)
    assert len(raised.value.problems) == 2
    assert raised.value.message.startswith("plan rejected (2 problem(s)): ")
    assert "unknown tool 'geocode'" in raised.value.message
    assert raised.value.retryable is False


def test_a_valid_external_write_with_approval(plan_body: Body, registry: ToolRegistry) -> None:
    external_write_without_approval(plan_body)
    plan_body["policy"]["approvals"] = ["notify"]
    assert check_plan(Plan.model_validate(plan_body), registry) == []


def test_a_fallback_that_produces_the_used_outputs_is_accepted(plan_body: Body, registry: ToolRegistry) -> None:
    _step(plan_body, "country")["fallback"] = "country_lookup"
    assert check_plan(Plan.model_validate(plan_body), registry) == []


def test_an_int_literal_fits_an_int_input(registry: ToolRegistry, plan_body: Body) -> None:
    plan_body["steps"].append({"id": "double", "tool": "double_amount", "inputs": {"amount": {"literal": 3}}})
    assert check_plan(Plan.model_validate(plan_body), registry) == []


def test_record_key_is_a_plain_str(plan_body: Body, registry: ToolRegistry) -> None:
    # The key column is never empty (the dataset refuses that), so it may feed a required str input.
    assert Plan.model_validate(plan_body).writes[0].inputs["account_id"] == Binding(source="record", field="id")
    assert check_plan(Plan.model_validate(plan_body), registry) == []


def test_binding_short_forms_and_their_errors() -> None:
    assert Binding.model_validate("record.phone") == Binding(source="record", field="phone")
    assert Binding.model_validate("steps.a.b") == Binding(source="step", step="a", field="b")
    assert Binding.model_validate({"literal": 5}) == Binding(source="literal", value=5)
    assert Binding.model_validate("steps.a.b").model_dump() == "steps.a.b"
    with pytest.raises(ValueError, match=r"must look like record\.FIELD"):
        Binding.model_validate("record")


def test_plan_hash_is_content_based(plan_body: Body) -> None:
    first, second = Plan.model_validate(plan_body), Plan.model_validate(plan_body)
    assert first.hash == second.hash and len(first.hash) == 20
    plan_body["policy"]["thresholds"]["country_code"] = 0.9
    assert Plan.model_validate(plan_body).hash != first.hash


def test_execution_order_puts_dependencies_first(plan_body: Body) -> None:
    plan_body["steps"].reverse()
    plan = Plan.model_validate(plan_body)
    assert [s.id for s in plan.steps] == ["phone", "country"]
    assert [s.id for s in plan.execution_order()] == ["country", "phone"]


def test_a_step_binding_in_a_write_is_refused(plan_body: Body, registry: ToolRegistry) -> None:
    plan_body["writes"][0]["inputs"]["country_code"] = "steps.country.country_code"
    plan = Plan.model_validate(plan_body)
    problems = check_plan(plan, registry)
    # If the plan is accepted, the commit must at least send the value: it sends nothing.
    sent = write_inputs(plan.writes[0], {"id": "A1", "country": "Germany"}, {"country_code": "DE"})
    assert problems or sent.get("country_code") == "DE", (problems, sent)


def test_a_fallback_whose_input_type_does_not_fit_is_refused(plan_body: Body, registry: ToolRegistry) -> None:
    registry.register(country_by_number)
    _step(plan_body, "country")["fallback"] = "country_by_number"
    problems = check_plan(Plan.model_validate(plan_body), registry)
    # record.country is str|None; the fallback would be called with it and refuse every record at run time.
    assert any("fallback" in p and "country_by_number" in p and "int" in p for p in problems), problems


def test_a_fallback_whose_output_type_does_not_fit_is_refused(plan_body: Body, registry: ToolRegistry) -> None:
    registry.register(words_as_text)
    plan_body["steps"] += [
        {"id": "words", "tool": "count_words", "inputs": {"text": "record.notes"}, "fallback": "words_as_text"},
        {"id": "double", "tool": "double_amount", "inputs": {"amount": "steps.words.word_count"}},
    ]
    problems = check_plan(Plan.model_validate(plan_body), registry)
    # With the primary, word_count is an int; with the fallback it is a str fed into double_amount's int.
    assert any("fallback" in p and "word_count" in p for p in problems), problems
