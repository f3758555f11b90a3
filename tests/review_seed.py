"""A review queue in the store without running a flow: a pinned plan, a run, its records, their
proposals and review items, as validation leaves them. For the review page's API tests and bench."""

from __future__ import annotations

import uuid
from typing import Any

from airlock.store import Store
from airlock.validation.findings import values_hash


def plan_body(*, four_eyes: bool = False) -> dict[str, Any]:
    return {
        "version": 1, "request": "fill country_code for accounts",
        "dataset": {"name": "accounts", "key": "id", "columns": ["id", "name", "country"]},
        "steps": [], "proposes": {}, "writes": [],
        "policy": {"thresholds": {"country_code": 0.8}, "four_eyes": four_eyes},
    }


def seed_queue(store: Store, count: int, *, started_by: str = "starter", four_eyes: bool = False,
               status: str = "completed", reasons: tuple[str, ...] = ("low_confidence:country_code",)) -> str:
    """``count`` pending review items in a new run; returns the run id."""
    run_id = str(uuid.uuid4())
    body = plan_body(four_eyes=four_eyes)
    plan_hash = values_hash(body)[:40]
    store.save_plan(plan_hash, body)
    store.create_run(id=run_id, playbook="playbooks/enrich_accounts.yaml", plan_hash=plan_hash, status=status,
                     started_by=started_by, input_hash="seeded", record_count=count, chunk_size=max(count, 1),
                     chunk_count=1, dry_run=False, review_timeout=0.0, spec_hashes={})
    records = [{"id": f"R{n:05d}", "name": f"Account {n}", "country": "Germny"} for n in range(count)]
    store.snapshot_records(run_id, records, max(count, 1))
    proposals, items = [], []
    for n, record in enumerate(records):
        confidence = round(0.5 + (n % 30) / 100, 2)
        changes = {"country_code": {"before": None, "after": "DE", "step": "country", "tool": "normalize_country",
                                    "confidence": confidence}}
        digest = values_hash({"country_code": "DE"})
        proposals.append({"record_id": record["id"], "chunk_no": 0, "changes": changes, "proposal_hash": digest,
                          "verdict": "review", "reasons": list(reasons), "outcome": "pending_review"})
        items.append({"run_id": run_id, "record_id": record["id"], "proposal_hash": digest, "reasons": list(reasons),
                      "risk": round(1 - confidence + 0.1 * len(reasons), 4)})
    store.save_proposals(run_id, proposals)
    store.add_review_items(items)
    return run_id
