"""Business rules, output contracts, tool flags and confidence thresholds: the non-GX checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from airlock.llm import MODEL_REVIEW_FLAGS
from airlock.plan import Policy
from airlock.validation.findings import Finding, Proposal, Severity


@dataclass(frozen=True)
class Rule:
    """A named check on a proposed change; ``violated(after, record)`` says it fails."""

    code: str
    severity: Severity
    description: str
    violated: Callable[[Mapping[str, Any], Mapping[str, Any]], bool]


def check_contract(proposal: Proposal, contract: type[BaseModel] | None) -> list[Finding]:
    if contract is None:
        return []
    try:
        contract.model_validate(proposal.after)
    except ValidationError as error:
        fields = sorted({str(e["loc"][0]) if e["loc"] else "record" for e in error.errors()})
        return [Finding(f"contract:{name}", "reject") for name in fields]
    return []


def check_rules(proposal: Proposal, record: Mapping[str, Any], rules: list[Rule]) -> list[Finding]:
    return [Finding(rule.code, rule.severity) for rule in rules if rule.violated(proposal.after, record)]


def check_policy(proposal: Proposal, policy: Policy) -> list[Finding]:
    findings: list[Finding] = []
    for name, threshold in policy.thresholds.items():
        confidence = proposal.sources.get(name, {}).get("confidence")
        if confidence is not None and confidence < threshold:
            findings.append(Finding(f"low_confidence:{name}", "review"))
    for flag in proposal.flags:
        if flag in policy.reject_on:
            findings.append(Finding(flag, "reject"))
        elif flag in policy.review_on or flag in MODEL_REVIEW_FLAGS:
            # A record that read like instructions, a refused model value or a spent budget always
            # goes to a person, whatever the playbook says.
            findings.append(Finding(flag, "review"))
    for write_id in policy.approvals:
        findings.append(Finding(f"needs_approval:{write_id}", "review"))
    return findings
