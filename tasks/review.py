"""Review inside a run: what the paused run's form says, and taking the decisions it carries."""

from __future__ import annotations

from collections import Counter

from airlock.orchestration import ReviewInput
from airlock.review import DASHBOARD_ACTOR, needs_named_approver
from tasks.resources import resources


def review_description(run_id: str, playbook: str, window_seconds: float) -> str:
    """Markdown shown at the top of the Prefect dashboard's resume form."""
    store = resources().store
    items = store.review_items_for(run_id=run_id)
    reasons: Counter[str] = Counter(code for item in items for code in item["reasons"])
    counts = store.outcome_counts(run_id)
    top = "\n".join(f"| `{code}` | {n} |" for code, n in reasons.most_common(10))
    return (
        f"### Airlock run `{run_id}` ({playbook}) needs review\n\n"
        f"**{len(items)}** record(s) wait for a decision; {counts.get('written', 0)} were written, "
        f"{counts.get('unchanged', 0)} unchanged, {counts.get('rejected', 0)} rejected, "
        f"{counts.get('dead_lettered', 0)} dead-lettered.\n\n"
        f"| reason | records |\n|---|---|\n{top}\n\n"
        f"**How to review:** `airlock review list --run {run_id[:8]}` then `airlock review approve ID…` or "
        f"`reject ID…` in a terminal (decisions are recorded with your name), or here: switch on "
        f"*approve_all* and/or list record ids in *reject_ids* (recorded as `{DASHBOARD_ACTOR}`). "
        f"Leave *timed_out* off. This run stops waiting after {window_seconds:.0f} s; what is undecided "
        "then stays in the queue and is written by a follow-up commit once decided."
    )


def apply_review_input(run_id: str, review: ReviewInput) -> int:
    """Decide from the dashboard's form. Only items still pending are decided; returns how many."""
    store = resources().store
    pending = store.review_items_for(run_id=run_id)
    by_record = {item["record_id"]: item["id"] for item in pending}
    decided = 0
    unknown = [rid for rid in review.reject_ids if rid not in by_record]
    if review.reject_ids:
        ids = [by_record[rid] for rid in review.reject_ids if rid in by_record]
        decided += len(store.decide(ids, "rejected", actor=DASHBOARD_ACTOR, source="prefect-ui", note=review.note))
    if review.approve_all:
        # Items that need a named approver stay pending: the dashboard cannot say who approved them.
        named = {item["record_id"] for item in pending if needs_named_approver(item)}
        rest = [item_id for rid, item_id in by_record.items() if rid not in review.reject_ids and rid not in named]
        decided += len(store.decide(rest, "approved", actor=DASHBOARD_ACTOR, source="prefect-ui", note=review.note))
    store.audit("review.resumed", actor=DASHBOARD_ACTOR if (review.approve_all or review.reject_ids) else "airlock",
                run_id=run_id, data={"approve_all": review.approve_all, "reject_ids": review.reject_ids,
                                     "unknown_ids": unknown, "note": review.note, "timed_out": review.timed_out,
                                     "decided": decided})
    return decided
