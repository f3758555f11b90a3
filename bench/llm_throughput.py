"""Model enrichment throughput against the stub model: records/s achieved versus the limit that the
call latency and the tokens-per-minute quota allow.

The stub (tests/fakes/model_stub.py, the real openai SDK talking to it) answers every call after a set
latency and enforces a tokens-per-minute quota with a token bucket: a call over quota gets HTTP 429
with retry-after. Airlock runs ``classify_industry_llm`` through its executor (``run_step``) over
chunks on worker threads, as the chunk tasks do, with the client's bounded concurrency, batching,
and retries through ``airlock.retry`` (SDK retries off). No Prefect, no store: this measures the
model path alone.

    .venv/bin/python bench/llm_throughput.py
    .venv/bin/python bench/llm_throughput.py --records 2000 --latency 0.3 --tpm 400000 60000 --json out.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from airlock.execute import run_step  # noqa: E402
from airlock.llm import ModelClient, metered  # noqa: E402
from airlock.llm.cost import PriceTable  # noqa: E402
from airlock.llm.providers import OpenAICompatibleProvider  # noqa: E402
from airlock.plan import DatasetSpec, Plan, Policy  # noqa: E402
from tests.fakes.model_stub import ModelStub, Reply, Seen  # noqa: E402
from tools import build_registry  # noqa: E402

OUTPUT_TOKENS_PER_RECORD = 18


class QuotaModel:
    """Latency per call, and a tokens-per-minute quota as a token bucket (burst: two seconds' worth)."""

    def __init__(self, latency: float, tpm: int) -> None:
        self.latency = latency
        self.rate = tpm / 60.0
        self.capacity = self.rate * 2
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.lock = threading.Lock()
        self.calls = self.throttled = self.tokens_used = 0

    def __call__(self, seen: Seen) -> Reply:
        records = json.loads(seen.body["messages"][-1]["content"].split("\n", 1)[1])
        cost_in = len(json.dumps(seen.body)) // 4  # ~4 characters a token
        cost = cost_in + OUTPUT_TOKENS_PER_RECORD * len(records)
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if cost > self.tokens:
                self.throttled += 1
                wait = (cost - self.tokens) / self.rate
                return Reply(status=429, headers={"retry-after": f"{wait:.2f}"})
            self.tokens -= cost
            self.calls += 1
            self.tokens_used += cost
        labels = [{"id": r["id"], "industry": "Software", "confidence": 0.9} for r in records]
        return Reply(tool_calls=[("record_labels", {"labels": labels})], input_tokens=cost_in,
                     output_tokens=OUTPUT_TOKENS_PER_RECORD * len(records), delay=self.latency)


def _records(count: int) -> list[dict[str, str]]:
    with (PROJECT / "data" / "accounts.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for n in range(count):
        row = dict(rows[n % len(rows)])
        row.update(id=f"B{n:07d}", industry="")  # every record needs the model
        out.append(row)
    return out


def run(records: int, latency: float, tpm: int, batch: int, concurrency: int, workers: int,
        chunk: int, pace: float | None) -> dict[str, Any]:
    model = QuotaModel(latency, tpm)
    stub = ModelStub(responder=model)
    try:
        provider = OpenAICompatibleProvider(model="gpt-4o-mini", api_key="bench", base_url=stub.openai_url,
                                            timeout=30.0, max_retries=0)
        # Paced a little under the provider's quota, as AIRLOCK_LLM_TOKENS_PER_MINUTE would be set.
        client = ModelClient(provider, prices=PriceTable(), concurrency=concurrency,
                             tokens_per_minute=int(tpm * pace) if pace else None)
        registry = build_registry(PROJECT, "sqlite:///:memory:", model=client, model_batch_size=batch)
        data = _records(records)
        columns = list(data[0])
        plan = Plan(request="bench", dataset=DatasetSpec(name="accounts", columns=columns),
                    steps=[{"id": "industry", "tool": "classify_industry_llm", "fallback": "classify_industry",
                            "inputs": {"name": "record.name", "industry": "record.industry",
                                       "description": "record.description"}}],
                    proposes={"industry": "steps.industry.industry"}, policy=Policy())
        chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)]

        def one(n: int) -> Any:
            with metered("bench", "industry", n):
                return run_step(plan, plan.steps[0], registry, chunks[n], {})

        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(one, range(len(chunks))))
        seconds = time.perf_counter() - started
    finally:
        stub.close()
    by_model = sum(1 for r in results for o in r.outputs.values() if o.get("_tool") == "classify_industry_llm")
    fallbacks = sum(r.fallbacks for r in results)
    tokens_per_record = model.tokens_used / max(by_model, 1)
    in_flight = min(concurrency, workers)
    latency_limit = in_flight * batch / latency
    quota_limit = tpm / 60.0 / tokens_per_record
    limit = min(latency_limit, quota_limit)
    achieved = by_model / seconds  # records the model labelled; fallbacks would flatter the rate
    return {
        "records": records, "latency_s": latency, "tpm": tpm, "paced": pace is not None, "batch": batch,
        "concurrency": concurrency,
        "seconds": round(seconds, 2), "records_per_s": round(achieved, 1),
        "latency_limit": round(latency_limit, 1), "quota_limit": round(quota_limit, 1),
        "bound": "latency" if latency_limit <= quota_limit else "quota", "ratio": round(achieved / limit, 2),
        "calls": model.calls, "throttled_429": model.throttled, "tokens_per_record": round(tokens_per_record, 1),
        "labelled_by_model": by_model, "fallbacks": fallbacks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--tpm", type=int, nargs="+", default=[2_000_000, 120_000])
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--pace", type=float, default=0.95, help="client pace as a share of the quota (0: off)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = [run(args.records, args.latency, tpm, args.batch, args.concurrency, args.workers, args.chunk, pace)
            for tpm in args.tpm for pace in ((args.pace or None), None) if not (pace is None and args.pace == 0)]
    header = ("tpm", "paced", "bound", "records_per_s", "latency_limit", "quota_limit", "ratio", "seconds", "calls",
              "throttled_429", "tokens_per_record", "fallbacks")
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[h]) for h in header))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
