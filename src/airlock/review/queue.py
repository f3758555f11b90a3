"""The review queue as the page shows it: one list across runs, riskiest first, each item with its
record, the proposed change (before/after, and where each value came from) and why it was flagged."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel

from airlock.store import Store

MAX_ITEMS = 5000


class QueueFilter(BaseModel):
    run: str | None = None
    reason: str | None = None
    field: str | None = None
    status: str = "pending"


def _touches(item: dict[str, Any], field: str) -> bool:
    change = item["changes"].get(field)
    changed = change is not None and change.get("before") != change.get("after")
    return changed or any(code.endswith(f":{field}") for code in item["reasons"])


def _rank(item: dict[str, Any]) -> tuple[int, float, int]:
    # Rejections (a contract or rule said no) and low confidence first, then by risk.
    severe = any(code.startswith(("contract:", "reject", "idempotency_conflict")) for code in item["reasons"])
    return (0 if severe else 1, -float(item["risk"]), int(item["id"]))


def load_queue(store: Store, wanted: QueueFilter) -> dict[str, Any]:
    status = None if wanted.status == "all" else wanted.status
    everything = store.review_items_for(status=status, limit=MAX_ITEMS)
    runs: Counter[str] = Counter(i["run_id"] for i in everything)
    reasons: Counter[str] = Counter(code for i in everything for code in i["reasons"])
    fields: Counter[str] = Counter(
        name for i in everything for name, c in i["changes"].items() if c.get("before") != c.get("after"))
    items = [
        i for i in everything
        if (wanted.run is None or i["run_id"].startswith(wanted.run))
        and (wanted.reason is None or any(wanted.reason in code for code in i["reasons"]))
        and (wanted.field is None or _touches(i, wanted.field))
    ]
    items.sort(key=_rank)
    records: dict[tuple[str, str], dict[str, Any]] = {}
    by_run: dict[str, list[str]] = {}
    for item in items:
        by_run.setdefault(item["run_id"], []).append(item["record_id"])
    for run_id, ids in by_run.items():
        key = store.get_plan(store.get_run(run_id)["plan_hash"])["dataset"].get("key", "id")
        for record in store.records_by_id(run_id, ids):
            records[(run_id, str(record[key]))] = record
    return {
        "items": [_view(i, records.get((i["run_id"], i["record_id"]), {})) for i in items],
        "facets": {"runs": dict(runs.most_common()), "reasons": dict(reasons.most_common()),
                   "fields": dict(fields.most_common())},
        "total": len(everything),
    }


def _view(item: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item["id"], "run_id": item["run_id"], "record_id": item["record_id"], "status": item["status"],
        "proposal_hash": item["proposal_hash"], "reasons": item["reasons"], "risk": item["risk"],
        "started_by": item["started_by"], "playbook": item["playbook"], "decided_by": item.get("decided_by"),
        "record": record,
        "changes": {
            name: {"before": c.get("before"), "after": c.get("after"), "tool": c.get("tool"),
                   "model": c.get("model"), "confidence": c.get("confidence"), "edited_by": c.get("edited_by")}
            for name, c in item["changes"].items()
        },
    }
