"""The ticket write tool against the real ticketing service (systems/tickets.py) on 127.0.0.1:
idempotency keys, retries with retry-after, timeouts after the service applied, the host allowlist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airlock.errors import ConfigError, TransientToolError
from airlock.registry import SideEffect, ToolSpec
from airlock.retry import RetryPolicy
from systems.tickets import TicketService
from tools.tickets import TICKETS_PER_REQUEST, TicketClient, make_tickets_open

FAST = RetryPolicy(attempts=4, base_delay=0.0, max_delay=0.05, jitter=True, honour_retry_after=True)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[TicketService]:
    running = TicketService(tmp_path / "tickets.db").start()
    yield running
    running.stop()


def tool_for(service: TicketService, *, timeout: float = 5.0, retry: RetryPolicy = FAST) -> ToolSpec[Any, Any]:
    return make_tickets_open(TicketClient(service.url, ["127.0.0.1"], timeout=timeout, retry=retry))


def request(account: str, key: str, email_status: str = "invalid") -> dict[str, Any]:
    return {"idempotency_key": key, "values_hash": f"h-{key}", "account_id": account,
            "email_status": email_status, "phone_e164": "+4930123456"}


def test_contract() -> None:
    spec = make_tickets_open(TicketClient(None, []))
    assert spec.effect is SideEffect.WRITE and spec.batched
    assert set(spec.requires) == {"account_id", "email_status", "phone_e164"}
    # The ledger leaves the accounts it would answer "unchanged" for alone: only broken contacts.
    assert spec.acts_on is not None
    assert [spec.acts_on({"account_id": "A1", "email_status": status, "phone_e164": phone})
            for status, phone in [("valid", "+4930123456"), ("invalid", "+4930123456"), ("valid", None),
                                  ("unknown", "+4930123456"), (None, "+4930123456")]] == [
        False, True, True, False, False]


def test_opens_one_ticket_per_key_and_answers_a_repeated_key_duplicate(service: TicketService) -> None:
    tool = tool_for(service)
    first = tool.call_batch([request("A1", "k1"), request("A2", "k2", email_status="valid")])
    assert [(r.status, r.ticket_id is not None) for r in first] == [("applied", True), ("unchanged", False)]
    again = tool.call_batch([request("A1", "k1")])
    assert again[0].status == "duplicate" and again[0].ticket_id == first[0].ticket_id
    # Another run (another key) for an account with an open ticket of that kind opens no second one.
    assert tool.call_batch([request("A1", "k3")])[0].status == "unchanged"
    assert len(service.store.tickets("A1")) == 1 and service.store.tickets("A2") == []


def test_a_key_reused_with_another_body_is_refused(service: TicketService) -> None:
    tool = tool_for(service)
    tool.call_batch([request("A1", "k1")])
    refused = tool.call_batch([request("A9", "k1")])[0]
    assert refused.status == "failed" and refused.error and refused.error.startswith("422")
    assert service.store.tickets("A9") == []


def test_a_storm_of_429_and_503_is_ridden_out_with_retry_after(service: TicketService) -> None:
    service.faults.answers = [(429, 0.01), (503, 0.01), (429, None)]
    result = tool_for(service).call_batch([request("A1", "k1")])[0]
    assert result.status == "applied"
    assert service.faults.answers == [] and len(service.store.tickets("A1")) == 1


def test_a_storm_longer_than_the_retries_raises_a_retryable_error(service: TicketService) -> None:
    service.faults.answers = [(503, 0.0)] * 10
    with pytest.raises(TransientToolError) as caught:
        tool_for(service).call_batch([request("A1", "k1")])
    assert caught.value.retryable
    assert service.store.tickets("A1") == []


def test_a_timeout_after_the_service_applied_is_retried_with_the_same_key(service: TicketService) -> None:
    service.faults.delay_after_apply, service.faults.delay_times = 1.0, 1
    result = tool_for(service, timeout=0.3).call_batch([request("A1", "k1")])[0]
    # The first answer was lost; the retry carried the same key and got the first ticket back.
    assert result.status == "duplicate"
    assert len(service.store.tickets("A1")) == 1


def test_refused_accounts_fail_alone(service: TicketService) -> None:
    service.faults.refuse_accounts = {"A2"}
    results = tool_for(service).call_batch([request("A1", "k1"), request("A2", "k2"), request("A3", "k3")])
    assert [r.status for r in results] == ["applied", "failed", "applied"]


def test_hosts_off_the_allowlist_and_a_missing_url_are_config_errors(service: TicketService) -> None:
    with pytest.raises(ConfigError, match="allowlist"):
        make_tickets_open(TicketClient(service.url.replace("127.0.0.1", "localhost"), ["127.0.0.1"])).call_batch(
            [request("A1", "k1")])
    with pytest.raises(ConfigError, match="AIRLOCK_TICKETS_URL"):
        make_tickets_open(TicketClient(None, ["127.0.0.1"])).call_batch([request("A1", "k1")])


def test_the_service_requires_an_idempotency_key(service: TicketService) -> None:
    answer = httpx.post(f"{service.url}/tickets", json={"account_id": "A1", "kind": "k", "subject": "s"})
    assert answer.status_code == 400


def test_a_chunks_tickets_go_in_few_round_trips_and_come_back_in_order(service: TicketService) -> None:
    posts: list[int] = []
    service.faults.on_request = lambda line, body: posts.append(len(body.get("tickets", [None])))
    requests = [request(f"A{i}", f"k{i}", email_status="valid" if i % 3 == 0 else "invalid") for i in range(1200)]
    results = tool_for(service).call_batch(requests)
    assert [r.account_id for r in results] == [f"A{i}" for i in range(1200)]
    assert [r.status for r in results] == ["unchanged" if i % 3 == 0 else "applied" for i in range(1200)]
    assert posts == [500, 300] and TICKETS_PER_REQUEST == 500  # 800 tickets to open, two requests
    assert service.store.count_created() == 800


def test_a_batch_whose_answer_was_lost_is_retried_whole_and_opens_nothing_twice(service: TicketService) -> None:
    service.faults.delay_after_apply, service.faults.delay_times = 1.0, 1
    results = tool_for(service, timeout=0.3).call_batch([request("A1", "k1"), request("A2", "k2")])
    assert [r.status for r in results] == ["duplicate", "duplicate"]
    assert service.store.count_created() == 2


def test_a_key_means_the_same_on_a_single_post_and_in_a_batch(service: TicketService) -> None:
    single = httpx.post(f"{service.url}/tickets", headers={"Idempotency-Key": "k1"},
                        json={"account_id": "A1", "kind": "contact-check",
                              "subject": "Check the contact details of account A1: the e-mail address is invalid"})
    assert single.status_code == 201
    assert tool_for(service).call_batch([request("A1", "k1")])[0].status == "duplicate"


def test_the_batch_endpoint_refuses_bad_bodies_whole_and_bad_items_alone(service: TicketService) -> None:
    assert httpx.post(f"{service.url}/tickets/batch", json={"tickets": "no"}).status_code == 400
    answer = httpx.post(f"{service.url}/tickets/batch", json={"tickets": [
        {"account_id": "A1", "kind": "k", "subject": "s"},
        {"idempotency_key": "k2", "account_id": "A2", "kind": "k", "subject": "s"}]})
    assert answer.status_code == 200
    assert [r["status"] for r in answer.json()["results"]] == [400, 201]


def test_closing_a_ticket_is_keyed_and_an_unknown_ticket_records_no_key(service: TicketService) -> None:
    opened = tool_for(service).call_batch([request("A1", "k1")])[0]
    missing = httpx.delete(f"{service.url}/tickets/999", headers={"Idempotency-Key": "c1"})
    assert missing.status_code == 404
    closed = httpx.delete(f"{service.url}/tickets/{opened.ticket_id}", headers={"Idempotency-Key": "c1"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"  # the refused key was not kept
    again = httpx.delete(f"{service.url}/tickets/{opened.ticket_id}", headers={"Idempotency-Key": "c1"})
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert service.store.tickets("A1")[0]["status"] == "closed"
