"""call_with_retry and RetryPolicy: what is retried, how long it waits, and what is recorded."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from airlock.errors import (
    InfrastructureError,
    ToolError,
    ToolInputError,
    TransientToolError,
    is_retryable,
    retry_after_of,
)
from airlock.retry import NO_RETRY, RetryOutcome, RetryPolicy, call_with_retry

NO_JITTER = RetryPolicy(attempts=4, base_delay=0.1, max_delay=1.0, jitter=False)


def failing(errors: list[BaseException], result: str = "done") -> tuple[Callable[[], str], list[int]]:
    """A call that raises ``errors`` one by one, then returns ``result``; counts its calls."""
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return call, calls


def test_success_needs_no_retry(sleeps: list[float]) -> None:
    call, calls = failing([])
    outcome = RetryOutcome()
    assert call_with_retry(call, NO_JITTER, outcome=outcome, sleep=sleeps.append) == "done"
    assert len(calls) == 1 and outcome.attempts == [] and sleeps == []


def test_non_retryable_error_stops_at_once(sleeps: list[float]) -> None:
    error = ToolInputError("bad phone")
    call, calls = failing([error, error])
    outcome = RetryOutcome()
    with pytest.raises(ToolInputError) as raised:
        call_with_retry(call, NO_JITTER, outcome=outcome, sleep=sleeps.append)
    assert raised.value is error
    assert len(calls) == 1 and sleeps == []
    [attempt] = outcome.attempts
    assert (attempt.number, attempt.error_type, attempt.error, attempt.retryable, attempt.waited) == (
        1, "ToolInputError", "bad phone", False, 0.0)


def test_retryable_errors_are_retried_until_success(sleeps: list[float]) -> None:
    call, calls = failing([TransientToolError("busy"), ConnectionError("reset")])
    outcome = RetryOutcome()
    assert call_with_retry(call, NO_JITTER, outcome=outcome, sleep=sleeps.append) == "done"
    assert len(calls) == 3
    assert sleeps == [0.1, 0.2]  # exponential backoff, no jitter
    assert [(a.number, a.error_type, a.retryable, a.waited) for a in outcome.attempts] == [
        (1, "TransientToolError", True, 0.1), (2, "ConnectionError", True, 0.2)]


def test_attempts_run_out_and_the_last_error_is_raised(sleeps: list[float]) -> None:
    errors: list[BaseException] = [InfrastructureError(f"down {i}") for i in range(10)]
    call, calls = failing(errors)
    outcome = RetryOutcome()
    with pytest.raises(InfrastructureError, match="down 3"):
        call_with_retry(call, NO_JITTER, outcome=outcome, sleep=sleeps.append)
    assert len(calls) == 4
    assert sleeps == [0.1, 0.2, 0.4]
    assert [a.number for a in outcome.attempts] == [1, 2, 3, 4]
    assert outcome.attempts[-1].retryable is True and outcome.attempts[-1].waited == 0.0


def test_no_retry_policy_calls_once(sleeps: list[float]) -> None:
    call, calls = failing([TransientToolError("busy")])
    with pytest.raises(TransientToolError):
        call_with_retry(call, NO_RETRY, sleep=sleeps.append)
    assert len(calls) == 1 and sleeps == []


def test_retry_after_is_honoured_and_capped(sleeps: list[float]) -> None:
    call, _ = failing([TransientToolError("429", retry_after=1.5), TransientToolError("429", retry_after=60)])
    policy = RetryPolicy(attempts=3, base_delay=0.01, max_delay=5.0, jitter=True)
    assert call_with_retry(call, policy, sleep=sleeps.append) == "done"
    assert sleeps == [1.5, 5.0]


def test_retry_after_is_ignored_when_the_policy_says_so(sleeps: list[float]) -> None:
    call, _ = failing([TransientToolError("429", retry_after=30)])
    policy = RetryPolicy(attempts=2, base_delay=0.25, jitter=False, honour_retry_after=False)
    call_with_retry(call, policy, sleep=sleeps.append)
    assert sleeps == [0.25]


def test_zero_delay_does_not_sleep(sleeps: list[float]) -> None:
    call, calls = failing([TransientToolError("busy")])
    call_with_retry(call, RetryPolicy(attempts=2, base_delay=0.0), sleep=sleeps.append)
    assert len(calls) == 2 and sleeps == []


def test_a_custom_retryable_predicate_decides(sleeps: list[float]) -> None:
    call, calls = failing([ValueError("flaky parser")])
    assert call_with_retry(call, NO_JITTER, sleep=sleeps.append, retryable=lambda e: isinstance(e, ValueError))
    assert len(calls) == 2


def test_backoff_without_jitter_doubles_up_to_the_cap() -> None:
    assert [NO_JITTER.delay(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_jitter_stays_within_zero_and_the_backoff_ceiling() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0, jitter=True)
    rng = random.Random(20240601)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (6, 1.0)]:
        samples = [policy.delay(attempt, rng=rng) for _ in range(300)]
        assert all(0.0 <= s <= ceiling for s in samples), attempt
        assert max(samples) > 0.8 * ceiling and min(samples) < 0.2 * ceiling  # spread over the whole range
        assert len(set(samples)) > 250


def test_negative_retry_after_means_no_wait() -> None:
    assert RetryPolicy().delay(1, TransientToolError("x", retry_after=-3)) == 0.0


def test_error_tree_says_what_is_retryable() -> None:
    assert is_retryable(TransientToolError("x")) and is_retryable(InfrastructureError("db"))
    assert not is_retryable(ToolInputError("x")) and not is_retryable(ToolError("x"))
    assert is_retryable(TimeoutError()) and is_retryable(ConnectionResetError())
    assert not is_retryable(ValueError("x")) and not is_retryable(KeyError("x"))
    assert is_retryable(ToolError("rate limited", retryable=True))
    assert not is_retryable(InfrastructureError("schema mismatch", retryable=False))
    assert retry_after_of(TransientToolError("x", retry_after=2)) == 2.0
    assert retry_after_of(ValueError("x")) is None


def test_a_first_attempt_made_by_the_caller_counts_as_attempt_one(sleeps: list[float]) -> None:
    call, calls = failing([ConnectionError("reset")])
    outcome = RetryOutcome()
    first = TransientToolError("busy")
    assert call_with_retry(call, NO_JITTER, outcome=outcome, sleep=sleeps.append, first_failure=first) == "done"
    assert len(calls) == 2 and sleeps == [0.1, 0.2]  # attempts 2 and 3 here
    assert [(a.number, a.error_type) for a in outcome.attempts] == [(1, "TransientToolError"), (2, "ConnectionError")]
    with pytest.raises(ValueError, match="bad input"):  # not retryable: raised as it was, nothing called
        call_with_retry(call, NO_JITTER, sleep=sleeps.append, first_failure=ValueError("bad input"))
    assert len(calls) == 2
