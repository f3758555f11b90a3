"""Retries with exponential backoff, full jitter and retry-after, shared by every tool and provider.

One implementation so that the policy of each side effect (see ``registry.policy_for``) means the
same thing everywhere, and so that SDK retries, tool retries and task retries do not multiply.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from airlock.errors import is_retryable, retry_after_of

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_delay: float = 0.05
    max_delay: float = 5.0
    jitter: bool = True
    honour_retry_after: bool = True

    def delay(self, attempt: int, error: BaseException | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if self.honour_retry_after and error is not None:
            hinted = retry_after_of(error)
            if hinted is not None:
                return min(max(hinted, 0.0), self.max_delay)
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        if not self.jitter:
            return ceiling
        return (rng or random).uniform(0, ceiling)


NO_RETRY = RetryPolicy(attempts=1)


@dataclass
class Attempt:
    number: int
    error_type: str
    error: str
    retryable: bool
    waited: float


@dataclass
class RetryOutcome:
    """What ``call_with_retry`` tried, kept so a dead letter can show every attempt."""

    attempts: list[Attempt] = field(default_factory=list)


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    outcome: RetryOutcome | None = None,
    sleep: Callable[[float], None] = time.sleep,
    retryable: Callable[[BaseException], bool] = is_retryable,
    first_failure: Exception | None = None,
) -> T:
    """Call ``fn`` until it succeeds, fails with a non-retryable error, or attempts run out.

    The last error is re-raised unchanged; ``outcome`` (when given) records every failed attempt.
    ``first_failure``: the caller made the first attempt itself (the cheap path of a hot loop, where
    nearly every first attempt succeeds) and it failed with this error; it counts as attempt 1.
    """
    number = 0
    error = first_failure
    while True:
        number += 1
        if error is None:
            try:
                return fn()
            except Exception as raised:  # noqa: BLE001 - raised again below unless it is retried
                error = raised
        can_retry = retryable(error) and number < policy.attempts
        wait = policy.delay(number, error) if can_retry else 0.0
        if outcome is not None:
            outcome.attempts.append(Attempt(number, type(error).__name__, str(error)[:500], retryable(error), wait))
        if not can_retry:
            raise error
        error = None
        if wait > 0:
            sleep(wait)
