"""systems.local_tickets: the demo ticketing service in a process of its own, ending with its starter."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from airlock.errors import InfrastructureError
from systems import local_tickets
from systems.local_tickets import start_local
from tools.tickets import TicketClient, make_tickets_open

PROJECT = Path(__file__).resolve().parents[3]


def test_the_service_runs_in_another_process_and_keeps_its_tickets(tmp_path: Path) -> None:
    url = start_local(tmp_path / "state" / "tickets.db")
    assert start_local(tmp_path / "state" / "tickets.db") == url  # one per process and file
    assert not any(thread.name == "tickets" for thread in threading.enumerate())
    tool = make_tickets_open(TicketClient(url, ["127.0.0.1"]))
    opened = tool.call_batch([{"idempotency_key": "k1", "values_hash": "h1", "account_id": "A-1",
                               "email_status": "invalid", "phone_e164": None}])
    assert opened[0].status == "applied"
    assert tool.call_batch([{"idempotency_key": "k1", "values_hash": "h1", "account_id": "A-1",
                             "email_status": "invalid", "phone_e164": None}])[0].status == "duplicate"
    assert (tmp_path / "state" / "tickets.db").exists()


def test_the_service_stops_when_the_process_that_started_it_ends(tmp_path: Path) -> None:
    script = (f"import sys; sys.path.insert(0, {str(PROJECT)!r}); from systems.local_tickets import start_local; "
              f"print(start_local({str(tmp_path / 'tickets.db')!r}))")
    url = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         timeout=60).stdout.strip()
    assert url.startswith("http://127.0.0.1:")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/health", timeout=1)
        except httpx.TransportError:
            return
        time.sleep(0.1)
    pytest.fail("the service outlived the process that started it")


def test_a_service_that_cannot_start_says_why(tmp_path: Path) -> None:
    taken = tmp_path / "tickets.db"
    taken.mkdir()  # a folder where its database file should be
    with pytest.raises(InfrastructureError, match=r"did not start: .*database"):
        local_tickets._spawn(str(taken))
