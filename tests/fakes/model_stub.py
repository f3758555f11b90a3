"""A local stub of two model APIs, for the real ``anthropic`` and ``openai`` SDKs: Anthropic's
Messages API (``POST /v1/messages``) and OpenAI's Chat Completions (``POST /v1/chat/completions``).

Replies are scripted in one neutral shape (``Reply``) and rendered in the wire format of the endpoint
called: tool calls, text, usage blocks with cache reads and writes, HTTP errors with retry-after,
malformed bodies and delays (for timeouts). A ``responder`` answers when the script is empty, so a
test can write a model that reacts to what it is sent (one that obeys injected instructions, say).
Binds 127.0.0.1 on a free port; never reaches the internet.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)  # (name, arguments: dict or raw text)
    text: str = ""
    input_tokens: int = 100
    output_tokens: int = 20
    cache_read: int = 0
    cache_write: int = 0
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # sent as is (a malformed body)
    delay: float = 0.0


@dataclass
class Seen:
    wire: str  # "anthropic" or "openai"
    headers: dict[str, str]
    body: dict[str, Any]

    def text(self) -> str:
        """Everything the model was sent, as one string (system, messages, tools)."""
        return json.dumps(self.body, ensure_ascii=False)


def tool_answer(name: str, arguments: Any, **usage: Any) -> Reply:
    return Reply(tool_calls=[(name, arguments)], **usage)


def error_reply(status: int, retry_after: float | None = None) -> Reply:
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    return Reply(status=status, headers=headers)


class ModelStub:
    def __init__(self, responder: Callable[[Seen], Reply] | None = None) -> None:
        self.script: deque[Reply] = deque()
        self.responder = responder
        self.seen: list[Seen] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = {}
                wire = "anthropic" if self.path.endswith("/messages") else "openai"
                seen = Seen(wire, {k.lower(): v for k, v in self.headers.items()}, body)
                reply = stub._next(seen)
                with stub._lock:
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                if reply.delay:
                    time.sleep(reply.delay)
                with stub._lock:
                    stub.in_flight -= 1
                payload = reply.body if reply.body is not None else json.dumps(stub._render(wire, reply, body))
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    data = payload.encode()
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up (a timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def add(self, *replies: Reply) -> ModelStub:
        self.script.extend(replies)
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _next(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            if self.script:
                return self.script.popleft()
        if self.responder is not None:
            return self.responder(seen)
        return Reply(status=500, body=json.dumps({"error": {"message": "the stub has no reply scripted"}}))

    def _render(self, wire: str, reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
        model = request.get("model", "stub-model")
        n = next(self._ids)
        if reply.status >= 400:
            kind = "rate_limit_error" if reply.status == 429 else "api_error"
            if wire == "anthropic":
                return {"type": "error", "error": {"type": kind, "message": f"stub HTTP {reply.status}"}}
            return {"error": {"message": f"stub HTTP {reply.status}", "type": kind, "code": None}}
        if wire == "anthropic":
            content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
            content += [{"type": "tool_use", "id": f"toolu_{n}_{i}", "name": name, "input": args}
                        for i, (name, args) in enumerate(reply.tool_calls)]
            return {
                "id": f"msg_{n}", "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": "tool_use" if reply.tool_calls else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                          "cache_creation_input_tokens": reply.cache_write,
                          "cache_read_input_tokens": reply.cache_read},
            }
        calls = [{"id": f"call_{n}_{i}", "type": "function",
                  "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
                 for i, (name, args) in enumerate(reply.tool_calls)]
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if calls:
            message["tool_calls"] = calls
        prompt = reply.input_tokens + reply.cache_read
        return {
            "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": reply.output_tokens,
                      "total_tokens": prompt + reply.output_tokens,
                      "prompt_tokens_details": {"cached_tokens": reply.cache_read}},
        }
