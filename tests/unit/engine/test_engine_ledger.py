"""The effects ledger against a real store and an in-memory business system that keeps applied keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict

from airlock.errors import InfrastructureError, TransientToolError
from airlock.ledger import CommitItem, commit, idempotency_key, write_inputs
from airlock.plan import Plan, Write
from airlock.registry import SideEffect, ToolRegistry, ToolSpec, tool
from airlock.store import Store
from airlock.validation import values_hash

RUN = "run-1"


class AccountUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_key: str
    values_hash: str
    account_id: str
    country_code: str | None = None
    phone_e164: str | None = None


class UpdateResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str
    status: Literal["applied", "duplicate", "unchanged"]


class FakeCrm:
    """A business system that records applied idempotency keys with the write, like the real CRM."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.applied: dict[str, str] = {}  # key -> account id
        self.received: list[AccountUpdate] = []
        self.batches: list[list[str]] = []
        self.down_for = 0  # calls that fail before anything is applied
        self.lose_responses = 0  # calls that apply, then fail to answer

    def spec(self, acts_on: Callable[[dict[str, Any]], bool] | None = None) -> ToolSpec[Any, Any]:
        crm = self

        @tool(effect=SideEffect.WRITE, batched=True, name="crm_write", acts_on=acts_on)
        def crm_write(updates: list[AccountUpdate]) -> list[UpdateResult]:
            """Writes country codes and phone numbers to the CRM; idempotent by key."""
            crm.batches.append([u.account_id for u in updates])
            crm.received += updates
            if crm.down_for:
                crm.down_for -= 1
                raise InfrastructureError("crm unreachable")
            results = []
            for update in updates:
                values = update.model_dump(exclude={"idempotency_key", "values_hash", "account_id"})
                if update.idempotency_key in crm.applied:
                    status = "duplicate"
                elif crm.rows.get(update.account_id) == values:
                    status = "unchanged"
                    crm.applied[update.idempotency_key] = update.account_id
                else:
                    status = "applied"
                    crm.rows[update.account_id] = values
                    crm.applied[update.idempotency_key] = update.account_id
                results.append(UpdateResult(account_id=update.account_id, status=status))
            if crm.lose_responses:
                crm.lose_responses -= 1
                raise TransientToolError("connection reset before the answer")
            return results

        return crm_write


@pytest.fixture
def crm() -> FakeCrm:
    return FakeCrm()


@pytest.fixture
def write_registry(crm: FakeCrm) -> ToolRegistry:
    return ToolRegistry([crm.spec()])


@pytest.fixture
def plan(plan_body: dict[str, Any]) -> Plan:
    return Plan.model_validate(plan_body)


def items(values: dict[str, str | None]) -> list[CommitItem]:
    """One commit item per account: its country code as proposed, and a phone number derived from it."""
    return [
        CommitItem(record_id=rid, record={"id": rid, "country": "x"},
                   after={"country_code": code, "phone_e164": f"+49{rid[-1]}00" if code else None})
        for rid, code in values.items()
    ]


ITEMS = {"A1": "DE", "A2": "FR", "A3": None}


def test_commit_writes_each_record_once_with_its_key(store: Store, plan: Plan, write_registry: ToolRegistry,
                                                     crm: FakeCrm, sleeps: list[float]) -> None:
    result = commit(store, plan, write_registry, RUN, items(ITEMS), sleep=sleeps.append)

    assert result.outcomes == {"A1": "written", "A2": "written", "A3": "written"}
    assert result.conflicts == [] and result.duplicates_prevented == 0
    assert crm.batches == [["A1", "A2", "A3"]]
    assert crm.rows["A1"] == {"country_code": "DE", "phone_e164": "+49100"}
    assert crm.rows["A3"] == {"country_code": None, "phone_e164": None}
    write = plan.writes[0]
    for update in crm.received:
        rid = update.account_id
        assert update.idempotency_key == idempotency_key(RUN, plan.hash, write, rid)
        sent = write_inputs(write, {"id": rid}, items(ITEMS)[int(rid[-1]) - 1].after)
        assert update.values_hash == values_hash(sent)
    effects = {e["record_id"]: e for e in store.effects_for(RUN)}
    assert {rid: (e["status"], e["attempts"], e["write_id"], e["target"], e["tool"]) for rid, e in effects.items()} == {
        rid: ("applied", 1, "crm", "crm", "crm_write") for rid in ITEMS}
    assert store.effect_counts(RUN) == {"crm": {"applied": 3}}


def test_a_second_commit_of_the_same_items_sends_nothing(store: Store, plan: Plan, write_registry: ToolRegistry,
                                                         crm: FakeCrm, sleeps: list[float]) -> None:
    commit(store, plan, write_registry, RUN, items(ITEMS), sleep=sleeps.append)
    again = commit(store, plan, write_registry, RUN, items(ITEMS), sleep=sleeps.append)
    assert crm.batches == [["A1", "A2", "A3"]]  # nothing was sent the second time
    assert again.duplicates_prevented == 3
    assert again.outcomes == {"A1": "written", "A2": "written", "A3": "written"}
    assert len(crm.applied) == 3
    assert store.effect_counts(RUN) == {"crm": {"applied": 3}}  # one effect per key, however often committed


def test_the_same_key_with_other_values_is_a_conflict(store: Store, plan: Plan, write_registry: ToolRegistry,
                                                      crm: FakeCrm, sleeps: list[float]) -> None:
    commit(store, plan, write_registry, RUN, items(ITEMS), sleep=sleeps.append)
    changed = commit(store, plan, write_registry, RUN, items({**ITEMS, "A2": "BE"}), sleep=sleeps.append)
    assert changed.conflicts == ["A2"]
    assert "A2" not in changed.outcomes
    assert changed.duplicates_prevented == 2
    assert crm.rows["A2"]["country_code"] == "FR"  # never overwritten
    assert crm.batches == [["A1", "A2", "A3"]]


def test_a_write_that_says_which_records_it_acts_on_neither_records_nor_sends_the_others(
    store: Store, plan: Plan, crm: FakeCrm, sleeps: list[float]
) -> None:
    registry = ToolRegistry([crm.spec(acts_on=lambda values: values["country_code"] is not None)])
    result = commit(store, plan, registry, RUN, items(ITEMS), sleep=sleeps.append)

    assert crm.batches == [["A1", "A2"]]
    assert result.outcomes == {"A1": "written", "A2": "written", "A3": "unchanged"}
    assert {e["record_id"] for e in store.effects_for(RUN)} == {"A1", "A2"}  # no key, no row for A3
    assert store.effect_counts(RUN) == {"crm": {"applied": 2}}

    again = commit(store, plan, registry, RUN, items(ITEMS), sleep=sleeps.append)
    assert crm.batches == [["A1", "A2"]]  # nothing sent twice, nothing sent for A3
    assert again.outcomes == result.outcomes and again.duplicates_prevented == 2
    # A record the write comes to act on (its values changed) is written under its own key.
    now_de = commit(store, plan, registry, RUN, items({**ITEMS, "A3": "DE"}), sleep=sleeps.append)
    assert crm.batches[-1] == ["A3"] and now_de.outcomes["A3"] == "written" and now_de.conflicts == []
    assert commit(store, plan, registry, RUN, items(ITEMS), dry_run=True).outcomes == dict.fromkeys(
        ITEMS, "would_write")


def test_dry_run_writes_nothing(store: Store, plan: Plan, write_registry: ToolRegistry, crm: FakeCrm,
                                sleeps: list[float]) -> None:
    result = commit(store, plan, write_registry, RUN, items(ITEMS), dry_run=True, sleep=sleeps.append)
    assert result.outcomes == {"A1": "would_write", "A2": "would_write", "A3": "would_write"}
    assert crm.batches == [] and crm.rows == {}
    assert store.effects_for(RUN) == []


def test_a_lost_answer_is_retried_with_the_same_keys_and_nothing_applies_twice(
    store: Store, plan: Plan, write_registry: ToolRegistry, crm: FakeCrm, sleeps: list[float]
) -> None:
    crm.lose_responses = 1
    result = commit(store, plan, write_registry, RUN, items(ITEMS), sleep=sleeps.append)
    assert crm.batches == [["A1", "A2", "A3"], ["A1", "A2", "A3"]]
    first, second = crm.received[:3], crm.received[3:]
    assert [u.idempotency_key for u in first] == [u.idempotency_key for u in second]
    assert len(crm.applied) == 3
    assert result.outcomes == {"A1": "written", "A2": "written", "A3": "written"}
    assert result.duplicates_prevented == 3
    assert [a["error_type"] for a in result.attempts] == ["TransientToolError"] and len(sleeps) == 1
    assert {e["status"] for e in store.effects_for(RUN)} == {"duplicate"}


def test_an_exhausted_write_has_an_unknown_outcome_and_a_later_commit_resends_the_same_keys(
    store: Store, plan: Plan, write_registry: ToolRegistry, crm: FakeCrm, sleeps: list[float]
) -> None:
    crm.down_for = 100
    with pytest.raises(InfrastructureError, match="crm unreachable"):
        commit(store, plan, write_registry, RUN, items(ITEMS), sleep=sleeps.append)
    attempts = len(crm.batches)
    assert attempts == write_registry["crm_write"].policy.retry.attempts
    effects = store.effects_for(RUN)
    # A retryable error may come after the system applied the write: unknown, not failed.
    assert {e["status"] for e in effects} == {"unknown"}
    assert all(e["error"] == "InfrastructureError: crm unreachable" for e in effects)
    keys = {e["idempotency_key"] for e in effects}

    crm.down_for = 0
    result = commit(store, plan, write_registry, RUN, items(ITEMS), sleep=sleeps.append)
    assert result.outcomes == {"A1": "written", "A2": "written", "A3": "written"}
    assert {u.idempotency_key for u in crm.received[-3:]} == keys
    assert {e["status"] for e in store.effects_for(RUN)} == {"applied"}


def test_values_the_system_already_has_are_unchanged(store: Store, plan: Plan, write_registry: ToolRegistry,
                                                     crm: FakeCrm, sleeps: list[float]) -> None:
    crm.rows["A1"] = {"country_code": "DE", "phone_e164": "+49100"}
    result = commit(store, plan, write_registry, RUN, items(ITEMS), sleep=sleeps.append)
    assert result.outcomes == {"A1": "unchanged", "A2": "written", "A3": "written"}


def test_another_run_has_other_keys(plan: Plan) -> None:
    write = plan.writes[0]
    key = idempotency_key(RUN, plan.hash, write, "A1")
    assert key == idempotency_key(RUN, plan.hash, write, "A1") and len(key) == 40
    others = {
        idempotency_key("run-2", plan.hash, write, "A1"),
        idempotency_key(RUN, "other-plan", write, "A1"),
        idempotency_key(RUN, plan.hash, write, "A2"),
        idempotency_key(RUN, plan.hash, Write(id="crm", tool="crm_write", target="erp", inputs=write.inputs), "A1"),
        idempotency_key(RUN, plan.hash, Write(id="crm2", tool="crm_write", target="crm", inputs=write.inputs), "A1"),
    }
    assert key not in others and len(others) == 5


def test_write_inputs_resolve_record_proposal_and_literal_bindings() -> None:
    write = Write.model_validate({"id": "w", "tool": "t", "target": "crm", "inputs": {
        "account_id": "record.id", "country_code": "proposal.country_code", "source": {"literal": "airlock"},
        "city": "record.city"}})
    assert write_inputs(write, {"id": "A1", "city": ""}, {"country_code": "DE"}) == {
        "account_id": "A1", "country_code": "DE", "source": "airlock", "city": None}
