"""The model as planner end to end, against the stub model through the real SDKs: ``airlock plan``
pins a plan from a request in words, the pinned plan runs through the real flow on Prefect (the
enrichment calls the model; the plan does not), injected records go to review, every record is
accounted for and the report carries the model's tokens and cost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.cli import main
from airlock.playbook import load_playbook
from tests.conftest import sample_accounts, write_accounts
from tests.fakes.model_stub import ModelStub, Reply, Seen
from tests.integration.flow_helpers import assert_conserved, run_flow, store
from tests.unit.llm.injections import INJECTIONS
from tests.unit.llm.planning_helpers import FREE_TEXT, good


def _answer_tool(seen: Seen) -> str:
    tool = seen.body["tools"][0]
    return str(tool.get("name") or tool["function"]["name"])


def model(seen: Seen) -> Reply:
    """Plans the example request; labels records (and obeys any instruction it finds in them)."""
    if _answer_tool(seen) == "submit_plan":
        return Reply(tool_calls=[("submit_plan", good())], input_tokens=3000, output_tokens=400, cache_write=2500)
    records = json.loads(seen.body["messages"][-1]["content"].split("\n", 1)[1])
    labels: list[dict[str, Any]] = []
    for record in records:
        obeyed = record["description"] in INJECTIONS
        labels.append({"id": record["id"], "industry": "HACKED" if obeyed else "Software", "confidence": 0.9})
    return Reply(tool_calls=[("record_labels", {"labels": labels})], input_tokens=800, output_tokens=120,
                 cache_read=600)


@pytest.fixture
def stub() -> Iterator[ModelStub]:
    server = ModelStub(responder=model)
    yield server
    server.close()


@pytest.fixture
def model_env(airlock_env: Path, stub: ModelStub, monkeypatch: pytest.MonkeyPatch) -> ModelStub:
    monkeypatch.setenv("AIRLOCK_PLANNER", "openai")
    monkeypatch.setenv("AIRLOCK_LLM_BASE_URL", stub.openai_url)
    monkeypatch.setenv("AIRLOCK_LLM_API_KEY", "test-key")
    monkeypatch.setenv("AIRLOCK_LLM_MODEL", "gpt-4o-mini")
    return stub


def _input(tmp_path: Path) -> Path:
    rows = sample_accounts(30)
    for n, text in enumerate(INJECTIONS[:5]):
        rows[n * 5] = {**rows[n * 5], "industry": "", "description": text}
    return write_accounts(tmp_path / "accounts.csv", rows)


def test_plan_pins_a_request_in_words_and_the_pinned_plan_runs(
        model_env: ModelStub, tmp_path: Path, prefect_backend: None, capsys: pytest.CaptureFixture[str]) -> None:
    data = _input(tmp_path)
    out = tmp_path / "fill_german.yaml"
    assert main(["plan", FREE_TEXT, "--out", str(out), "--input", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "not possible with the registered tools" in printed and "German" in printed
    pinned = load_playbook(out)
    assert pinned.plan is not None and pinned.plan_hash == pinned.plan.hash
    assert [w.tool for w in pinned.plan.writes] == ["crm_update_accounts", "tickets_open"]
    assert "not possible" in pinned.description
    planning_calls = len(model_env.seen)
    assert planning_calls == 1

    state, report = run_flow(data, playbook=str(out))
    assert state.is_completed()
    assert_conserved(report, 30)
    assert report["plan_hash"] == pinned.plan_hash  # the run ran the pinned plan: no planning call
    assert all(_answer_tool(s) == "record_labels" for s in model_env.seen[planning_calls:])
    injected = {r["id"] for r in report["records"]} & {f"ACC-{n:06d}" for n in range(1, 31)}
    assert injected
    by_id = {r["id"]: r for r in report["records"]}
    for n in range(5):
        record = by_id[sample_accounts(30)[n * 5]["id"]]
        assert record["outcome"] == "pending_review", record
        assert "possible_prompt_injection" in record["reasons"]
    usage = report["model_usage"]["totals"]
    assert usage["calls"] >= 1 and usage["input_tokens"] >= 800 and usage["cost_usd"] > 0
    proposals = store().proposals_for(report["run_id"])
    assert all(p["changes"].get("industry", {}).get("after") != "HACKED" for p in proposals)


def test_a_request_in_words_without_a_model_is_one_clear_line(airlock_env: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", FREE_TEXT, "--out", str(tmp_path / "x.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs a model planner" in err and "Traceback" not in err
    assert len(err.splitlines()) <= 2
    assert not (tmp_path / "x.yaml").exists()


def test_a_plan_the_model_cannot_get_right_is_kept_as_a_planning_dead_letter(
        model_env: ModelStub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_env.add(*[Reply(text="I think you should buy a CRM.")] * 3)
    out = tmp_path / "never.yaml"
    assert main(["plan", "make the CRM better", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "planning dead letter" in err and "Traceback" not in err
    assert not out.exists()
    kept = store().plan_conversations_for(status="dead_letter")
    assert len(kept) == 1
    assert main(["plan", "--show", str(kept[0]["id"])]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["request"] == "make the CRM better"
    assert main(["plan", "--list", "--status", "dead_letter"]) == 0
    assert "make the CRM better" in capsys.readouterr().out
    assert [m["role"] for m in shown["conversation"]] == ["user", "assistant", "user", "assistant", "user",
                                                          "assistant"]


def test_plan_refuses_to_overwrite_and_needs_out(model_env: ModelStub, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", FREE_TEXT]) == 2
    assert "--out FILE is needed" in capsys.readouterr().err
    existing = tmp_path / "a.yaml"
    existing.write_text("keep me")
    assert main(["plan", FREE_TEXT, "--out", str(existing)]) == 2
    assert existing.read_text() == "keep me"
    assert model_env.seen == []


def test_a_playbook_with_a_request_in_words_is_planned_once_per_run(
        model_env: ModelStub, tmp_path: Path, prefect_backend: None) -> None:
    data = _input(tmp_path)
    playbook = tmp_path / "words.yaml"
    playbook.write_text(f"name: words\nrequest: {json.dumps(FREE_TEXT)}\npolicy:\n  thresholds: {{industry: 0.65}}\n")
    from flows.run_request import preflight

    checked = preflight(str(playbook), str(data))  # what the CLI does before the flow: the same plan
    state, report = run_flow(data, playbook=str(playbook))
    assert state.is_completed()
    assert_conserved(report, 30)
    assert report["plan_hash"] == checked["plan"].hash
    assert sum(_answer_tool(s) == "submit_plan" for s in model_env.seen) == 1
    kept = store().plan_conversations_for()
    assert [k["status"] for k in kept] == ["accepted"]
    # The API key reaches the provider and nothing else: not the store, not the audit trail.
    import sqlalchemy as sa

    with store().engine.connect() as connection:
        for table in ("runs", "plans", "audit_events", "plan_conversations", "llm_usage"):
            rows = connection.execute(sa.text(f"SELECT * FROM {table}")).fetchall()
            assert "test-key" not in repr(rows), table
    assert model_env.seen[0].headers["authorization"] == "Bearer test-key"


def test_the_api_key_can_come_from_a_prefect_secret_block(prefect_backend: None) -> None:
    from prefect.blocks.system import Secret

    from airlock.orchestration import read_secret

    Secret(value="sk-from-block").save("airlock-test-llm-key", overwrite=True)
    assert read_secret("airlock-test-llm-key") == "sk-from-block"


def test_a_pinned_model_plan_without_a_model_configured_is_one_clear_line(
        airlock_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from airlock.plan import DatasetSpec, Plan
    from airlock.playbook import Playbook, dump_playbook
    from tests.unit.llm.planning_helpers import COLUMNS

    answer = good()
    plan = Plan(request=FREE_TEXT, dataset=DatasetSpec(name="accounts", columns=COLUMNS), steps=answer["steps"],
                proposes=answer["proposes"], writes=answer["writes"])
    pinned = tmp_path / "pinned.yaml"
    pinned.write_text(dump_playbook(Playbook(name="p", input=str(_input(tmp_path)), plan=plan, plan_hash=plan.hash)))
    assert main(["run", str(pinned)]) == 2
    err = capsys.readouterr().err.strip()
    assert "classify_industry_llm" in err and "AIRLOCK_PLANNER" in err and "Traceback" not in err
