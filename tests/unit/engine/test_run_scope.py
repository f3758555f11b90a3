"""Uniqueness over the whole run: the verdicts of a run do not depend on how it is cut into chunks."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from airlock.errors import InfrastructureError
from airlock.validation import GxRunner, RunClaims, merge_claims
from tests.unit.engine.test_engine_validation import GOOD, run

DUPLICATE = "gx:expect_column_values_to_be_unique:domain"


@pytest.fixture(scope="module")
def gx() -> GxRunner:
    return GxRunner()


def domains(*pairs: tuple[str, str]) -> dict[str, dict[str, Any]]:
    return {rid: {**GOOD, "domain": domain} for rid, domain in pairs}


def test_the_same_records_get_the_same_verdicts_in_one_chunk_or_three(gx: GxRunner) -> None:
    records = [("a", "one.com"), ("b", "two.com"), ("c", "one.com"), ("d", "three.com"), ("e", "two.com"),
               ("f", "one.com"), ("g", None)]
    whole = run(gx, domains(*records))  # type: ignore[arg-type]
    claimed: dict[str, dict[str, str]] = {}
    cut: dict[str, Any] = {}
    for part in (records[:2], records[2:5], records[5:]):
        checked = run(gx, domains(*part), claimed=claimed)  # type: ignore[arg-type]
        cut.update(checked.verdicts)
        claimed = merge_claims([claimed, checked.claims])
    assert {rid: (v.verdict, v.reasons) for rid, v in cut.items()} == {
        rid: (v.verdict, v.reasons) for rid, v in whole.verdicts.items()}
    flagged = {rid for rid, v in whole.verdicts.items() if DUPLICATE in v.reasons}
    assert flagged == {"c", "e", "f"}  # the first claim of a domain passes; an empty domain claims nothing
    assert whole.claims == {"domain": {"one.com": "a", "two.com": "b", "three.com": "d"}}


def test_a_value_claimed_by_an_earlier_chunk_sends_the_record_to_review(gx: GxRunner) -> None:
    checked = run(gx, domains(("x", "taken.com"), ("y", "free.com")), claimed={"domain": {"taken.com": "w"}})
    assert checked.verdicts["x"].reasons == [DUPLICATE] and checked.verdicts["y"].reasons == []
    assert checked.claims == {"domain": {"free.com": "y"}}


def test_a_record_validated_again_does_not_collide_with_its_own_claim(gx: GxRunner) -> None:
    # A replay validates again records whose chunk was validated (and published its claims) before.
    checked = run(gx, domains(("x", "mine.com")), claimed={"domain": {"mine.com": "x"}})
    assert checked.verdicts["x"].reasons == []


def test_a_chunk_waits_for_the_chunks_before_it_and_sees_their_claims() -> None:
    claims = RunClaims()
    seen: dict[str, dict[str, str]] = {}

    def chunk_two() -> None:
        seen.update(claims.before(2, timeout=10))

    waiter = threading.Thread(target=chunk_two)
    waiter.start()
    claims.publish(1, {"domain": {"b.com": "B"}})
    time.sleep(0.2)
    assert waiter.is_alive() and not seen  # chunk 0 has not settled yet
    claims.publish(0, {"domain": {"a.com": "A"}})
    waiter.join(timeout=10)
    assert seen == {"domain": {"a.com": "A", "b.com": "B"}}


def test_a_failed_chunk_is_settled_without_claims_and_publishing_twice_changes_nothing() -> None:
    claims = RunClaims()
    claims.settle(0)
    claims.publish(1, {"domain": {"b.com": "B"}})
    claims.publish(1, {"domain": {"late.com": "L"}})  # a stored outcome read again on a resume
    assert claims.before(2, timeout=1) == {"domain": {"b.com": "B"}}


def test_waiting_for_a_chunk_that_never_settles_is_a_retryable_error() -> None:
    with pytest.raises(InfrastructureError, match="chunk 0 did not finish"):
        RunClaims().before(1, timeout=0.1)
