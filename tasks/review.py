"""Review inside a run: what the paused run's form says, taking the decisions it carries, and
telling reviewers that a run waits for them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from airlock.notify import Notice
from airlock.orchestration import ReviewInput
from airlock.review import DASHBOARD_ACTOR, decide, four_eyes, needs_named_approver
from tasks.resources import current_settings, resources


@dataclass
class DashboardDecisions:
    decided: int
    refused: int  # approvals the dashboard may not give: they need an identified person


def review_description(run_id: str, playbook: str, window_seconds: float, *, refused: int = 0) -> str:
    """Markdown shown at the top of the Prefect dashboard's resume form."""
    res = resources()
    store = res.store
    items = store.review_items_for(run_id=run_id)
    reasons: Counter[str] = Counter(code for item in items for code in item["reasons"])
    counts = store.outcome_counts(run_id)
    top = "\n".join(f"| `{code}` | {n} |" for code, n in reasons.most_common(10))
    page = current_settings().review_url
    strict = four_eyes(store, store.get_run(run_id))
    named = sum(1 for item in items if needs_named_approver(item))
    warning = (
        f"> **{refused} approval(s) from this form were refused**: they need an identified approver. "
        f"Approve them on the review page, {page}\n\n" if refused else ""
    )
    limits = (
        "This playbook requires four eyes: **approvals must come from the review page**, where you are identified; "
        "this form can only reject. " if strict else
        (f"{named} item(s) need a named approver and can only be approved on the review page. " if named else "")
    )
    return (
        f"{warning}### Airlock run `{run_id}` ({playbook}) needs review\n\n"
        f"**{len(items)}** record(s) wait for a decision; {counts.get('written', 0)} were written, "
        f"{counts.get('unchanged', 0)} unchanged, {counts.get('rejected', 0)} rejected, "
        f"{counts.get('dead_lettered', 0)} dead-lettered.\n\n"
        f"| reason | records |\n|---|---|\n{top}\n\n"
        f"**Review page:** {page} (keyboard first, decisions recorded with your name). "
        f"Or in a terminal: `airlock review list --run {run_id[:8]}` then `airlock review approve ID…`. "
        f"Or here: switch on *approve_all* and/or list record ids in *reject_ids* (recorded as "
        f"`{DASHBOARD_ACTOR}`). {limits}Leave *timed_out* off. This run stops waiting after "
        f"{window_seconds:.0f} s; what is undecided then stays in the queue and is written by a follow-up "
        "commit once decided."
    )


def apply_review_input(run_id: str, review: ReviewInput) -> DashboardDecisions:
    """Decide from the dashboard's form: only items still pending, and no approval where the
    playbook wants an identified approver (four eyes, per-record approvals, reopened conflicts)."""
    store = resources().store
    pending = store.review_items_for(run_id=run_id)
    by_record = {item["record_id"]: item["id"] for item in pending}
    decided = refused = 0
    unknown = [rid for rid in review.reject_ids if rid not in by_record]
    if review.reject_ids:
        ids = [by_record[rid] for rid in review.reject_ids if rid in by_record]
        if ids:
            decided += len(decide(store, ids, "rejected", actor=DASHBOARD_ACTOR, source="prefect-ui",
                                  note=review.note).decided)
    if review.approve_all:
        strict = four_eyes(store, store.get_run(run_id))
        named = {item["record_id"] for item in pending if strict or needs_named_approver(item)}
        rest = [item_id for rid, item_id in by_record.items() if rid not in review.reject_ids and rid not in named]
        refused = len([rid for rid in named if rid not in review.reject_ids])
        if rest:
            decided += len(decide(store, rest, "approved", actor=DASHBOARD_ACTOR, source="prefect-ui",
                                  note=review.note).decided)
    store.audit("review.resumed", actor=DASHBOARD_ACTOR if (review.approve_all or review.reject_ids) else "airlock",
                run_id=run_id, data={"approve_all": review.approve_all, "reject_ids": review.reject_ids,
                                     "unknown_ids": unknown, "note": review.note, "timed_out": review.timed_out,
                                     "decided": decided, "refused": refused})
    if refused:
        store.audit("review.dashboard_refused", actor=DASHBOARD_ACTOR, run_id=run_id, data={
            "refused": refused, "why": "needs an identified approver", "page": current_settings().review_url})
    return DashboardDecisions(decided, refused)


def notify_waiting(run_id: str, playbook: str, window_seconds: float) -> None:
    """Tell reviewers (Slack-compatible webhooks) that a run waits; delivery is retried in the
    background and never holds the run."""
    settings = current_settings()
    if not settings.webhooks:
        return
    res = resources()
    store = res.store
    items = store.review_items_for(run_id=run_id)
    reasons: Counter[str] = Counter(code for item in items for code in item["reasons"])
    counts = store.outcome_counts(run_id)
    link = f"{settings.review_url.rstrip('/')}/?run={run_id[:8]}"
    res.notifier.notify(Notice(
        event="review.waiting", title=f"Airlock run {run_id[:8]} ({playbook}) waits for review", link=link,
        fields={"run": run_id, "pending": len(items), "written": counts.get("written", 0),
                "rejected": counts.get("rejected", 0), "reasons": dict(reasons.most_common(5)),
                "window_seconds": round(window_seconds)},
    ))
