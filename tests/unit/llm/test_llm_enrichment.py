"""The model-backed industry tool through the executor: batching, the deterministic fallback when the
model fails, and records that need no model call."""

from __future__ import annotations

from pathlib import Path

from airlock.execute import run_step
from tests.fakes.model_stub import ModelStub, Reply, error_reply, tool_answer
from tests.unit.llm.conftest import client_for
from tests.unit.llm.planning_helpers import COLUMNS, llm_plan, registry_with


def _records(*industries: str) -> list[dict[str, str]]:
    rows = []
    for n, industry in enumerate(industries):
        row = dict.fromkeys(COLUMNS, "")
        row.update(id=f"R{n}", name=f"Firm {n}", industry=industry, description="Runs hospitals and clinics.")
        rows.append(row)
    return rows


def test_a_model_that_stays_down_sends_the_batch_to_the_fallback_record_by_record(stub: ModelStub,
                                                                                 tmp_path: Path) -> None:
    stub.responder = lambda _seen: error_reply(500)
    registry = registry_with(client_for("openai", stub), tmp_path, batch_size=10)
    waits: list[float] = []
    result = run_step(llm_plan(), llm_plan().steps[0], registry, _records("", "", ""), {}, sleep=waits.append)
    assert len(stub.seen) == 4  # the read effect's four attempts, once, for the whole batch
    assert len(waits) == 3
    assert result.fallbacks == 3 and not result.failures
    assert {o["_tool"] for o in result.outputs.values()} == {"classify_industry"}
    assert {o["industry"] for o in result.outputs.values()} == {"Healthcare"}


def test_an_answer_without_labels_is_not_used(stub: ModelStub, tmp_path: Path) -> None:
    stub.responder = lambda _seen: tool_answer("record_labels", {"verdict": "all Software"})
    registry = registry_with(client_for("anthropic", stub), tmp_path)
    result = run_step(llm_plan(), llm_plan().steps[0], registry, _records("", ""), {}, sleep=lambda _s: None)
    assert len(stub.seen) == 1  # malformed output is not retried
    assert {o["_tool"] for o in result.outputs.values()} == {"classify_industry"}


def test_records_whose_industry_names_a_label_need_no_call(stub: ModelStub, tmp_path: Path) -> None:
    stub.add(Reply(tool_calls=[("record_labels", {"labels": [{"id": 0, "industry": "Healthcare",
                                                                "confidence": 0.8}]})]))
    registry = registry_with(client_for("anthropic", stub), tmp_path)
    result = run_step(llm_plan(), llm_plan().steps[0], registry, _records("Software", "", "retail"), {},
                      sleep=lambda _s: None)
    assert len(stub.seen) == 1
    sent = stub.seen[0].body["messages"][-1]["content"]
    assert "Firm 1" in sent and "Firm 0" not in sent and "Firm 2" not in sent
    assert result.outputs["R0"]["industry"] == "Software" and "industry_from_model" not in result.outputs["R0"]["flags"]
    assert result.outputs["R1"] == {"industry": "Healthcare", "confidence": 0.8, "flags": ["industry_from_model"],
                                    "_tool": "classify_industry_llm"}
