"""Prices, cost and per-run budgets of model calls.

A budget is in tokens, money or both; it is checked before every paid call, so once it is spent no
further call starts (calls already in flight finish: the overshoot is at most the concurrency limit
times one call). The price table comes from settings (``AIRLOCK_LLM_PRICES``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from airlock.llm.types import Usage

# USD per million tokens. Defaults for the default models; override with AIRLOCK_LLM_PRICES.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "claude-sonnet-4-5": {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75},
    "gpt-4o-mini": {"input": 0.15, "output": 0.6, "cache_read": 0.075, "cache_write": 0.15},
}


class PriceTable:
    def __init__(self, prices: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self.prices = {**DEFAULT_PRICES, **{k: dict(v) for k, v in (prices or {}).items()}}

    def known(self, model: str) -> bool:
        return self._entry(model) is not None

    def _entry(self, model: str) -> Mapping[str, float] | None:
        if model in self.prices:
            return self.prices[model]
        # Dated model ids ("claude-sonnet-4-5-20250929") price as their family.
        matches = [name for name in self.prices if model.startswith(name)]
        return self.prices[max(matches, key=len)] if matches else None

    def cost(self, model: str, usage: Usage) -> float:
        """USD; 0.0 for a model without a price (a local server), which the report says."""
        entry = self._entry(model)
        if entry is None:
            return 0.0
        per_input = entry.get("input", 0.0)
        total = (usage.input_tokens * per_input
                 + usage.output_tokens * entry.get("output", 0.0)
                 + usage.cache_read_tokens * entry.get("cache_read", per_input * 0.1)
                 + usage.cache_write_tokens * entry.get("cache_write", per_input * 1.25))
        return round(total / 1_000_000, 8)


@dataclass(frozen=True)
class BudgetLimits:
    tokens: int | None = None
    usd: float | None = None

    @property
    def unlimited(self) -> bool:
        return self.tokens is None and self.usd is None


class RunBudgets:
    """What each run has spent, seeded from the store on first use (a resumed run keeps counting)."""

    def __init__(self, limits: BudgetLimits, seed: Callable[[str], tuple[int, float]] | None = None) -> None:
        self.limits = limits
        self._seed = seed
        self._spent: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _entry(self, run_id: str) -> list[float]:
        if run_id not in self._spent:
            tokens, usd = self._seed(run_id) if self._seed else (0, 0.0)
            self._spent[run_id] = [float(tokens), float(usd)]
        return self._spent[run_id]

    def exhausted(self, run_id: str | None, limits: BudgetLimits | None = None) -> str | None:
        """Why the run may make no more paid calls, or None. ``limits`` (a plan's) win over the defaults."""
        limits = limits if limits is not None and not limits.unlimited else self.limits
        if run_id is None or limits.unlimited:
            return None
        with self._lock:
            tokens, usd = self._entry(run_id)
        if limits.tokens is not None and tokens >= limits.tokens:
            return f"token budget of {limits.tokens} spent ({int(tokens)} used)"
        if limits.usd is not None and usd >= limits.usd:
            return f"budget of ${limits.usd:.4f} spent (${usd:.4f} used)"
        return None

    def charge(self, run_id: str | None, tokens: int, usd: float) -> None:
        if run_id is None:
            return
        with self._lock:
            entry = self._entry(run_id)
            entry[0] += tokens
            entry[1] += usd
