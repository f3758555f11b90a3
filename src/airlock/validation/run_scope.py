"""Uniqueness over a whole run, so that a verdict does not depend on how the run was cut into chunks.

A value is *claimed* by the first record of the run that proposes it, in input order; every later
record proposing it gets the uniqueness finding (two accounts claiming one domain: a person merges
or confirms them). The first claim passes: its chunk may already be written by the time a later
chunk finds the second, so "first claim wins" is the rule a pipelined run can keep exactly.

``RunClaims`` makes that order hold while chunks run concurrently: the validation of chunk ``k``
waits until every chunk before it has published its claims (or failed), then sees everything
published so far. In a run without failures that is exactly the claims of chunks ``0..k-1``.
After a failure or on a resume it may include a later chunk's claims, which is the safe side: a
duplicate of a record already written still goes to a person.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence

from airlock.errors import InfrastructureError
from airlock.validation.findings import Finding, Proposal
from airlock.validation.gx_runner import RunScoped

# column -> value -> the record that claimed it. A record never collides with its own claim: a
# replay validates again records whose chunk already published what they claim.
Claims = dict[str, dict[str, str]]
Claimed = Mapping[str, Mapping[str, str]]

# How long a chunk's validation waits for the chunks before it. They are running already (chunk
# tasks start in order), so reaching this means something is stuck; the task fails and retries.
CLAIM_WAIT_SECONDS = 3600.0


def claim_unique(proposals: Sequence[Proposal], rules: Sequence[RunScoped],
                 claimed: Claimed) -> tuple[dict[str, list[Finding]], Claims]:
    """The findings of ``rules`` for these proposals (in input order) given the values claimed
    earlier in the run, and the values these proposals claim first. Empty values claim nothing,
    as GX's uniqueness ignores nulls."""
    findings: dict[str, list[Finding]] = {}
    claims: Claims = {}
    for rule in rules:
        earlier = claimed.get(rule.column, {})
        first: dict[str, str] = {}
        for proposal in proposals:
            value = proposal.after.get(rule.column)
            if value is None or value == "":
                continue
            text = str(value)
            owner = earlier.get(text) or first.get(text)
            if owner is None:
                first[text] = proposal.record_id
            elif owner != proposal.record_id:
                findings.setdefault(proposal.record_id, []).append(rule.finding)
        claims[rule.column] = first
    return findings, claims


def merge_claims(batches: Iterable[Claimed]) -> Claims:
    """One chunk's claims after another's; the first claim of a value stays."""
    merged: Claims = {}
    for claims in batches:
        _merge_into(merged, claims)
    return merged


def _merge_into(merged: Claims, claims: Claimed) -> None:
    for column, values in claims.items():
        into = merged.setdefault(column, {})
        for value, record_id in values.items():
            into.setdefault(value, record_id)


class RunClaims:
    """The values claimed so far in one run, published chunk by chunk in the run's process."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._claimed: Claims = {}
        self._settled: set[int] = set()
        self._next = 0  # every chunk below this one is settled

    def before(self, chunk_no: int, timeout: float = CLAIM_WAIT_SECONDS) -> Claims:
        """Wait until chunks ``0..chunk_no-1`` are settled, then what they (and any other settled
        chunk) claimed."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._next >= chunk_no, timeout=timeout):
                raise InfrastructureError(
                    f"chunk {chunk_no}: the validation of chunk {self._next} did not finish within "
                    f"{timeout:.0f} s, so the run's duplicate check cannot go on")
            return {column: dict(values) for column, values in self._claimed.items()}

    def publish(self, chunk_no: int, claims: Claimed) -> None:
        with self._changed:
            if chunk_no in self._settled:
                return
            _merge_into(self._claimed, claims)
            self._settle(chunk_no)

    def settle(self, chunk_no: int) -> None:
        """The chunk's validation is over without claims to publish (it failed, or never ran)."""
        with self._changed:
            self._settle(chunk_no)

    def _settle(self, chunk_no: int) -> None:
        self._settled.add(chunk_no)
        while self._next in self._settled:
            self._next += 1
        self._changed.notify_all()
