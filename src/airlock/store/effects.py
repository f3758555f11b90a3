"""The effects ledger's rows, dead letters, and the append-only audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from airlock.errors import NotFound, StateConflict
from airlock.store.base import StoreBase
from airlock.store.schema import audit_events, dead_letters, effects


class EffectsRepo(StoreBase):
    def existing_effects(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            for row in self._rows(sa.select(effects).where(effects.c.idempotency_key.in_(keys[start:start + 500]))):
                found[row["idempotency_key"]] = row
        return found

    def record_intents(self, rows: Sequence[dict[str, Any]]) -> None:
        now = self.now()
        self._insert_many(effects, [
            {"supersedes": None, "compensates": None, "before_image": None, **r,
             "status": "intent", "attempts": 0, "created_at": now, "updated_at": now} for r in rows
        ])

    def record_effect_outcomes(self, outcomes: Sequence[tuple[str, str, str | None]],
                               before_images: dict[str, dict[str, Any]] | None = None) -> None:
        """(key, status, error) for each call; attempts counts how often the key was sent.
        ``before_images`` (key -> what the write replaced) are kept for compensation."""
        if not outcomes:
            return
        # One UPDATE per (status, error) group rather than one per key: a chunk has thousands of keys
        # and almost all share an outcome.
        groups: dict[tuple[str, str | None], list[str]] = {}
        for key, status, error in outcomes:
            groups.setdefault((status, error), []).append(key)
        now = self.now()
        with self.tx() as connection:
            for (status, error), keys in groups.items():
                for start in range(0, len(keys), 500):
                    connection.execute(
                        effects.update().where(effects.c.idempotency_key.in_(keys[start:start + 500]))
                        .values(status=status, error=error, attempts=effects.c.attempts + 1, updated_at=now)
                    )
            if before_images:
                # One executemany, not an UPDATE per key: every CRM write brings its before-image.
                connection.execute(
                    effects.update().where(effects.c.idempotency_key == sa.bindparam("key"))
                    .values(before_image=sa.bindparam("image", type_=effects.c.before_image.type)),
                    [{"key": key, "image": image} for key, image in before_images.items()],
                )

    def set_effect_status(self, key: str, status: str, error: str | None = None) -> None:
        """A change of state without a call (a write marked compensated)."""
        with self.tx() as connection:
            connection.execute(effects.update().where(effects.c.idempotency_key == key)
                               .values(status=status, error=error, updated_at=self.now()))

    def effects_for_record(self, run_id: str, record_id: str) -> list[dict[str, Any]]:
        return self._rows(sa.select(effects).where(effects.c.run_id == run_id, effects.c.record_id == record_id)
                          .order_by(effects.c.created_at))

    def open_dead_letter_count(self) -> int:
        with self.tx() as connection:
            return int(connection.execute(
                sa.select(sa.func.count()).select_from(dead_letters).where(dead_letters.c.status == "open")
            ).scalar_one())

    def effects_for(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows(sa.select(effects).where(effects.c.run_id == run_id))

    def writes_sent(self, run_id: str) -> int:
        """How many write calls were sent for the run, retries included."""
        with self.tx() as connection:
            return int(connection.execute(
                sa.select(sa.func.coalesce(sa.func.sum(effects.c.attempts), 0)).where(effects.c.run_id == run_id)
            ).scalar_one())

    def effect_counts(self, run_id: str) -> dict[str, dict[str, int]]:
        """Per business system (write target), how many writes ended in each status."""
        with self.tx() as connection:
            rows = connection.execute(
                sa.select(effects.c.target, effects.c.status, sa.func.count())
                .where(effects.c.run_id == run_id).group_by(effects.c.target, effects.c.status)
                .order_by(effects.c.target, effects.c.status)
            ).all()
        counts: dict[str, dict[str, int]] = {}
        for target, status, n in rows:
            counts.setdefault(str(target), {})[str(status)] = int(n)
        return counts

    # -- dead letters ----------------------------------------------------------------------
    def add_dead_letter(self, **fields: Any) -> int:
        with self.tx() as connection:
            result = connection.execute(
                dead_letters.insert().values(status="open", created_at=self.now(), **fields)
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def dead_letters_for(self, *, status: str | None = "open", run_id: str | None = None,
                         step_id: str | None = None, error_type: str | None = None,
                         ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        query = sa.select(dead_letters).order_by(dead_letters.c.id)
        if status is not None:
            query = query.where(dead_letters.c.status == status)
        if run_id is not None:
            query = query.where(dead_letters.c.run_id.like(f"{run_id}%"))
        if step_id is not None:
            query = query.where(dead_letters.c.step_id == step_id)
        if error_type is not None:
            query = query.where(dead_letters.c.error_type == error_type)
        if ids is not None:
            query = query.where(dead_letters.c.id.in_(list(ids)))
        return self._rows(query)

    def get_dead_letter(self, letter_id: int) -> dict[str, Any]:
        rows = self.dead_letters_for(status=None, ids=[letter_id])
        if not rows:
            raise NotFound(f"no dead letter {letter_id}")
        return rows[0]

    def claim_dead_letter(self, letter_id: int, actor: str) -> dict[str, Any]:
        """Only one replay of a letter at a time, across processes."""
        with self.tx() as connection:
            claimed = connection.execute(
                dead_letters.update().where(dead_letters.c.id == letter_id, dead_letters.c.status == "open")
                .values(status="replaying", resolved_by=actor)
            ).rowcount
        letter = self.get_dead_letter(letter_id)
        if not claimed:
            raise StateConflict(f"dead letter {letter_id} is {letter['status']}, not open")
        return letter

    def resolve_dead_letter(self, letter_id: int, status: str, *, actor: str, resolution: str,
                            attempts: list[dict[str, Any]] | None = None) -> None:
        values: dict[str, Any] = {"status": status, "resolved_by": actor, "resolution": resolution,
                                  "resolved_at": self.now() if status != "open" else None}
        if attempts is not None:
            values["attempts"] = attempts
        with self.tx() as connection:
            connection.execute(dead_letters.update().where(dead_letters.c.id == letter_id).values(**values))

    # -- audit -----------------------------------------------------------------------------
    def audit(self, kind: str, *, actor: str, run_id: str | None = None, subject: str = "",
              data: dict[str, Any] | None = None) -> None:
        self.audit_many([{"kind": kind, "actor": actor, "run_id": run_id, "subject": subject, "data": data or {}}])

    def audit_many(self, events: Sequence[dict[str, Any]]) -> None:
        now = self.now()
        self._insert_many(audit_events, [{"at": now, "subject": "", "data": {}, **e} for e in events])

    def audit_trail(self, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(audit_events).where(audit_events.c.run_id == run_id).order_by(audit_events.c.id)
        if kind is not None:
            query = query.where(audit_events.c.kind == kind)
        return self._rows(query)
