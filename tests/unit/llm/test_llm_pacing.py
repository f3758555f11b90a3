"""The client's tokens-per-minute pace, on a fake clock: calls wait for quota instead of drawing 429s."""

from __future__ import annotations

from airlock.llm.client import TokenRate


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_calls_within_the_quota_do_not_wait() -> None:
    clock = FakeClock()
    pace = TokenRate(6000, clock=clock, sleep=clock.sleep)  # 100 tokens a second
    pace.acquire(60)
    pace.settle(60, 60)
    assert clock.slept == []


def test_a_call_over_the_quota_makes_the_next_one_wait_until_it_is_repaid() -> None:
    clock = FakeClock()
    pace = TokenRate(6000, clock=clock, sleep=clock.sleep)
    pace.acquire(100)
    pace.settle(100, 400)  # the call used more than estimated: 300 tokens in debt
    pace.acquire(50)
    assert sum(clock.slept) == 3.0  # 300 tokens at 100 a second


def test_a_refused_call_gives_its_tokens_back() -> None:
    clock = FakeClock()
    pace = TokenRate(6000, clock=clock, sleep=clock.sleep)
    pace.acquire(100)
    pace.settle(100, 0)
    pace.acquire(100)
    assert clock.slept == []
