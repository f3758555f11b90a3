"""How fast review is: server-side latency of one decision (p50/p95), a batch approval of 1,000
items, and the keystrokes needed to review 100 items on the page, with ratios to the goals.

    .venv/bin/python bench/review.py [--decisions 300] [--batch 1000] [--database-url URL] [--no-browser]

The review page runs in-process (Starlette, its real routes, auth and CSRF checks) over a store
on a fresh SQLite file (or --database-url). Latency is measured around each HTTP request through
the ASGI app, so it is the server's time without a network. Keystrokes are counted by driving the
real page in headless chromium (Debian's, through Playwright) and counting decisions per key press.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from starlette.testclient import TestClient  # noqa: E402

from airlock.review import auth  # noqa: E402
from airlock.review.app import create_app  # noqa: E402
from airlock.review.effects import Hooks  # noqa: E402
from airlock.store import Store  # noqa: E402
from tests.review_seed import seed_queue  # noqa: E402

GOALS = {"p95_ms": 50.0, "batch_1000_s": 2.0, "keys_per_decision": 1.0}


def _hooks() -> Hooks:
    # Seeded runs are "running": decisions are left to the run, so no Prefect is involved.
    return Hooks(resume=lambda _id, _input: False, follow_up=lambda _run, _actor: None)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure_server(store: Store, decisions: int, batch: int) -> dict[str, Any]:
    token = auth.add_user(store, "bench", "reviewer", actor="bench")
    client = TestClient(create_app(store, _hooks()))
    csrf = client.post("/api/login", json={"token": token}).json()["csrf"]
    headers = {"x-csrf-token": csrf}

    single_run = seed_queue(store, decisions, status="running")
    items = client.get("/api/items", params={"run": single_run[:8]}).json()["items"]
    latencies = []
    for n, item in enumerate(items):
        body = {"decision": "approved" if n % 5 else "rejected",
                "items": [{"id": item["id"], "hash": item["proposal_hash"]}]}
        started = time.perf_counter()
        response = client.post("/api/decide", json=body, headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200 and response.json()["decided"] == [item["id"]], response.text

    batch_run = seed_queue(store, batch, status="running")
    listed_at = time.perf_counter()
    batch_items = client.get("/api/items", params={"run": batch_run[:8]}).json()["items"]
    list_seconds = time.perf_counter() - listed_at
    body = {"decision": "approved", "items": [{"id": i["id"], "hash": i["proposal_hash"]} for i in batch_items]}
    started = time.perf_counter()
    response = client.post("/api/decide", json=body, headers=headers)
    batch_seconds = time.perf_counter() - started
    assert response.status_code == 200 and len(response.json()["decided"]) == batch, response.text
    return {"decisions": len(latencies), "p50_ms": statistics.median(latencies),
            "p95_ms": _percentile(latencies, 0.95), "max_ms": max(latencies),
            "batch_items": batch, "batch_s": batch_seconds, "list_s": list_seconds}


def measure_keystrokes(store: Store, items: int) -> dict[str, Any] | None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        return None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    from tests.browser.conftest import LiveServer

    token = auth.add_user(store, "keys", "reviewer", actor="bench")
    run_id = seed_queue(store, items, status="running")
    keys = 0
    with LiveServer(create_app(store, _hooks())) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        page = browser.new_page()
        page.goto(f"{server.url}/?run={run_id[:8]}")
        page.fill("#token", token)
        page.press("#token", "Enter")
        page.wait_for_selector("#list li")
        for n in range(items):
            page.keyboard.press("a" if n % 4 else "r")
            keys += 1
            page.wait_for_function(
                f"document.querySelectorAll('#list li.approved, #list li.rejected').length === {n + 1}")
        browser.close()
    decided = len(store.decisions_for(run_id))
    return {"items": items, "keys": keys, "decided": decided, "keys_per_decision": keys / max(decided, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--keys-items", type=int, default=100)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="airlock-bench-review-"))
    try:
        store = Store.open(args.database_url or f"sqlite:///{folder / 'store.db'}")
        server = measure_server(store, args.decisions, args.batch)
        keys = None if args.no_browser else measure_keystrokes(store, args.keys_items)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    backend = (args.database_url or "sqlite").split(":")[0]
    print(f"review bench ({backend} store)")
    print("| measure | value | goal | value / goal |\n|---|---|---|---|")
    print(f"| one decision, p50 ({server['decisions']} requests) | {server['p50_ms']:.1f} ms | | |")
    print(f"| one decision, p95 | {server['p95_ms']:.1f} ms | < {GOALS['p95_ms']:.0f} ms | "
          f"{server['p95_ms'] / GOALS['p95_ms']:.2f} |")
    print(f"| batch approval of {server['batch_items']:,} items | {server['batch_s']:.2f} s | "
          f"< {GOALS['batch_1000_s']:.0f} s | {server['batch_s'] / GOALS['batch_1000_s']:.2f} |")
    print(f"| loading a queue of {server['batch_items']:,} items | {server['list_s']:.2f} s | | |")
    if keys is None:
        print("| keystrokes per decision | not measured (--no-browser, or no chromium/playwright) | 1 | |")
    else:
        print(f"| keystrokes to review {keys['items']} items | {keys['keys']} ({keys['decided']} decided) | "
              f"{keys['items']} | {keys['keys_per_decision'] / GOALS['keys_per_decision']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
