"""Model usage and planning conversations: what each paid call cost, by run, step and chunk, and
every planner conversation (a refused one is a planning dead letter, with the conversation)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from airlock.errors import NotFound
from airlock.llm.client import UsageEvent
from airlock.store.base import StoreBase
from airlock.store.schema import llm_usage, plan_conversations

_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


class LlmRepo(StoreBase):
    def record_llm_usage(self, event: UsageEvent) -> None:
        usage = event.usage
        self._insert_many(llm_usage, [{
            "at": datetime.fromtimestamp(event.at, UTC), "run_id": event.run_id, "step_id": event.step_id,
            "chunk_no": event.chunk_no, "purpose": event.purpose[:100], "provider": event.provider,
            "model": event.model[:200], "records": event.records, "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens, "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens, "cost_usd": event.cost_usd, "attempts": event.attempts,
        }])

    def llm_spent(self, run_id: str) -> tuple[int, float]:
        """(tokens, USD) the run has spent on model calls so far (its budget counts from here)."""
        c = llm_usage.c
        tokens = sa.func.coalesce(sa.func.sum(c.input_tokens + c.output_tokens + c.cache_read_tokens
                                              + c.cache_write_tokens), 0)
        statement = sa.select(tokens, sa.func.coalesce(sa.func.sum(llm_usage.c.cost_usd), 0.0)).where(
            llm_usage.c.run_id == run_id)
        with self.tx() as connection:
            row = connection.execute(statement).one()
        return int(row[0]), float(row[1])

    def llm_usage_summary(self, run_id: str) -> dict[str, Any]:
        """Totals and a row per step: calls, records, tokens in/out, cache reads/writes, cost."""
        columns = [sa.func.count().label("calls"), sa.func.sum(llm_usage.c.records).label("records"),
                   *(sa.func.sum(getattr(llm_usage.c, c)).label(c) for c in _TOKENS),
                   sa.func.sum(llm_usage.c.cost_usd).label("cost_usd")]
        statement = (sa.select(llm_usage.c.step_id, llm_usage.c.purpose, llm_usage.c.model, *columns)
                     .where(llm_usage.c.run_id == run_id)
                     .group_by(llm_usage.c.step_id, llm_usage.c.purpose, llm_usage.c.model)
                     .order_by(llm_usage.c.step_id))
        steps = []
        for row in self._rows(statement):
            step = {k: (round(float(v), 6) if k == "cost_usd" else (int(v) if isinstance(v, (int, float)) else v))
                    for k, v in row.items()}
            step["cost_per_record_usd"] = round(step["cost_usd"] / step["records"], 8) if step["records"] else 0.0
            steps.append(step)
        totals: dict[str, Any] = {key: sum(s[key] or 0 for s in steps) for key in ("calls", "records", *_TOKENS)}
        totals["cost_usd"] = round(sum(s["cost_usd"] or 0.0 for s in steps), 6)
        return {"totals": totals, "steps": steps}

    def save_plan_conversation(self, *, actor: str, request: str, planner: str, status: str,
                               plan_hash: str | None, problems: list[str], unsupported: list[str],
                               conversation: list[dict[str, str]], tokens: int, cost_usd: float) -> int:
        with self.tx() as connection:
            result = connection.execute(plan_conversations.insert().values(
                at=self.now(), actor=actor, request=request, planner=planner[:240], status=status,
                plan_hash=plan_hash, problems=problems, unsupported=unsupported, conversation=conversation,
                tokens=tokens, cost_usd=cost_usd,
            ))
            key = result.inserted_primary_key
        return int(key[0]) if key else 0

    def get_plan_conversation(self, conversation_id: int) -> dict[str, Any]:
        rows = self._rows(sa.select(plan_conversations).where(plan_conversations.c.id == conversation_id))
        if not rows:
            raise NotFound(f"no planning conversation {conversation_id}")
        return rows[0]

    def plan_conversations_for(self, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        statement = sa.select(plan_conversations).order_by(plan_conversations.c.id.desc()).limit(limit)
        if status is not None:
            statement = statement.where(plan_conversations.c.status == status)
        return self._rows(statement)
