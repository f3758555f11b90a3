"""A multi-system update through the ledger: a write refused half way compensates the earlier ones with
their before-images (kept in the ledger), a compensation that fails is dead-lettered, a replay writes
again under a new key, and an external write with an unknown outcome goes to review."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict

from airlock.errors import InfrastructureError, TransientToolError
from airlock.ledger import CommitItem, commit, retry_compensation
from airlock.plan import Plan
from airlock.registry import SideEffect, ToolRegistry, ToolSpec, tool
from airlock.store import Store
from tests.unit.engine.conftest import new_run

RUN = "run-c"


class Update(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_key: str
    values_hash: str
    account_id: str
    country_code: str | None = None


class UpdateResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str
    status: Literal["applied", "duplicate", "unchanged", "failed"]
    before: dict[str, str | None] | None = None
    error: str | None = None


class System:
    """A business system keyed by idempotency key, reporting before-images; ``refuse`` answers failed
    for those accounts, ``down`` raises for every call."""

    def __init__(self, name: str, effect: SideEffect = SideEffect.WRITE) -> None:
        self.name, self.effect = name, effect
        self.rows: dict[str, str | None] = {}
        self.keys: set[str] = set()
        self.calls = 0
        self.refuse: set[str] = set()
        self.down = False
        self.timeout = False
        self.then: Any = None  # called after each answer: what happens elsewhere meanwhile

    def spec(self) -> ToolSpec[Any, Any]:
        system = self

        @tool(effect=self.effect, batched=True, name=self.name)
        def write(updates: list[Update]) -> list[UpdateResult]:
            """Writes country codes; idempotent by key; reports what it replaced."""
            system.calls += 1
            if system.down:
                raise InfrastructureError(f"{system.name} unreachable", retryable=False)
            results = []
            for update in updates:
                if update.account_id in system.refuse:
                    results.append(UpdateResult(account_id=update.account_id, status="failed", error="refused"))
                elif update.idempotency_key in system.keys:
                    results.append(UpdateResult(account_id=update.account_id, status="duplicate"))
                else:
                    before = {"country_code": system.rows.get(update.account_id)}
                    system.rows[update.account_id] = update.country_code
                    system.keys.add(update.idempotency_key)
                    results.append(UpdateResult(account_id=update.account_id, status="applied", before=before))
            if system.then is not None:
                system.then()
            if system.timeout:
                raise TransientToolError(f"{system.name} timed out after applying")
            return results

        return write


def plan_for(*writes: tuple[str, str]) -> Plan:
    return Plan.model_validate({
        "request": "fill country_code and write it to two systems",
        "dataset": {"name": "accounts", "columns": ["id", "country"]},
        "steps": [{"id": "country", "tool": "clean_country", "inputs": {"country": "record.country"}}],
        "proposes": {"country_code": "steps.country.country_code"},
        "writes": [{"id": wid, "tool": name, "target": wid,
                    "inputs": {"account_id": "record.id", "country_code": "proposal.country_code"}}
                   for wid, name in writes],
        "policy": {"approvals": [wid for wid, name in writes if name.startswith("external")]},
    })


def items(*ids: str) -> list[CommitItem]:
    return [CommitItem(rid, {"id": rid, "country": "x"}, {"country_code": "DE"}) for rid in ids]


@pytest.fixture(autouse=True)
def _run(store: Store) -> None:
    new_run(store, RUN)


@pytest.fixture
def systems() -> tuple[System, System]:
    crm, tickets = System("crm_write"), System("ticket_write")
    crm.rows = {"A1": "FR", "A2": None, "A3": "IT"}
    return crm, tickets


def test_a_refused_second_write_compensates_the_first_from_its_before_image(
    store: Store, systems: tuple[System, System]
) -> None:
    crm, tickets = systems
    registry = ToolRegistry([crm.spec(), tickets.spec()])
    plan = plan_for(("crm", "crm_write"), ("tickets", "ticket_write"))
    tickets.refuse = {"A2"}
    result = commit(store, plan, registry, RUN, items("A1", "A2", "A3"), sleep=lambda _: None)
    assert result.outcomes == {"A1": "written", "A2": "dead_lettered", "A3": "written"}
    assert result.compensated == 1
    assert crm.rows == {"A1": "DE", "A2": None, "A3": "DE"}  # A2 is back as it was
    effects = {(e["record_id"], e["write_id"]): e for e in store.effects_for(RUN)}
    original = effects[("A2", "crm")]
    assert original["status"] == "compensated" and original["before_image"] == {"country_code": None}
    undo = effects[("A2", "crm~compensate")]
    assert undo["status"] == "applied" and undo["compensates"] == original["idempotency_key"]
    assert effects[("A2", "tickets")]["status"] == "refused"
    [letter] = store.dead_letters_for(run_id=RUN)
    assert letter["record_ids"] == ["A2"] and letter["stage"] == "commit" and letter["step_id"] == "tickets"
    assert any(e["kind"] == "effect.compensated" for e in store.audit_trail(RUN))

    # A commit of the same items again leaves the refused record alone: it waits in the queue.
    calls = crm.calls
    again = commit(store, plan, registry, RUN, items("A1", "A2", "A3"), sleep=lambda _: None)
    assert "A2" not in again.outcomes and crm.calls == calls

    # The replay, once the ticketing system takes it: the CRM is written again under a new key.
    tickets.refuse = set()
    replay = commit(store, plan, registry, RUN, items("A2"), retry_refused=True, sleep=lambda _: None)
    assert replay.outcomes == {"A2": "written"}
    assert crm.rows["A2"] == "DE" and tickets.rows["A2"] == "DE"
    redo = [e for e in store.effects_for(RUN) if e["record_id"] == "A2" and e["write_id"] == "crm"]
    assert sorted(e["status"] for e in redo) == ["applied", "compensated"]
    assert [e["supersedes"] for e in redo if e["status"] == "applied"] == [original["idempotency_key"]]


def test_a_compensation_that_fails_goes_to_the_dead_letter_queue(store: Store, systems: tuple[System, System]) -> None:
    crm, tickets = systems
    registry = ToolRegistry([crm.spec(), tickets.spec()])
    plan = plan_for(("crm", "crm_write"), ("tickets", "ticket_write"))
    tickets.refuse = {"A1"}
    # The CRM goes down between the write and its compensation.
    tickets.then = lambda: setattr(crm, "down", True)
    result = commit(store, plan, registry, RUN, items("A1"), sleep=lambda _: None)
    assert result.outcomes == {"A1": "dead_lettered"} and result.compensated == 0
    assert crm.rows["A1"] == "DE"  # not undone yet, and the ledger says so
    letters = {letter["stage"]: letter for letter in store.dead_letters_for(run_id=RUN)}
    assert set(letters) == {"commit", "compensate"}
    comp = letters["compensate"]
    assert comp["payload"]["before_image"] == {"country_code": "FR"} and comp["error_type"] == "InfrastructureError"
    effects = {e["write_id"]: e for e in store.effects_for(RUN)}
    assert effects["crm"]["status"] == "applied" and effects["crm~compensate"]["status"] == "failed"

    crm.down = False  # replaying the compensation letter undoes the write, once
    assert retry_compensation(store, registry, RUN, comp["payload"], "ops") == "compensated"
    assert crm.rows["A1"] == "FR"
    assert {e["write_id"]: e["status"] for e in store.effects_for(RUN)}["crm"] == "compensated"


def test_an_external_write_with_an_unknown_outcome_goes_to_review_and_is_never_resent(store: Store) -> None:
    sender = System("external_send", SideEffect.EXTERNAL)
    sender.timeout = True
    registry = ToolRegistry([sender.spec()])
    plan = plan_for(("send", "external_send"))
    result = commit(store, plan, registry, RUN, items("A1"), sleep=lambda _: None)
    assert result.unknown == ["A1"] and result.outcomes == {}
    assert sender.calls == 1  # never retried blindly
    assert store.effects_for(RUN)[0]["status"] == "unknown"
    sender.timeout = False
    again = commit(store, plan, registry, RUN, items("A1"), sleep=lambda _: None)
    assert again.unknown == ["A1"] and sender.calls == 1


def test_a_write_with_an_unknown_outcome_is_resent_with_the_same_key(store: Store) -> None:
    crm = System("crm_write")
    crm.timeout = True
    registry = ToolRegistry([crm.spec()])
    plan = plan_for(("crm", "crm_write"))
    with pytest.raises(TransientToolError):
        commit(store, plan, registry, RUN, items("A1"), sleep=lambda _: None)
    assert store.effects_for(RUN)[0]["status"] == "unknown"
    crm.timeout = False
    result = commit(store, plan, registry, RUN, items("A1"), sleep=lambda _: None)
    assert result.outcomes == {"A1": "written"} and result.duplicates_prevented == 1
    assert len(crm.keys) == 1
