"""``tickets_open``: open a follow-up ticket for sales ops in the ticketing service (REST), idempotently.

The second business system of the enrichment playbook. An account whose e-mail address is invalid
or whose phone number could not be normalised needs a person to find the right contact: it gets one
open ticket. A chunk's tickets go in batch requests (``POST /tickets/batch``, one round trip each);
every ticket in them carries the ledger's idempotency key, so a retry after a timeout (the service
may have opened some tickets before the answer was lost) is answered with the first results instead
of opening second tickets.

HTTP goes through ``httpx`` with a timeout, retries with full jitter and retry-after (``airlock.retry``),
and only to hosts on the allowlist from settings.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict

from airlock.errors import ConfigError, InfrastructureError, ToolInputError, TransientToolError
from airlock.registry import SideEffect, ToolSpec, tool
from airlock.retry import RetryPolicy, call_with_retry

TICKET_KIND = "contact-check"
# Tickets per batch request: one round trip per chunk's worth of tickets, bounded in size.
TICKETS_PER_REQUEST = 500
# Retries inside one call; the ledger and the commit task retry the batch again with the same keys.
HTTP_RETRY = RetryPolicy(attempts=6, base_delay=0.05, max_delay=2.0, jitter=True, honour_retry_after=True)


class TicketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_key: str
    values_hash: str
    account_id: str
    email_status: str | None = None
    phone_e164: str | None = None


class TicketResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str
    status: Literal["applied", "duplicate", "unchanged", "failed"]
    ticket_id: int | None = None
    error: str | None = None


def ticket_reason(email_status: str | None, phone_e164: str | None) -> str | None:
    """Why sales ops must look at an account, or None."""
    problems = []
    if email_status == "invalid":
        problems.append("the e-mail address is invalid")
    if phone_e164 is None:
        problems.append("the phone number could not be normalised")
    return " and ".join(problems) or None


def needs_ticket(values: dict[str, Any]) -> bool:
    """The records ``tickets_open`` acts on, from the values it would be sent: most accounts need no
    ticket, and the ledger need not record a write for each of them (``ToolSpec.acts_on``)."""
    return ticket_reason(values.get("email_status"), values.get("phone_e164")) is not None


class TicketClient:
    """The ticketing service at ``base_url``; refuses hosts that are not on ``allowed_hosts``."""

    def __init__(self, base_url: str | None, allowed_hosts: Sequence[str], *, timeout: float = 5.0,
                 retry: RetryPolicy = HTTP_RETRY) -> None:
        self.base_url = base_url
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.timeout = httpx.Timeout(timeout)
        self.retry = retry
        # One pooled client for the life of the tool: a new client per request builds a TLS context and
        # a connection each time, which cost more CPU than the whole rest of a run's commit phase.
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def _http(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout)
            return self._client

    def _url(self, path: str) -> str:
        if not self.base_url:
            raise ConfigError("the ticketing service is not configured: set AIRLOCK_TICKETS_URL")
        url = httpx.URL(self.base_url.rstrip("/") + path)
        if url.host.lower() not in self.allowed_hosts:
            raise ConfigError(f"host {url.host!r} is not on the allowlist (AIRLOCK_HTTP_ALLOWED_HOSTS)")
        return str(url)

    def open_tickets(self, items: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
        """POST /tickets/batch: many tickets in one round trip, each with its own key; (status code,
        JSON) per item, in order. The whole request is retried with the same keys, so items the
        service applied before an answer was lost come back as replays, never as second tickets."""
        if not items:
            return []
        url = self._url("/tickets/batch")
        body = {"tickets": [{"idempotency_key": key, **fields} for key, fields in items]}
        code, answer = call_with_retry(lambda: self._post(url, body), self.retry)
        results = answer.get("results")
        if code != 200 or not isinstance(results, list) or len(results) != len(items):
            raise ToolInputError(f"ticketing service answered the batch with {code}: {str(answer)[:200]}")
        return [(int(r.get("status", 0)), r.get("body") or {}) for r in results]

    def _post(self, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            response = self._http().post(url, json=body)
        except httpx.TimeoutException as error:
            # The service may have opened the ticket before the answer was lost: the outcome is
            # unknown, and only a retry with the same key can tell.
            raise TransientToolError(f"ticketing service timed out ({type(error).__name__}); outcome unknown") \
                from error
        except httpx.TransportError as error:
            raise InfrastructureError(f"ticketing service unreachable: {type(error).__name__}: {error}") from error
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientToolError(f"ticketing service answered {response.status_code}",
                                     retry_after=_seconds(response.headers.get("retry-after")))
        try:
            payload = response.json()
        except ValueError as error:
            raise ToolInputError(f"ticketing service answered {response.status_code} without JSON") from error
        return response.status_code, payload if isinstance(payload, dict) else {}


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def make_tickets_open(client: TicketClient) -> ToolSpec[Any, Any]:
    """The ticket write tool bound to one ticketing service."""

    @tool(effect=SideEffect.WRITE, version="1", batched=True, acts_on=needs_ticket)
    def tickets_open(requests: list[TicketRequest]) -> list[TicketResult]:
        """Open one follow-up ticket for sales ops per account whose e-mail is invalid or whose phone
        could not be normalised (accounts that need neither are reported unchanged). Idempotent: each
        ticket carries its own key (many tickets go in one batch request); a key the service has answered before is
        reported duplicate, and an account that already has an open ticket is reported unchanged.
        A request the service refuses (4xx) is reported failed for that account alone."""
        results: list[TicketResult | None] = []
        to_open: list[tuple[int, str, dict[str, Any]]] = []  # (position, key, body)
        for request in requests:
            reason = ticket_reason(request.email_status, request.phone_e164)
            if reason is None:
                results.append(TicketResult(account_id=request.account_id, status="unchanged"))
                continue
            body = {"account_id": request.account_id, "kind": TICKET_KIND,
                    "subject": f"Check the contact details of account {request.account_id}: {reason}"}
            to_open.append((len(results), request.idempotency_key, body))
            results.append(None)
        for start in range(0, len(to_open), TICKETS_PER_REQUEST):
            part = to_open[start:start + TICKETS_PER_REQUEST]
            answers = client.open_tickets([(key, body) for _, key, body in part])
            for (position, _, body), (code, answer) in zip(part, answers, strict=True):
                results[position] = _result(body["account_id"], code, answer)
        return [r for r in results if r is not None]

    return tickets_open


def _result(account_id: str, code: int, answer: dict[str, Any]) -> TicketResult:
    ticket_id = answer.get("id") if isinstance(answer.get("id"), int) else None
    if code >= 400:
        return TicketResult(account_id=account_id, status="failed", error=f"{code}: {answer.get('error', '')}"[:300])
    if answer.get("replayed"):
        return TicketResult(account_id=account_id, status="duplicate", ticket_id=ticket_id)
    if answer.get("existing"):
        return TicketResult(account_id=account_id, status="unchanged", ticket_id=ticket_id)
    return TicketResult(account_id=account_id, status="applied", ticket_id=ticket_id)
