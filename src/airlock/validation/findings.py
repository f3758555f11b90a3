"""Findings, verdicts and the proposals they are about.

Each proposed record change gets exactly one verdict: ``pass`` (written automatically), ``review``
(a person decides) or ``reject`` (never written), with reason codes a reviewer can read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import orjson

Severity = Literal["review", "reject"]


class Verdict(StrEnum):
    PASS = "pass"
    REVIEW = "review"
    REJECT = "reject"


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity


@dataclass
class Proposal:
    record_id: str
    after: dict[str, Any]
    before: dict[str, Any]
    sources: dict[str, dict[str, Any]]
    flags: list[str] = field(default_factory=list)

    @property
    def proposal_hash(self) -> str:
        return values_hash(self.after)

    def changes(self) -> dict[str, dict[str, Any]]:
        return {name: {"before": self.before.get(name), "after": value, **self.sources.get(name, {})}
                for name, value in self.after.items()}

    def min_confidence(self) -> float:
        values = [s["confidence"] for s in self.sources.values() if s.get("confidence") is not None]
        return min(values) if values else 1.0


def values_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(values, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


@dataclass
class RecordVerdict:
    record_id: str
    verdict: Verdict
    reasons: list[str]


def decide(record_id: str, findings: list[Finding]) -> RecordVerdict:
    reasons = sorted({f.code for f in findings})
    if any(f.severity == "reject" for f in findings):
        return RecordVerdict(record_id, Verdict.REJECT, reasons)
    if findings:
        return RecordVerdict(record_id, Verdict.REVIEW, reasons)
    return RecordVerdict(record_id, Verdict.PASS, [])


def risk_of(proposal: Proposal, verdict: RecordVerdict) -> float:
    """Ordering for the review queue: low confidence and many reasons first."""
    return round((1.0 - proposal.min_confidence()) + 0.1 * len(verdict.reasons), 4)
