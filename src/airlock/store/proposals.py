"""Proposals with their verdicts and outcomes, and the review items and decisions about them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from airlock.errors import NotFound
from airlock.store.base import StoreBase
from airlock.store.schema import decisions, proposals, review_items, runs


class ProposalsRepo(StoreBase):
    def save_proposals(self, run_id: str, rows: Sequence[dict[str, Any]]) -> None:
        """Replace the proposals of these records (a replay proposes again for the same records)."""
        if not rows:
            return
        now = self.now()
        ids = [r["record_id"] for r in rows]
        with self.tx() as connection:
            for start in range(0, len(ids), 500):
                connection.execute(proposals.delete().where(
                    proposals.c.run_id == run_id, proposals.c.record_id.in_(ids[start:start + 500])
                ))
            self._insert_many(proposals, [{**r, "run_id": run_id, "updated_at": now} for r in rows], connection)

    def set_outcomes(self, run_id: str, outcomes: dict[str, str]) -> None:
        if not outcomes:
            return
        by_outcome: dict[str, list[str]] = {}
        for record_id, outcome in outcomes.items():
            by_outcome.setdefault(outcome, []).append(record_id)
        now = self.now()
        with self.tx() as connection:
            for outcome, ids in by_outcome.items():
                for start in range(0, len(ids), 500):
                    connection.execute(
                        proposals.update()
                        .where(proposals.c.run_id == run_id, proposals.c.record_id.in_(ids[start:start + 500]))
                        .values(outcome=outcome, updated_at=now)
                    )

    def proposals_for(self, run_id: str, record_ids: Sequence[str] | None = None, *,
                      outcome: str | None = None, chunk_no: int | None = None) -> list[dict[str, Any]]:
        query = sa.select(proposals).where(proposals.c.run_id == run_id)
        if outcome is not None:
            query = query.where(proposals.c.outcome == outcome)
        if chunk_no is not None:
            query = query.where(proposals.c.chunk_no == chunk_no)
        if record_ids is None:
            return self._rows(query)
        ids, found = list(record_ids), []
        for start in range(0, len(ids), 500):
            found += self._rows(query.where(proposals.c.record_id.in_(ids[start:start + 500])))
        return found

    def outcome_counts(self, run_id: str) -> dict[str, int]:
        rows = self._rows(
            sa.select(proposals.c.outcome, sa.func.count().label("n"))
            .where(proposals.c.run_id == run_id).group_by(proposals.c.outcome)
        )
        return {r["outcome"]: int(r["n"]) for r in rows}

    def record_outcomes(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows(
            sa.select(proposals.c.record_id, proposals.c.outcome, proposals.c.reasons, proposals.c.verdict)
            .where(proposals.c.run_id == run_id).order_by(proposals.c.record_id)
        )

    def reason_counts(self, run_id: str, outcome: str) -> Counter[str]:
        counts: Counter[str] = Counter()
        # The reasons alone: a large run has tens of thousands of pending records, and their changes
        # are not needed to count why they wait.
        with self.tx() as connection:
            for (reasons,) in connection.execute(sa.select(proposals.c.reasons).where(
                    proposals.c.run_id == run_id, proposals.c.outcome == outcome)):
                counts.update(reasons)
        return counts

    # -- review ---------------------------------------------------------------------------
    def add_review_items(self, rows: Sequence[dict[str, Any]]) -> None:
        now = self.now()
        self._insert_many(review_items, [
            {**r, "status": "pending", "created_at": now, "committed": False} for r in rows
        ])

    def review_items_for(self, *, run_id: str | None = None, status: str | None = "pending",
                         reason: str | None = None, item_ids: Sequence[int] | None = None,
                         limit: int | None = None) -> list[dict[str, Any]]:
        query = (
            sa.select(review_items, proposals.c.changes, runs.c.started_by, runs.c.playbook)
            .join(proposals, sa.and_(proposals.c.run_id == review_items.c.run_id,
                                     proposals.c.record_id == review_items.c.record_id))
            .join(runs, runs.c.id == review_items.c.run_id)
            .order_by(review_items.c.risk.desc(), review_items.c.id)
        )
        if run_id is not None:
            query = query.where(review_items.c.run_id == run_id)
        if status is not None:
            query = query.where(review_items.c.status == status)
        if item_ids is not None:
            query = query.where(review_items.c.id.in_(list(item_ids)))
        rows = self._rows(query)
        if reason is not None:
            rows = [r for r in rows if any(reason in code for code in r["reasons"])]
        return rows[:limit] if limit is not None else rows

    def decide(self, item_ids: Sequence[int], decision: str, *, actor: str, source: str, note: str = "",
               shown_hashes: dict[int, str] | None = None,
               edits: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Decide the items that are still pending; an already-decided item is left as it is.
        Returns the items this call decided."""
        decided: list[dict[str, Any]] = []
        now = self.now()
        with self.tx() as connection:
            rows = connection.execute(sa.select(review_items).where(review_items.c.id.in_(list(item_ids)))).all()
            if len(rows) != len(set(item_ids)):
                missing = sorted(set(item_ids) - {r.id for r in rows})
                raise NotFound(f"no review item(s) {', '.join(map(str, missing))}")
            wanted = {row.id: row for row in rows if row.status == "pending" and (
                shown_hashes is None or shown_hashes.get(row.id) in (None, row.proposal_hash))}
            ids = sorted(wanted)
            for start in range(0, len(ids), 500):
                # One statement per 500 items; RETURNING says which were still pending (another
                # reviewer may have decided some since they were read).
                updated = connection.execute(
                    review_items.update()
                    .where(review_items.c.id.in_(ids[start:start + 500]), review_items.c.status == "pending")
                    .values(status=decision, decided_at=now, decided_by=actor)
                    .returning(review_items.c.id)
                ).scalars().all()
                decided += [dict(wanted[item_id]._mapping) | {"status": decision} for item_id in sorted(updated)]
            self._insert_many(decisions, [
                {"item_id": row["id"], "run_id": row["run_id"], "record_id": row["record_id"], "decision": decision,
                 "actor": actor, "source": source, "proposal_hash": row["proposal_hash"], "note": note, "at": now,
                 "edits": (edits or {}).get(row["id"])}
                for row in decided
            ], connection)
        return decided

    def pending_review_count(self, run_id: str) -> int:
        with self.tx() as connection:
            return int(connection.execute(
                sa.select(sa.func.count()).select_from(review_items)
                .where(review_items.c.run_id == run_id, review_items.c.status == "pending")
            ).scalar_one())

    def decided_uncommitted(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows(sa.select(review_items).where(
            review_items.c.run_id == run_id, review_items.c.status.in_(("approved", "rejected")),
            review_items.c.committed.is_(False),
        ))

    def mark_committed(self, item_ids: Sequence[int]) -> None:
        if item_ids:
            with self.tx() as connection:
                connection.execute(
                    review_items.update().where(review_items.c.id.in_(list(item_ids))).values(committed=True)
                )

    def decisions_for(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows(sa.select(decisions).where(decisions.c.run_id == run_id).order_by(decisions.c.id))


class ChunkVerdictWriter(ProposalsRepo):
    def save_chunk_verdicts(self, run_id: str, chunk_no: int, *, proposal_rows: Sequence[dict[str, Any]],
                            review_rows: Sequence[dict[str, Any]], dead_letter_rows: Sequence[dict[str, Any]],
                            marker_step: str, marker: bytes) -> None:
        """Proposals, review items, dead letters and the stored outcome of one chunk's validation,
        in one transaction: a crash leaves all of them or none."""
        from airlock.store.schema import dead_letters, step_outcomes

        now = self.now()
        with self.tx() as connection:
            # A chunk is validated once (its marker says so); only a replay (a negative pseudo-chunk)
            # proposes again for records that already have a row.
            ids = [r["record_id"] for r in proposal_rows] if chunk_no < 0 else []
            for start in range(0, len(ids), 500):
                connection.execute(proposals.delete().where(
                    proposals.c.run_id == run_id, proposals.c.record_id.in_(ids[start:start + 500])))
            self._insert_many(proposals, [{**r, "run_id": run_id, "updated_at": now} for r in proposal_rows],
                              connection)
            self._insert_many(review_items, [
                {**r, "run_id": run_id, "status": "pending", "created_at": now, "committed": False}
                for r in review_rows
            ], connection)
            self._insert_many(dead_letters, [
                {**r, "run_id": run_id, "status": "open", "created_at": now} for r in dead_letter_rows
            ], connection)
            connection.execute(step_outcomes.insert().values(
                run_id=run_id, step_id=marker_step, chunk_no=chunk_no, payload=marker, created_at=now))
