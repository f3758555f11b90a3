"""Webhook notices: delivered as Slack-compatible JSON, retried through airlock.retry, never raising."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airlock.notify import Notice, NullNotifier, WebhookNotifier, notifier_for
from airlock.retry import RetryPolicy


class _Hook:
    def __init__(self, answers: list[int]) -> None:
        self.answers = answers
        self.received: list[dict] = []


@pytest.fixture
def hook() -> Iterator[tuple[_Hook, str]]:
    state = _Hook([])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            state.received.append(json.loads(body))
            status = state.answers.pop(0) if state.answers else 200
            self.send_response(status)
            if status == 429:
                self.send_header("retry-after", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_port}/hooks/secret"
    server.shutdown()


FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


def test_notice_is_slack_compatible(hook: tuple[_Hook, str]) -> None:
    state, url = hook
    notifier = WebhookNotifier([url], policy=FAST)
    notifier.notify(Notice("review.waiting", "Run r1 waits for review", {"items": 3}, link="http://x/review"))
    notifier.flush()
    [payload] = state.received
    assert payload["text"].startswith("*Run r1 waits for review*")
    assert "items: 3" in payload["text"]
    assert payload["blocks"][0]["type"] == "section"
    assert payload["airlock"]["event"] == "review.waiting"


def test_retries_429_and_500_then_delivers(hook: tuple[_Hook, str]) -> None:
    state, url = hook
    state.answers = [429, 503]
    notifier = WebhookNotifier([url], policy=FAST)
    notifier.notify(Notice("run.crashed", "Run r2 crashed"))
    notifier.flush()
    assert len(state.received) == 3


def test_a_refusing_or_dead_webhook_never_raises(hook: tuple[_Hook, str]) -> None:
    state, url = hook
    state.answers = [404]
    notifier = WebhookNotifier([url, "http://127.0.0.1:9/nothing-listens"], policy=FAST, timeout=0.5)
    notifier.notify(Notice("run.crashed", "Run r3 crashed"))
    notifier.flush()
    assert len(state.received) == 1  # a 404 is not retried


def test_no_webhooks_means_no_notifier() -> None:
    assert isinstance(notifier_for([]), NullNotifier)
