"""A stub chat webhook (Slack-compatible receiver) on 127.0.0.1: it keeps every notice it receives and
answers with the status codes a test queues (429s carry ``retry-after: 0``), then 200."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookStub:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answers: list[int] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                stub.received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                status = stub.answers.pop(0) if stub.answers else 200
                self.send_response(status)
                if status == 429:
                    self.send_header("retry-after", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        # The secret part of a real webhook URL is its path; logs must show the host only.
        self.url = f"http://127.0.0.1:{self._server.server_port}/hooks/secret"

    def events(self) -> list[str]:
        return [notice["airlock"]["event"] for notice in self.received]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
