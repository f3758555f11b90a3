"""Crash recovery and telling operators: reaping runs whose process died, and dead-letter alerts.

A run holds a lease in the store that its tasks renew; a process killed with SIGKILL stops renewing
it. ``reap`` (run by ``airlock runs reap`` and at the start of every command) marks such runs
``crashed`` so that nothing sits in "running" for ever, audits it, and notifies the webhooks. A
crashed run is resumed with ``airlock runs resume RUN_ID`` on its pinned plan and input snapshot.
"""

from __future__ import annotations

from typing import Any

from airlock.notify import Notice, Notifier
from airlock.store import Store


def reap(store: Store, notifier: Notifier, *, actor: str = "airlock", review_url: str = "") -> list[dict[str, Any]]:
    """Mark every active run with an expired lease ``crashed``; returns the runs marked."""
    crashed = []
    for run in store.expired_runs():
        lease = run["lease_expires_at"]
        why = (f"its process stopped renewing its lease (expired {lease:%Y-%m-%d %H:%M:%S} UTC)" if lease
               else "it holds no lease")
        if not store.mark_crashed(run["id"], f"crashed: {why}"):
            continue
        store.audit("run.crashed", actor=actor, run_id=run["id"], data={"was": run["status"], "why": why})
        notifier.notify(Notice(
            event="run.crashed", title=f"Airlock run {run['id'][:8]} crashed",
            fields={"run": run["id"], "playbook": run["playbook"], "was": run["status"], "why": why,
                    "resume": f"airlock runs resume {run['id'][:8]}"},
            link=f"{review_url.rstrip('/')}/?run={run['id'][:8]}&view=letters" if review_url else None,
        ))
        crashed.append({**run, "why": why})
    return crashed


def check_dead_letters(store: Store, notifier: Notifier, *, threshold: int, run_id: str, added: int,
                       review_url: str = "") -> bool:
    """Tell operators when a run added dead letters and the open queue is at or past ``threshold``."""
    if added <= 0:
        return False
    open_count = store.open_dead_letter_count()
    if open_count < threshold:
        return False
    notifier.notify(Notice(
        event="deadletters.growing", title=f"{open_count} open dead letters (threshold {threshold})",
        fields={"open": open_count, "added by run": f"{run_id[:8]} (+{added})",
                "inspect": f"airlock dlq list --run {run_id[:8]}", "replay": "airlock dlq replay --all --reason …"},
        link=f"{review_url.rstrip('/')}/?view=letters" if review_url else None,
    ))
    return True
