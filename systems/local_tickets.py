"""The demo ticketing service for a process that was given none (no ``AIRLOCK_TICKETS_URL``).

It runs in a child process of its own, as a real ticketing system runs elsewhere: serving tickets
(HTTP, JSON, SQLite) would otherwise take the run's process's interpreter lock while it commits a
chunk. One child per process and database file; it stops when its standard input closes, that is
when the process that started it ends, however it ends.
"""

from __future__ import annotations

import atexit
import subprocess
import sys
import threading
from pathlib import Path

from airlock.errors import InfrastructureError
from systems import tickets

_STARTED: dict[str, tuple[subprocess.Popen[str], str]] = {}
_LOCK = threading.Lock()
READY_PREFIX = "tickets service on "


def start_local(db_path: str | Path) -> str:
    """The URL of the demo service on ``db_path``, started on a free 127.0.0.1 port on first use."""
    key = str(Path(db_path).resolve())
    with _LOCK:
        started = _STARTED.get(key)
        if started is None or started[0].poll() is not None:
            Path(key).parent.mkdir(parents=True, exist_ok=True)
            started = _STARTED[key] = _spawn(key)
        return started[1]


def _spawn(db_path: str) -> tuple[subprocess.Popen[str], str]:
    # Its own session: a Ctrl-C in the terminal reaches the run, which still needs the service while
    # it marks itself interrupted; the service ends with the run instead.
    # Its errors go to a log beside its database: a pipe nobody reads would fill up and stall it.
    log_path = Path(db_path).with_suffix(".log")
    with log_path.open("a") as log:
        process = subprocess.Popen(
            [sys.executable, tickets.__file__, "--port", "0", "--db", db_path, "--until-stdin-closes"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(READY_PREFIX):
        process.kill()
        logged = log_path.read_text(errors="replace").strip().splitlines()
        raise InfrastructureError("the demo ticketing service did not start: "
                                  f"{logged[-1] if logged else 'no output'} (log: {log_path})")
    atexit.register(_stop, process)
    return process, line[len(READY_PREFIX):].strip()


def _stop(process: subprocess.Popen[str]) -> None:
    if process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
