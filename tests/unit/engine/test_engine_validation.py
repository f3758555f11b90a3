"""validate_chunk with the project's real expectations: GX suite, output contract and business rules."""

from __future__ import annotations

from typing import Any

import pytest

from airlock.errors import ValidationCrashed
from airlock.execute import TOOL_KEY, RecordFailure, StepResult
from airlock.plan import Plan
from airlock.validation import (
    ChunkValidation,
    Claimed,
    Finding,
    GxRunner,
    Proposal,
    Verdict,
    build_proposals,
    decide,
    risk_of,
    validate_chunk,
)
from expectations.accounts import RULES, ProposedAccount, build_suite

FIELDS = ["domain", "country_code", "phone_e164", "email_status", "industry", "employee_band"]
GOOD = {"domain": "acme.com", "country_code": "DE", "phone_e164": "+4930123456", "email_status": "valid",
        "industry": "Software", "employee_band": "11-50"}
POLICY = {"thresholds": {"industry": 0.8, "domain": 0.75}, "review_on": ["impossible_employee_count"],
          "reject_on": ["blocked_account"]}


@pytest.fixture(scope="module")
def gx() -> GxRunner:
    return GxRunner()


def make_plan(policy: dict[str, Any] | None = None) -> Plan:
    """One step per proposed field, as the rules planner builds it; the tools are not called here."""
    return Plan.model_validate({
        "request": "fill account fields",
        "dataset": {"name": "accounts", "columns": ["id", "name", "email", "website"]},
        "steps": [{"id": f"fill_{f}", "tool": f"fill_{f}", "inputs": {}} for f in FIELDS],
        "proposes": {f: f"steps.fill_{f}.{f}" for f in FIELDS},
        "policy": policy if policy is not None else POLICY,
    })


def account(record_id: str, email: str | None = None) -> dict[str, Any]:
    return {"id": record_id, "name": f"Company {record_id}", "email": email or "", "website": ""}


def results_for(plan: Plan, proposed: dict[str, dict[str, Any]],
                confidence: dict[str, dict[str, float]] | None = None,
                flags: dict[str, list[str]] | None = None,
                failed: dict[str, str] | None = None) -> dict[str, StepResult]:
    """What the steps returned: ``proposed[record][field]``; a record in ``failed`` failed that step."""
    results = {s.id: StepResult(step_id=s.id) for s in plan.steps}
    for rid, values in proposed.items():
        for field in FIELDS:
            step = f"fill_{field}"
            if (failed or {}).get(rid) == step:
                results[step].failures[rid] = RecordFailure(step, "h", "ToolInputError", "bad", False, [], {})
                continue
            output: dict[str, Any] = {field: values.get(field), "confidence": (confidence or {}).get(rid, {}).get(
                field, 1.0), TOOL_KEY: step}
            if field == "employee_band":
                output["flags"] = (flags or {}).get(rid, [])
            results[step].outputs[rid] = output
    return results


def run(gx: GxRunner, proposed: dict[str, dict[str, Any]], *, emails: dict[str, str] | None = None,
        policy: dict[str, Any] | None = None, claimed: Claimed | None = None, **kwargs: Any) -> ChunkValidation:
    plan = make_plan(policy)
    records = [account(rid, (emails or {}).get(rid, f"info@{values.get('domain') or 'x.org'}"))
               for rid, values in proposed.items()]
    return validate_chunk(plan, records, results_for(plan, proposed, **kwargs), gx=gx, suite_factory=build_suite,
                          contract=ProposedAccount, rules=RULES, claimed=claimed)


def test_a_mixed_chunk_gets_one_verdict_per_record(gx: GxRunner) -> None:
    proposed = {
        "good": GOOD,
        "bad_country": {**GOOD, "domain": "b.com", "country_code": "XX"},
        "bad_phone": {**GOOD, "domain": "c.com", "phone_e164": "12345"},
        "dup_1": {**GOOD, "domain": "shared.com"},
        "dup_2": {**GOOD, "domain": "shared.com"},
        "unsure": {**GOOD, "domain": "d.com"},
        "bad_status": {**GOOD, "domain": "e.com", "email_status": "maybe"},
        "no_industry": {**GOOD, "domain": "f.com", "industry": None},
        "odd_band": {**GOOD, "domain": "g.com"},
        "blocked": {**GOOD, "domain": "h.com"},
    }
    checked = run(gx, proposed, confidence={"unsure": {"industry": 0.5, "domain": 0.9}},
                  flags={"odd_band": ["impossible_employee_count"], "blocked": ["blocked_account"]})
    verdicts = checked.verdicts
    assert set(verdicts) == set(proposed) and checked.failures == {}

    assert (verdicts["good"].verdict, verdicts["good"].reasons) == (Verdict.PASS, [])

    assert verdicts["bad_country"].verdict is Verdict.REJECT
    assert verdicts["bad_country"].reasons == ["gx:expect_column_values_to_be_in_set:country_code"]

    assert verdicts["bad_phone"].verdict is Verdict.REJECT
    assert verdicts["bad_phone"].reasons == ["contract:phone_e164", "gx:expect_column_values_to_match_regex:phone_e164"]

    # The first record to claim a domain passes; the next one claiming it goes to a person.
    assert (verdicts["dup_1"].verdict, verdicts["dup_1"].reasons) == (Verdict.PASS, [])
    assert verdicts["dup_2"].verdict is Verdict.REVIEW
    assert verdicts["dup_2"].reasons == ["gx:expect_column_values_to_be_unique:domain"]
    assert checked.claims["domain"]["shared.com"] == "dup_1" and checked.claims["domain"]["acme.com"] == "good"

    assert (verdicts["unsure"].verdict, verdicts["unsure"].reasons) == (Verdict.REVIEW, ["low_confidence:industry"])

    assert (verdicts["bad_status"].verdict, verdicts["bad_status"].reasons) == (
        Verdict.REJECT, ["contract:email_status"])

    assert (verdicts["no_industry"].verdict, verdicts["no_industry"].reasons) == (
        Verdict.REVIEW, ["gx:expect_column_values_to_not_be_null:industry"])

    assert (verdicts["odd_band"].verdict, verdicts["odd_band"].reasons) == (
        Verdict.REVIEW, ["impossible_employee_count"])
    assert (verdicts["blocked"].verdict, verdicts["blocked"].reasons) == (Verdict.REJECT, ["blocked_account"])


def test_business_rules_send_records_to_review(gx: GxRunner) -> None:
    proposed = {
        "mismatch": {**GOOD, "domain": "acme.com"},
        "unreachable": {**GOOD, "domain": "quiet.com", "phone_e164": None, "email_status": "invalid"},
        "freemail": {**GOOD, "domain": "solo.com"},
    }
    emails = {"mismatch": "ceo@other-company.com", "unreachable": "x@quiet.com", "freemail": "me@gmail.com"}
    verdicts = run(gx, proposed, emails=emails).verdicts
    assert (verdicts["mismatch"].verdict, verdicts["mismatch"].reasons) == (Verdict.REVIEW, ["email_domain_mismatch"])
    assert (verdicts["unreachable"].verdict, verdicts["unreachable"].reasons) == (
        Verdict.REVIEW, ["no_contact_channel"])
    assert verdicts["freemail"].verdict is Verdict.PASS


def test_thresholds_follow_the_policy(gx: GxRunner) -> None:
    proposed = {"a": GOOD}
    low = {"a": {"industry": 0.5, "domain": 0.7}}
    strict = run(gx, proposed, confidence=low).verdicts["a"]
    assert strict.reasons == ["low_confidence:domain", "low_confidence:industry"]
    lenient = run(gx, proposed, confidence=low, policy={"thresholds": {"industry": 0.4}}).verdicts["a"]
    assert lenient.verdict is Verdict.PASS
    at_threshold = run(gx, proposed, confidence={"a": {"industry": 0.8, "domain": 0.75}}).verdicts["a"]
    assert at_threshold.verdict is Verdict.PASS


def test_a_record_that_failed_a_step_gets_no_proposal(gx: GxRunner) -> None:
    checked = run(gx, {"ok": GOOD, "broken": {**GOOD, "domain": "z.com"}}, failed={"broken": "fill_industry"})
    assert set(checked.verdicts) == {"ok"}
    step, failure = checked.failures["broken"]
    assert step == "fill_industry" and failure.error_type == "ToolInputError"
    assert [p.record_id for p in checked.proposals] == ["ok"]


def test_a_write_needing_approval_sends_every_record_to_review(gx: GxRunner) -> None:
    plan = make_plan({"approvals": ["notify"]})
    proposed = {"a": GOOD}
    checked = validate_chunk(plan, [account("a", "info@acme.com")], results_for(plan, proposed), gx=gx,
                             suite_factory=build_suite, contract=ProposedAccount, rules=RULES)
    assert (checked.verdicts["a"].verdict, checked.verdicts["a"].reasons) == (Verdict.REVIEW, ["needs_approval:notify"])


def test_proposals_carry_before_after_and_sources() -> None:
    plan = make_plan()
    records = [{**account("a"), "domain": "old.com"}]
    proposals, failures = build_proposals(plan, records, results_for(plan, {"a": GOOD}, confidence={
        "a": {"domain": 0.9}}))
    [proposal] = proposals
    assert failures == {}
    assert proposal.after == GOOD
    assert proposal.before["domain"] == "old.com" and proposal.before["industry"] is None
    assert proposal.sources["domain"] == {"step": "fill_domain", "tool": "fill_domain", "confidence": 0.9}
    assert proposal.changes()["domain"]["before"] == "old.com" and proposal.changes()["domain"]["after"] == "acme.com"
    assert proposal.min_confidence() == 0.9
    assert proposal.proposal_hash == Proposal("b", dict(GOOD), {}, {}).proposal_hash


def test_the_runner_validates_the_same_suite_repeatedly(gx: GxRunner) -> None:
    rows = [{"id": "a", **GOOD}, {"id": "b", **GOOD, "domain": "b.com", "country_code": "XX"}]
    first = gx.validate(build_suite, rows, "id")
    second = gx.validate(build_suite, rows, "id")
    third = gx.validate(build_suite, [{"id": "c", **GOOD, "domain": "c.com"}], "id")
    assert first.by_record == second.by_record == {
        "b": [Finding("gx:expect_column_values_to_be_in_set:country_code", "reject")]}
    assert first.evaluated == second.evaluated == 8 and first.failed == 1  # uniqueness is judged over the run
    assert [r.column for r in first.run_scoped] == ["domain"]
    assert third.by_record == {} and third.failed == 0 and third.batch == []
    assert gx.validate(build_suite, [], "id").evaluated == 0


def test_a_failing_suite_fails_closed(gx: GxRunner) -> None:
    def broken_suite() -> Any:
        raise RuntimeError("suite file missing")

    with pytest.raises(ValidationCrashed, match="Great Expectations could not validate the batch: suite file missing"):
        gx.validate(broken_suite, [{"id": "a", **GOOD}], "id")


def test_decide_and_risk() -> None:
    assert decide("a", []).verdict is Verdict.PASS
    mixed = decide("a", [Finding("x", "review"), Finding("y", "reject"), Finding("x", "review")])
    assert (mixed.verdict, mixed.reasons) == (Verdict.REJECT, ["x", "y"])
    review = decide("a", [Finding("low", "review")])
    proposal = Proposal("a", {"d": 1}, {}, {"d": {"confidence": 0.6}})
    assert risk_of(proposal, review) == 0.5
