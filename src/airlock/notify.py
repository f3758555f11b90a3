"""Telling people: Slack-compatible webhook notices, retried, never blocking the caller.

A run that starts waiting for review, a run found crashed, a dead-letter queue that grows past its
threshold: each becomes a ``Notice`` posted to every webhook in ``Settings.webhooks``. Posting runs
in a background thread through ``airlock.retry`` so a slow or broken webhook never holds a run; a
notice that still fails is logged and dropped (the audit trail holds the event itself).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from airlock.errors import InfrastructureError, TransientToolError
from airlock.retry import RetryPolicy, call_with_retry

log = logging.getLogger("airlock.notify")

WEBHOOK_RETRY = RetryPolicy(attempts=4, base_delay=0.5, max_delay=10.0)


@dataclass(frozen=True)
class Notice:
    """One thing worth telling people about, shaped so any chat webhook can render it."""

    event: str  # review.waiting | run.crashed | deadletters.growing | ...
    title: str
    fields: dict[str, Any] = field(default_factory=dict)
    link: str | None = None

    def payload(self) -> dict[str, Any]:
        """Slack-compatible JSON: ``text`` for simple receivers, ``blocks`` for rich ones, and the raw
        ``airlock`` object for programs."""
        lines = [f"*{self.title}*"] + [f"• {name}: {value}" for name, value in self.fields.items()]
        if self.link:
            lines.append(f"<{self.link}|Open in Airlock>")
        text = "\n".join(lines)
        return {
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
            "airlock": {"event": self.event, "title": self.title, "fields": self.fields, "link": self.link},
        }


class Notifier(Protocol):
    def notify(self, notice: Notice) -> None: ...


class NullNotifier:
    """For runs with no webhooks configured."""

    def notify(self, notice: Notice) -> None:
        return None


class WebhookNotifier:
    """Posts each notice to every URL, in the background, through the shared retry policy."""

    def __init__(self, urls: Sequence[str], *, timeout: float = 5.0, policy: RetryPolicy = WEBHOOK_RETRY) -> None:
        self.urls = list(urls)
        self.timeout = timeout
        self.policy = policy
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="airlock-notify")
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()

    def notify(self, notice: Notice) -> None:
        payload = notice.payload()
        with self._lock:
            self._pending = [f for f in self._pending if not f.done()]
            for url in self.urls:
                self._pending.append(self._pool.submit(self._deliver, url, payload, notice.event))

    def flush(self, timeout: float = 30.0) -> None:
        """Wait for notices in flight; a CLI calls this before it exits so nothing is cut off."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            # Failures are already logged in _deliver; flushing must not raise.
            with contextlib.suppress(Exception):
                future.result(timeout=timeout)

    def _deliver(self, url: str, payload: dict[str, Any], event: str) -> None:
        try:
            call_with_retry(lambda: self._post(url, payload), self.policy)
        except Exception as error:  # noqa: BLE001 - a notice must never break the run that sent it
            log.warning("webhook %s: %s not delivered: %s", _redact(url), event, error)

    def _post(self, url: str, payload: dict[str, Any]) -> None:
        try:
            response = httpx.post(url, json=payload, timeout=self.timeout)
        except httpx.TransportError as error:
            raise InfrastructureError(f"webhook unreachable: {type(error).__name__}") from error
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientToolError(f"webhook answered {response.status_code}",
                                     retry_after=_retry_after(response.headers.get("retry-after")))
        if response.status_code >= 400:
            # A 4xx other than 429 will not get better by retrying (wrong URL, revoked hook).
            raise InfrastructureError(f"webhook refused the notice: {response.status_code}", retryable=False)


def notifier_for(urls: Sequence[str]) -> Notifier:
    return WebhookNotifier(urls) if urls else NullNotifier()


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _redact(url: str) -> str:
    # Webhook URLs carry their secret in the path: log the host only.
    return httpx.URL(url).host or "webhook"
