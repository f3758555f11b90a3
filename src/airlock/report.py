"""The run report: every input record in exactly one outcome, and the counts that prove it."""

from __future__ import annotations

from typing import Any

from airlock.store import Store

OUTCOMES = ("written", "unchanged", "rejected", "pending_review", "dead_lettered")
DRY_RUN_OUTCOMES = ("would_write", "rejected", "pending_review", "dead_lettered")


def build_report(store: Store, run_id: str, *, status: str | None = None, with_records: bool = False) -> dict[str, Any]:
    run = store.get_run(run_id)
    counts = store.outcome_counts(run_id)
    names = DRY_RUN_OUTCOMES if run["dry_run"] else OUTCOMES
    ordered = {name: counts.pop(name, 0) for name in names}
    if counts:  # anything else (a record still 'proposed') breaks conservation and must show
        ordered.update(counts)
    accounted = sum(ordered.values())
    report: dict[str, Any] = {
        "run_id": run_id,
        "playbook": run["playbook"],
        "plan_hash": run["plan_hash"],
        "status": status or run["status"],
        "dry_run": bool(run["dry_run"]),
        "input_count": run["record_count"],
        "counts": ordered,
        "accounted": accounted,
        "conserved": accounted == run["record_count"] and set(ordered) <= set(names),
        "writes_sent": store.writes_sent(run_id),
        "writes_by_system": store.effect_counts(run_id),
        "open_dead_letters": len(store.dead_letters_for(run_id=run_id)),
        "pending_review": store.pending_review_count(run_id),
        "reasons": dict(store.reason_counts(run_id, "pending_review").most_common(20)),
    }
    model_usage = store.llm_usage_summary(run_id)
    if model_usage["totals"]["calls"]:  # runs without a model keep their report as it was
        totals = model_usage["totals"]
        totals["cost_per_record_usd"] = round(totals["cost_usd"] / run["record_count"], 8) if run["record_count"] else 0
        report["model_usage"] = model_usage
    if with_records:
        report["records"] = [
            {"id": r["record_id"], "outcome": r["outcome"], "reasons": r["reasons"]}
            for r in store.record_outcomes(run_id)
        ]
        if run["dry_run"]:  # a dry run exists to show what would change
            changes = {p["record_id"]: p["changes"] for p in store.proposals_for(run_id)}
            for record in report["records"]:
                record["changes"] = changes.get(record["id"], {})
    return report
