"""Review actions beyond a plain decision: editing a proposed value, undoing a decision that was
not carried out yet, and reopening an approval that could not be written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from airlock.errors import NotFound, StateConflict, UserError
from airlock.store.base import StoreBase
from airlock.store.schema import audit_events, decisions, proposals, review_items, runs
from airlock.validation.findings import values_hash

# Reopened items go to the top of the queue.
REOPENED_RISK = 2.0


class ReviewRepo(StoreBase):
    def reopen_review_items(self, item_ids: Sequence[int], *, reason: str, actor: str) -> None:
        """Put decided items back in the queue with ``reason`` added (their decisions stay in the
        append-only history)."""
        if not item_ids:
            return
        now = self.now()
        with self.tx() as connection:
            for row in connection.execute(sa.select(review_items).where(review_items.c.id.in_(list(item_ids)))):
                reasons = list(row.reasons) + ([reason] if reason not in row.reasons else [])
                connection.execute(review_items.update().where(review_items.c.id == row.id).values(
                    status="pending", decided_at=None, decided_by=None, committed=False, reasons=reasons,
                    risk=max(row.risk, REOPENED_RISK)))
                connection.execute(audit_events.insert().values(
                    at=now, run_id=row.run_id, actor=actor, kind="review.reopened", subject=str(row.id),
                    data={"record_id": row.record_id, "reason": reason, "was": row.status}))

    def edit_proposal(self, item_id: int, shown_hash: str, edits: dict[str, Any], *, actor: str) -> str:
        """Replace proposed values of a pending item with a reviewer's; returns the new proposal hash.
        Refused if the proposal changed since ``shown_hash`` was shown."""
        with self.tx() as connection:
            item = connection.execute(sa.select(review_items).where(review_items.c.id == item_id)).first()
            if item is None:
                raise NotFound(f"no review item {item_id}")
            if item.status != "pending":
                raise StateConflict(f"item {item_id} is already {item.status}")
            if item.proposal_hash != shown_hash:
                raise StateConflict(f"item {item_id} changed since it was shown; reload it and decide again")
            proposal = connection.execute(sa.select(proposals).where(
                proposals.c.run_id == item.run_id, proposals.c.record_id == item.record_id)).one()
            changes = {name: dict(change) for name, change in proposal.changes.items()}
            unknown = sorted(set(edits) - set(changes))
            if unknown:
                raise UserError(f"no proposed field(s) {', '.join(unknown)} on item {item_id}")
            for name, value in edits.items():
                changes[name] |= {"after": value, "tool": "reviewer", "model": None, "confidence": 1.0,
                                  "edited_by": actor, "proposed": changes[name].get("after")}
            new_hash = values_hash({name: change["after"] for name, change in changes.items()})
            connection.execute(proposals.update().where(
                proposals.c.run_id == item.run_id, proposals.c.record_id == item.record_id,
            ).values(changes=changes, proposal_hash=new_hash, updated_at=self.now()))
            connection.execute(review_items.update().where(review_items.c.id == item_id)
                               .values(proposal_hash=new_hash))
            connection.execute(audit_events.insert().values(
                at=self.now(), run_id=item.run_id, actor=actor, kind="review.edited", subject=str(item_id),
                data={"record_id": item.record_id, "edits": edits, "shown_hash": shown_hash, "new_hash": new_hash}))
        return new_hash

    def undo_decision(self, item_id: int, *, actor: str, source: str) -> dict[str, Any]:
        """Put a decided item back to pending, if what was decided has not been carried out yet."""
        with self.tx() as connection:
            item = connection.execute(sa.select(review_items).where(review_items.c.id == item_id)).first()
            if item is None:
                raise NotFound(f"no review item {item_id}")
            if item.status == "pending":
                raise StateConflict(f"item {item_id} is not decided")
            undone = connection.execute(review_items.update().where(
                review_items.c.id == item_id, review_items.c.status == item.status,
                review_items.c.committed.is_(False),
            ).values(status="pending", decided_at=None, decided_by=None)).rowcount
            if not undone:
                raise StateConflict(f"item {item_id} was already carried out ({item.status}); it cannot be undone")
            connection.execute(decisions.insert().values(
                item_id=item.id, run_id=item.run_id, record_id=item.record_id, decision="undone", actor=actor,
                source=source, proposal_hash=item.proposal_hash, note=f"undid {item.status}", at=self.now()))
            return dict(item._mapping) | {"status": "pending", "was": item.status}

    def run_id_for_flow_run(self, flow_run_id: str | None) -> str | None:
        """The Airlock run a Prefect flow run pinned, if any (a suspended run re-enters by it)."""
        if flow_run_id is None:
            return None
        rows = self._rows(sa.select(runs.c.id).where(runs.c.prefect_flow_run_id == flow_run_id).limit(1))
        return str(rows[0]["id"]) if rows else None
