"""Runs, their pinned plans and input snapshots, and the stored outcome of every (run, step, chunk)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from airlock.errors import NotFound, StateConflict
from airlock.store.base import StoreBase, as_utc
from airlock.store.schema import plans, run_records, runs, step_outcomes

ACTIVE_STATUSES = ("running", "waiting_review")


class RunsRepo(StoreBase):
    def save_plan(self, plan_hash: str, body: dict[str, Any]) -> None:
        with self.tx() as connection:
            exists = connection.execute(sa.select(plans.c.hash).where(plans.c.hash == plan_hash)).first()
            if exists is None:
                connection.execute(plans.insert().values(hash=plan_hash, body=body, created_at=self.now()))

    def get_plan(self, plan_hash: str) -> dict[str, Any]:
        rows = self._rows(sa.select(plans.c.body).where(plans.c.hash == plan_hash))
        if not rows:
            raise NotFound(f"no plan {plan_hash}")
        body: dict[str, Any] = rows[0]["body"]
        return body

    def create_run(self, **fields: Any) -> None:
        """Insert a run. A live run of the same plan and input (a unique index, so two submissions at
        once cannot both pass) makes this a StateConflict naming that run; one whose lease ran out
        is marked crashed first."""
        for attempt in (1, 2):
            now = self.now()
            try:
                with self.tx() as connection:
                    connection.execute(runs.insert().values(started_at=now, updated_at=now, **fields))
                return
            except sa.exc.IntegrityError:
                plan_hash, input_hash = fields.get("plan_hash"), fields.get("input_hash")
                active = self.active_run_for(str(plan_hash), str(input_hash))
                if active is not None:
                    raise StateConflict(f"run {active} is already processing this plan and input; "
                                        "wait for it or resume it") from None
                expired = [r["id"] for r in self.expired_runs()]
                if attempt == 2 or not expired:
                    raise
                for run_id in expired:
                    self.mark_crashed(run_id, "crashed: its lease ran out (found when a new run started)")

    def get_run(self, run_id: str) -> dict[str, Any]:
        rows = self._rows(sa.select(runs).where(runs.c.id == run_id))
        if not rows:
            matches = self._rows(sa.select(runs.c.id).where(runs.c.id.like(f"{run_id}%")).limit(2))
            if len(matches) == 1:
                return self.get_run(matches[0]["id"])
            raise NotFound(f"no run {run_id!r}" + (" (ambiguous prefix)" if matches else ""))
        row = rows[0]
        for key in ("started_at", "updated_at", "finished_at", "lease_expires_at"):
            row[key] = as_utc(row[key])
        return row

    def list_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._rows(sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit))

    def update_run(self, run_id: str, **fields: Any) -> None:
        with self.tx() as connection:
            connection.execute(runs.update().where(runs.c.id == run_id).values(updated_at=self.now(), **fields))

    def active_run_for(self, plan_hash: str, input_hash: str) -> str | None:
        """A run of this plan over this input that is still alive: active status and a lease that
        has not expired (a process killed mid-run stops renewing it)."""
        rows = self._rows(
            sa.select(runs.c.id).where(
                runs.c.plan_hash == plan_hash, runs.c.input_hash == input_hash, runs.c.status.in_(ACTIVE_STATUSES),
                runs.c.lease_expires_at > self.now(),
            )
        )
        return rows[0]["id"] if rows else None

    def expired_runs(self) -> list[dict[str, Any]]:
        """Runs that say they are active but whose lease ran out (or was never set): their process died."""
        return self._rows(sa.select(runs.c.id, runs.c.status, runs.c.lease_expires_at, runs.c.playbook).where(
            runs.c.status.in_(ACTIVE_STATUSES),
            sa.or_(runs.c.lease_expires_at.is_(None), runs.c.lease_expires_at <= self.now()),
        ))

    def mark_crashed(self, run_id: str, error: str) -> bool:
        """Mark one expired run crashed; False if it renewed its lease or finished meanwhile (so two
        commands reaping at once report it once)."""
        now = self.now()
        with self.tx() as connection:
            changed = connection.execute(runs.update().where(
                runs.c.id == run_id, runs.c.status.in_(ACTIVE_STATUSES),
                sa.or_(runs.c.lease_expires_at.is_(None), runs.c.lease_expires_at <= now),
            ).values(status="crashed", error=error, updated_at=now, lease_expires_at=None)).rowcount
        return bool(changed)

    def renew_lease(self, run_id: str, seconds: float) -> None:
        with self.tx() as connection:
            connection.execute(runs.update().where(runs.c.id == run_id).values(
                lease_expires_at=self.now() + timedelta(seconds=seconds)))

    # -- the input snapshot ---------------------------------------------------------------
    def snapshot_records(self, run_id: str, records: Sequence[dict[str, Any]], chunk_size: int) -> None:
        rows = [
            {"run_id": run_id, "record_id": r["id"], "seq": i, "chunk_no": i // chunk_size, "data": r}
            for i, r in enumerate(records)
        ]
        with self.tx() as connection:
            for start in range(0, len(rows), 20_000):
                self._insert_many(run_records, rows[start:start + 20_000], connection)

    def chunk_records(self, run_id: str, chunk_no: int) -> list[dict[str, Any]]:
        with self.tx() as connection:
            # Scalars, not row dicts: a chunk is thousands of records and this is on every run's path.
            return list(connection.execute(
                sa.select(run_records.c.data)
                .where(run_records.c.run_id == run_id, run_records.c.chunk_no == chunk_no)
                .order_by(run_records.c.seq)
            ).scalars())

    def records_by_id(self, run_id: str, record_ids: Sequence[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        ids = list(record_ids)
        for start in range(0, len(ids), 500):
            found += self._rows(
                sa.select(run_records.c.data, run_records.c.seq)
                .where(run_records.c.run_id == run_id, run_records.c.record_id.in_(ids[start:start + 500]))
            )
        return [r["data"] for r in sorted(found, key=lambda r: r["seq"])]

    # -- stored outcomes, the reason a re-run repeats nothing -------------------------------
    def get_step_outcome(self, run_id: str, step_id: str, chunk_no: int) -> bytes | None:
        with self.tx() as connection:
            value = connection.execute(
                sa.select(step_outcomes.c.payload).where(
                    step_outcomes.c.run_id == run_id,
                    step_outcomes.c.step_id == step_id,
                    step_outcomes.c.chunk_no == chunk_no,
                )
            ).scalar_one_or_none()
        return bytes(value) if value is not None else None

    def step_outcomes(self, run_id: str, step_id: str) -> dict[int, bytes]:
        """A step's stored outcomes for every chunk of the run, by chunk number."""
        with self.tx() as connection:
            rows = connection.execute(
                sa.select(step_outcomes.c.chunk_no, step_outcomes.c.payload)
                .where(step_outcomes.c.run_id == run_id, step_outcomes.c.step_id == step_id)
            ).all()
        return {int(chunk_no): bytes(payload) for chunk_no, payload in rows}

    def save_step_outcome(self, run_id: str, step_id: str, chunk_no: int, payload: bytes) -> bytes:
        """Store once. If another attempt stored it first, theirs is the outcome."""
        try:
            with self.tx() as connection:
                connection.execute(step_outcomes.insert().values(
                    run_id=run_id, step_id=step_id, chunk_no=chunk_no, payload=payload, created_at=self.now()
                ))
        except sa.exc.IntegrityError:
            existing = self.get_step_outcome(run_id, step_id, chunk_no)
            if existing is None:
                raise
            return existing
        return payload

    def progress(self, run_id: str) -> int:
        """Stored (step, chunk) outcomes so far: what a progress bar counts."""
        with self.tx() as connection:
            return int(connection.execute(
                sa.select(sa.func.count()).select_from(step_outcomes).where(step_outcomes.c.run_id == run_id)
            ).scalar_one())

    def clear_step_outcomes(self, run_id: str, chunk_no: int) -> None:
        with self.tx() as connection:
            connection.execute(step_outcomes.delete().where(
                step_outcomes.c.run_id == run_id, step_outcomes.c.chunk_no == chunk_no))
