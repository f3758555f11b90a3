"""``ModelClient``: every paid model call goes through here. It bounds concurrency, refuses calls
once the run's budget is spent, retries through the shared ``airlock.retry`` (the SDK's own retries
are off), and meters tokens and cost to the run, step and chunk in scope.

The scope is a context variable set by the task that runs a step (``metered``), so tools stay plain
functions that know nothing of runs.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from airlock.errors import BudgetExhausted
from airlock.llm.cost import BudgetLimits, PriceTable, RunBudgets
from airlock.llm.types import ModelProvider, ModelRequest, ModelResponse, Usage
from airlock.retry import NO_RETRY, RetryOutcome, RetryPolicy, call_with_retry


@dataclass(frozen=True)
class CallScope:
    run_id: str | None = None
    step_id: str | None = None
    chunk_no: int | None = None
    budget: BudgetLimits | None = None  # the plan's policy budget; None: the settings' budget


_NO_SCOPE = CallScope()
_scope: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar("airlock_llm_scope", default=None)


def current_scope() -> CallScope:
    return _scope.get() or _NO_SCOPE


@contextmanager
def metered(run_id: str | None, step_id: str | None = None, chunk_no: int | None = None,
            budget: BudgetLimits | None = None) -> Iterator[None]:
    """Attribute the model calls made inside to this run, step and chunk, and hold them to the run's
    budget (``budget`` when given, else the client's)."""
    token = _scope.set(CallScope(run_id, step_id, chunk_no, budget))
    try:
        yield
    finally:
        _scope.reset(token)


@dataclass
class UsageEvent:
    run_id: str | None
    step_id: str | None
    chunk_no: int | None
    purpose: str  # "plan" or the tool's name
    provider: str
    model: str
    records: int
    usage: Usage
    cost_usd: float
    attempts: int
    at: float = field(default_factory=time.time)


class UsageSink(Protocol):
    def record_llm_usage(self, event: UsageEvent) -> None: ...

    def llm_spent(self, run_id: str) -> tuple[int, float]: ...


class TokenRate:
    """A tokens-per-minute pace kept on our side, so calls wait for quota instead of being refused
    with 429s that use up retries. A token bucket refilled continuously; a call may take it below
    zero (one call can be bigger than a second's worth) and the next waits until it is repaid."""

    def __init__(self, tokens_per_minute: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = tokens_per_minute / 60.0
        self.capacity = self.rate  # one second's worth: no burst that the provider would refuse
        self.balance = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self.balance = min(self.capacity, self.balance + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self, estimate: int) -> None:
        while True:
            with self._lock:
                self._refill()
                if self.balance >= 0:
                    self.balance -= estimate
                    return
                wait = -self.balance / self.rate
            self._sleep(wait)

    def settle(self, estimate: int, actual: int) -> None:
        with self._lock:
            self.balance += estimate - actual


def estimate_tokens(request: ModelRequest) -> int:
    """Roughly four characters a token, for pacing only (the bill uses the provider's count)."""
    chars = len(request.system) + len(request.cached_context) + sum(len(m.content) for m in request.messages)
    return chars // 4 + request.max_tokens // 8


class ModelClient:
    def __init__(
        self,
        provider: ModelProvider,
        *,
        prices: PriceTable | None = None,
        budget: BudgetLimits | None = None,
        concurrency: int = 4,
        sink: UsageSink | None = None,
        max_tokens: int = 4096,
        tokens_per_minute: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.provider = provider
        self.prices = prices or PriceTable()
        self.sink = sink
        self.max_tokens = max_tokens
        self.budgets = RunBudgets(budget or BudgetLimits(), sink.llm_spent if sink else None)
        self._slots = threading.BoundedSemaphore(concurrency)
        self._sleep = sleep
        self.pace = TokenRate(tokens_per_minute, sleep=sleep) if tokens_per_minute else None

    @property
    def name(self) -> str:
        return f"{self.provider.name}:{self.provider.model}"

    def complete(self, request: ModelRequest, *, purpose: str, records: int = 0,
                 retry: RetryPolicy = NO_RETRY) -> ModelResponse:
        """One answer. Raises ``BudgetExhausted`` before the call when the run's budget is spent."""
        scope = current_scope()
        spent = self.budgets.exhausted(scope.run_id, scope.budget)
        if spent is not None:
            raise BudgetExhausted(f"no model call: the run's {spent}")
        outcome = RetryOutcome()

        def once() -> ModelResponse:
            estimate = estimate_tokens(request)
            if self.pace is not None:
                self.pace.acquire(estimate)
            with self._slots:
                try:
                    answer = self.provider.complete(request)
                except Exception:
                    if self.pace is not None:
                        self.pace.settle(estimate, 0)  # a refused call used no quota
                    raise
            if self.pace is not None:
                self.pace.settle(estimate, answer.usage.total)
            return answer

        response = call_with_retry(once, retry, outcome=outcome, sleep=self._sleep)
        cost = self.prices.cost(response.model, response.usage)
        self.budgets.charge(scope.run_id, response.usage.total, cost)
        if self.sink is not None:
            self.sink.record_llm_usage(UsageEvent(
                run_id=scope.run_id, step_id=scope.step_id, chunk_no=scope.chunk_no, purpose=purpose,
                provider=self.provider.name, model=response.model, records=records, usage=response.usage,
                cost_usd=cost, attempts=len(outcome.attempts) + 1,
            ))
        return response
