"""Webhook notices: delivered as Slack-compatible JSON, retried through airlock.retry, never raising."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airlock.notify import Notice, NullNotifier, WebhookNotifier, notifier_for
from airlock.retry import RetryPolicy
from tests.fakes.webhook import WebhookStub


@pytest.fixture
def hook() -> Iterator[WebhookStub]:
    stub = WebhookStub()
    yield stub
    stub.close()


FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


def test_notice_is_slack_compatible(hook: WebhookStub) -> None:
    notifier = WebhookNotifier([hook.url], policy=FAST)
    notifier.notify(Notice("review.waiting", "Run r1 waits for review", {"items": 3}, link="http://x/review"))
    notifier.flush()
    [payload] = hook.received
    assert payload["text"].startswith("*Run r1 waits for review*")
    assert "items: 3" in payload["text"]
    assert payload["blocks"][0]["type"] == "section"
    assert payload["airlock"]["event"] == "review.waiting"


def test_retries_429_and_500_then_delivers(hook: WebhookStub) -> None:
    hook.answers = [429, 503]
    notifier = WebhookNotifier([hook.url], policy=FAST)
    notifier.notify(Notice("run.crashed", "Run r2 crashed"))
    notifier.flush()
    assert len(hook.received) == 3


def test_a_refusing_or_dead_webhook_never_raises(hook: WebhookStub) -> None:
    hook.answers = [404]
    notifier = WebhookNotifier([hook.url, "http://127.0.0.1:9/nothing-listens"], policy=FAST, timeout=0.5)
    notifier.notify(Notice("run.crashed", "Run r3 crashed"))
    notifier.flush()
    assert len(hook.received) == 1  # a 404 is not retried


def test_no_webhooks_means_no_notifier() -> None:
    assert isinstance(notifier_for([]), NullNotifier)
