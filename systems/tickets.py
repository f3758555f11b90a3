"""The demo ticketing service: the second business system, reached over REST.

A small HTTP service (standard library only, so it ships with the project; tests start it in a
thread, the demo in a process of its own: ``systems.local_tickets``)
that keeps follow-up tickets for sales ops in its own SQLite file. It honours an ``Idempotency-Key``
header the way payment APIs do:

- ``POST /tickets`` with a key it has not seen opens a ticket (201), or, when the account already
  has an open ticket of that kind, answers with that one (200, ``"existing": true``); either way the
  key is recorded in the same transaction.
- The same key again with the same body answers the first result (200, ``"replayed": true``); with
  another body it is refused (422), because a key names one request.
- ``POST /tickets/batch`` with ``{"tickets": [{"idempotency_key": …, "account_id": …, …}, …]}`` does
  the same for each item in turn, each with its own key and transaction, and answers
  ``{"results": [{"status": code, "body": answer}, …]}`` in the same order: one round trip for a
  chunk's tickets. An item's key means what it means on a single POST, so the two can be mixed.
- ``DELETE /tickets/{id}`` with a key closes a ticket (compensation of an opened one).
- ``GET /tickets[?account_id=…]`` lists tickets; ``GET /health`` answers ok.

``faults`` (a ``Faults`` object the caller owns) lets tests and the demo inject failures at this edge:
answers of 429/503 with retry-after before the real work, a delay after a ticket is applied (so a
client times out although the server did the work), accounts refused with 422, and hooks called
when a request arrives and after it was applied (a hook that raises drops the connection unanswered).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_tickets_account ON tickets (account_id, kind, status);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""


@dataclass
class Faults:
    """Failures to inject, consumed in order. Thread-safe; tests change it while the service runs."""

    answers: list[tuple[int, float | None]] = field(default_factory=list)  # (status, retry-after) before work
    delay_after_apply: float = 0.0  # seconds to sleep after applying, before answering
    delay_times: int = 0  # how many requests get that delay
    refuse_accounts: set[str] = field(default_factory=set)  # answered 422, every time
    on_request: Callable[[str, dict[str, Any]], None] | None = None  # may raise: the request is dropped unapplied
    after_apply: Callable[[str, dict[str, Any]], None] | None = None  # may raise: applied, never answered
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> tuple[int, float | None] | None:
        with self.lock:
            return self.answers.pop(0) if self.answers else None

    def take_delay(self) -> float:
        with self.lock:
            if self.delay_times <= 0:
                return 0.0
            self.delay_times -= 1
            return self.delay_after_apply


class TicketStore:
    """The service's database: tickets and the idempotency keys it has answered."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            # WAL with synchronous=NORMAL: a committed ticket and its key survive the process being
            # killed (the fault tests do that); only a power cut could lose the last commits. Without
            # it every ticket waits for a full fsync.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)

    def _now(self) -> str:
        return datetime.now(UTC).isoformat()

    def remembered(self, key: str) -> tuple[str, int, dict[str, Any]] | None:
        row = self._db.execute("SELECT request_hash, status_code, response FROM idempotency_keys WHERE key = ?",
                               (key,)).fetchone()
        return (row[0], row[1], json.loads(row[2])) if row else None

    def open_ticket(self, key: str, request_hash: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Open (or find the open) ticket and record the key, in one transaction."""

        def apply() -> tuple[int, dict[str, Any]]:
            row = self._db.execute("SELECT id FROM tickets WHERE account_id = ? AND kind = ? AND status = 'open'",
                                   (body["account_id"], body["kind"])).fetchone()
            if row is not None:
                return 200, {**self._ticket(row[0]), "existing": True}
            cursor = self._db.execute(
                "INSERT INTO tickets (account_id, kind, subject, body, status, created_at) "
                "VALUES (?, ?, ?, ?, 'open', ?)",
                (body["account_id"], body["kind"], body["subject"], body.get("body", ""), self._now()))
            return 201, {**self._ticket(int(cursor.lastrowid or 0)), "existing": False}

        return self._keyed(key, request_hash, apply)

    def close_ticket(self, key: str, request_hash: str, ticket_id: int) -> tuple[int, dict[str, Any]]:
        def apply() -> tuple[int, dict[str, Any]]:
            if self._db.execute("SELECT 1 FROM tickets WHERE id = ?", (ticket_id,)).fetchone() is None:
                return 404, {"error": f"no ticket {ticket_id}"}
            self._db.execute("UPDATE tickets SET status = 'closed' WHERE id = ?", (ticket_id,))
            return 200, self._ticket(ticket_id)

        return self._keyed(key, request_hash, apply)

    def _keyed(self, key: str, request_hash: str,
               apply: Callable[[], tuple[int, dict[str, Any]]]) -> tuple[int, dict[str, Any]]:
        """One keyed request in one transaction: a key seen before is replayed; otherwise ``apply``
        runs and, when it succeeds, its answer is recorded under the key before the commit. A refusal
        (4xx) is rolled back and not recorded, so the same key may be sent again."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                known = self.remembered(key)
                if known is not None:
                    self._db.execute("ROLLBACK")
                    return self._replay(known, request_hash)
                code, answer = apply()
                if code >= 400:
                    self._db.execute("ROLLBACK")
                    return code, answer
                self._remember(key, request_hash, code, answer)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return code, answer

    def _replay(self, known: tuple[str, int, dict[str, Any]], request_hash: str) -> tuple[int, dict[str, Any]]:
        stored_hash, code, answer = known
        if stored_hash != request_hash:
            return 422, {"error": "this Idempotency-Key was used for a different request"}
        return (200 if code < 300 else code), {**answer, "replayed": True}

    def _remember(self, key: str, request_hash: str, code: int, answer: dict[str, Any]) -> None:
        self._db.execute("INSERT INTO idempotency_keys VALUES (?, ?, ?, ?, ?)",
                         (key, request_hash, code, json.dumps(answer), self._now()))

    def _ticket(self, ticket_id: int) -> dict[str, Any]:
        row = self._db.execute("SELECT id, account_id, kind, subject, status FROM tickets WHERE id = ?",
                               (ticket_id,)).fetchone()
        return dict(zip(("id", "account_id", "kind", "subject", "status"), row, strict=True))

    def count_created(self) -> int:
        """Keys whose request opened a ticket (201): with no duplicates, one per ticket."""
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM idempotency_keys WHERE status_code = 201").fetchone()
            return int(row[0])

    def tickets(self, account_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            query = "SELECT id FROM tickets" + (" WHERE account_id = ?" if account_id else "") + " ORDER BY id"
            ids = [r[0] for r in self._db.execute(query, (account_id,) if account_id else ())]
            return [self._ticket(i) for i in ids]


def _request_hash(method: str, body: dict[str, Any]) -> str:
    return hashlib.sha256(f"{method}\x1f{json.dumps(body, sort_keys=True)}".encode()).hexdigest()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a dropped connection (or an injected fault): the client sees it, the log need not


class TicketService:
    """The service on 127.0.0.1:``port`` (0: a free port), serving from a thread."""

    def __init__(self, db_path: str | Path, *, port: int = 0, faults: Faults | None = None) -> None:
        self.store = TicketStore(str(db_path))
        self.faults = faults or Faults()
        self._server = _Server(("127.0.0.1", port), _handler_for(self))
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="tickets", daemon=True)

    def start(self) -> TicketService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(service: TicketService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, the body waits for the client's
        # delayed ACK (~40 ms per request on keep-alive connections).
        disable_nagle_algorithm = True

        def log_message(self, *args: object) -> None:
            return None

        def _answer(self, code: int, body: dict[str, Any] | list[Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                value = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return {}
            return value if isinstance(value, dict) else {}

        def _injected(self, body: dict[str, Any]) -> bool:
            faults = service.faults
            if faults.on_request is not None:
                faults.on_request(f"{self.command} {self.path}", body)
            answer = faults.next_answer()
            if answer is None:
                return False
            code, retry_after = answer
            self._answer(code, {"error": "injected"},
                         {"retry-after": str(retry_after)} if retry_after is not None else None)
            return True

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/health":
                self._answer(200, {"ok": True})
            elif url.path == "/tickets":
                account = parse_qs(url.query).get("account_id", [None])[0]
                self._answer(200, service.store.tickets(account))
            else:
                self._answer(404, {"error": "not found"})

        def do_POST(self) -> None:
            body = self._body()
            path = urlparse(self.path).path
            if path not in ("/tickets", "/tickets/batch"):
                self._answer(404, {"error": "not found"})
                return
            if self._injected(body):
                return
            if path == "/tickets":
                code, answer = _open_one(self.headers.get("idempotency-key"), body)
                self._delay()
                self._answer(code, answer)
                return
            items = body.get("tickets")
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                self._answer(400, {"error": "a JSON object with a list of tickets is required"})
                return
            results = []
            for item in items:
                fields = {k: v for k, v in item.items() if k != "idempotency_key"}
                key = item.get("idempotency_key")
                code, answer = _open_one(key if isinstance(key, str) else None, fields)
                results.append({"status": code, "body": answer})
            self._delay()
            self._answer(200, {"results": results})

        def _delay(self) -> None:
            delay = service.faults.take_delay()
            if delay:
                time.sleep(delay)  # applied, but the client may give up first: an unknown outcome

        def do_DELETE(self) -> None:
            body = self._body()
            parts = urlparse(self.path).path.strip("/").split("/")
            if len(parts) != 2 or parts[0] != "tickets" or not parts[1].isdigit():
                self._answer(404, {"error": "not found"})
                return
            if self._injected(body):
                return
            key = self.headers.get("idempotency-key")
            if not key:
                self._answer(400, {"error": "Idempotency-Key header is required"})
                return
            code, answer = service.store.close_ticket(key, _request_hash(f"DELETE {parts[1]}", body), int(parts[1]))
            self._answer(code, answer)

    def _open_one(key: str | None, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        missing = [f for f in ("account_id", "kind", "subject") if not isinstance(body.get(f), str)]
        if not key or missing:
            return 400, {"error": "an idempotency key and account_id, kind, subject are required"}
        if body["account_id"] in service.faults.refuse_accounts:
            return 422, {"error": f"account {body['account_id']} cannot take tickets"}
        code, answer = service.store.open_ticket(key, _request_hash("POST", body), body)
        if service.faults.after_apply is not None:
            service.faults.after_apply(key, body)
        return code, answer

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the demo ticketing service")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--db", default="tickets.db")
    parser.add_argument("--until-stdin-closes", action="store_true",
                        help="stop when standard input closes: when the process that started it ends")
    args = parser.parse_args(argv)
    service = TicketService(args.db, port=args.port).start()
    print(f"tickets service on {service.url}", flush=True)
    try:
        if args.until_stdin_closes:
            sys.stdin.read()
        else:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    service.stop()


if __name__ == "__main__":
    main()
