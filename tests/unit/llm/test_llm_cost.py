"""Tokens and cost per run and step in the store (SQLite and PostgreSQL), the run report's model
usage, and a budget that stops paid calls: the rest get the deterministic label, flagged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from airlock.execute import run_step
from airlock.llm import BUDGET_FLAG, metered
from airlock.llm.cost import BudgetLimits, PriceTable
from airlock.llm.types import Usage
from airlock.plan import Policy
from airlock.report import build_report
from airlock.store import Store
from tests.conftest import store_on
from tests.fakes.model_stub import ModelStub, Reply, Seen
from tests.unit.llm.conftest import client_for
from tests.unit.llm.planning_helpers import COLUMNS, llm_plan, registry_with


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Usage and budgets are kept on SQLite and on PostgreSQL."""
    yield from store_on(request, tmp_path)


def labeller(seen: Seen) -> Reply:
    import json

    records = json.loads(seen.body["messages"][-1]["content"].split("\n", 1)[1])
    return Reply(tool_calls=[("record_labels", {"labels": [
        {"id": r["id"], "industry": "Software", "confidence": 0.9} for r in records]})],
        input_tokens=1000, output_tokens=100, cache_read=500)


def _records(count: int) -> list[dict[str, str]]:
    rows = []
    for n in range(count):
        row = dict.fromkeys(COLUMNS, "")
        row.update(id=f"R{n:03d}", name=f"Firm {n}", description="Builds cloud software platforms.")
        rows.append(row)
    return rows


def _new_run(store: Store, run_id: str, records: int) -> None:
    store.create_run(id=run_id, playbook="llm", plan_hash="h", status="running", started_by="tester",
                     input_hash="i", record_count=records, chunk_size=100, chunk_count=1, dry_run=False,
                     review_timeout=0.0, spec_hashes={})


def test_price_table_prices_dated_models_as_their_family_and_unknown_ones_at_zero() -> None:
    prices = PriceTable({"local-llama": {"input": 0.0, "output": 0.0}})
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cache_read_tokens=1_000_000,
                  cache_write_tokens=1_000_000)
    assert prices.cost("claude-sonnet-4-5-20250929", usage) == pytest.approx(3 + 15 + 0.3 + 3.75)
    assert prices.cost("some-unknown-model", usage) == 0.0
    assert not prices.known("some-unknown-model")


def test_usage_is_stored_per_run_and_step_and_shown_in_the_report(stub: ModelStub, store: Store,
                                                                  tmp_path: Path) -> None:
    stub.responder = labeller
    client = client_for("anthropic", stub, sink=store)
    registry = registry_with(client, tmp_path, batch_size=5)
    _new_run(store, "run-a", 12)
    with metered("run-a", "industry", 0):
        result = run_step(llm_plan(), llm_plan().steps[0], registry, _records(12), {}, sleep=lambda _s: None)
    assert len(stub.seen) == 3  # 12 records in batches of 5
    assert all(o["industry"] == "Software" for o in result.outputs.values())
    assert store.llm_spent("run-a") == (3 * 1600, pytest.approx(3 * (1000 * 3 + 100 * 15 + 500 * 0.3) / 1e6))
    report = build_report(store, "run-a")
    totals = report["model_usage"]["totals"]
    assert totals["calls"] == 3
    assert totals["records"] == 12
    assert (totals["input_tokens"], totals["output_tokens"], totals["cache_read_tokens"]) == (3000, 300, 1500)
    assert totals["cost_per_record_usd"] == pytest.approx(totals["cost_usd"] / 12)
    assert report["model_usage"]["steps"][0]["step_id"] == "industry"


def test_a_run_without_model_calls_keeps_its_report_unchanged(store: Store) -> None:
    _new_run(store, "run-rules", 3)
    assert "model_usage" not in build_report(store, "run-rules")


def test_the_budget_stops_paid_calls_and_the_rest_get_the_deterministic_label(stub: ModelStub, store: Store,
                                                                               tmp_path: Path) -> None:
    stub.responder = labeller
    client = client_for("openai", stub, sink=store, budget=BudgetLimits(tokens=3000))
    registry = registry_with(client, tmp_path, batch_size=4)
    _new_run(store, "run-b", 16)
    with metered("run-b", "industry", 0):
        result = run_step(llm_plan(), llm_plan().steps[0], registry, _records(16), {}, sleep=lambda _s: None)
    assert len(stub.seen) == 2  # 1,600 tokens per call: the third call would start over budget
    outputs = [result.outputs[f"R{n:03d}"] for n in range(16)]
    assert all(BUDGET_FLAG not in o["flags"] for o in outputs[:8])
    assert all(BUDGET_FLAG in o["flags"] for o in outputs[8:])
    assert all(o["industry"] == "Software" and o["confidence"] < 0.95 for o in outputs[8:])  # keyword classifier
    # A resumed run counts from what the store says it spent: still no paid call.
    fresh = client_for("openai", stub, sink=store, budget=BudgetLimits(tokens=3000))
    with metered("run-b", "industry", 1):
        again = run_step(llm_plan(), llm_plan().steps[0], registry_with(fresh, tmp_path), _records(2), {},
                         sleep=lambda _s: None)
    assert len(stub.seen) == 2
    assert all(BUDGET_FLAG in o["flags"] for o in again.outputs.values())


def test_usage_rows_are_append_only(stub: ModelStub, store: Store, tmp_path: Path) -> None:
    stub.responder = labeller
    client = client_for("anthropic", stub, sink=store)
    registry = registry_with(client, tmp_path)
    with metered(None, "industry", 0):
        run_step(llm_plan(), llm_plan().steps[0], registry, _records(1), {}, sleep=lambda _s: None)
    with pytest.raises(sa.exc.DBAPIError), store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE llm_usage SET cost_usd = 0"))
    store.save_plan_conversation(actor="t", request="r", planner="p", status="refused", plan_hash=None, problems=[],
                                 unsupported=[], conversation=[], tokens=0, cost_usd=0.0)
    with pytest.raises(sa.exc.DBAPIError), store.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM plan_conversations"))


def test_a_money_budget_counts_cost_and_is_per_run() -> None:
    from airlock.llm.cost import RunBudgets

    budgets = RunBudgets(BudgetLimits(usd=0.01), seed=lambda run_id: (0, 0.004 if run_id == "resumed" else 0.0))
    budgets.charge("a", 5000, 0.009)
    assert budgets.exhausted("a") is None
    budgets.charge("a", 10, 0.002)
    assert "budget of $0.0100 spent" in (budgets.exhausted("a") or "")
    assert budgets.exhausted("b") is None
    budgets.charge("resumed", 0, 0.006)
    assert budgets.exhausted("resumed") is not None  # 0.004 already spent before this process


def test_the_migration_goes_down_to_0001_and_up_again(store: Store) -> None:
    from alembic import command

    from airlock.store.db import _alembic_config, current_revision, head_revision, upgrade

    command.downgrade(_alembic_config(store.engine), "0001")
    assert current_revision(store.engine) == "0001"
    assert "llm_usage" not in sa.inspect(store.engine).get_table_names()
    assert upgrade(store.engine) == head_revision() == current_revision(store.engine)
    assert {"llm_usage", "plan_conversations"} <= set(sa.inspect(store.engine).get_table_names())


def test_a_playbook_budget_wins_over_the_settings_and_leaves_older_plan_hashes_alone(
        stub: ModelStub, store: Store, tmp_path: Path) -> None:
    from airlock.playbook import load_playbook

    pinned = load_playbook(Path(__file__).resolve().parents[3] / "playbooks" / "enrich_accounts.pinned.yaml")
    assert pinned.plan is not None and "budget_tokens" not in pinned.plan.model_dump()["policy"]
    policy = Policy(budget_tokens=1000)
    assert Policy.model_validate(policy.model_dump()) == policy
    stub.responder = labeller
    client = client_for("anthropic", stub, sink=store, budget=BudgetLimits(tokens=1_000_000))
    registry = registry_with(client, tmp_path, batch_size=2)
    _new_run(store, "run-c", 6)
    with metered("run-c", "industry", 0, BudgetLimits(tokens=policy.budget_tokens)):
        result = run_step(llm_plan(), llm_plan().steps[0], registry, _records(6), {}, sleep=lambda _s: None)
    assert len(stub.seen) == 1  # 1,600 tokens spent: the playbook's 1,000 is gone after one call
    assert sum(BUDGET_FLAG in o["flags"] for o in result.outputs.values()) == 4
