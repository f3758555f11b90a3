"""The dead-letter queue as an operator's tool: list, show, replay, discard.

Every action takes the actor and a reason and is audited; the CLI and the review page call these
same functions. A replay claims its letters first (one replay of a letter at a time, across
processes), re-runs only their records with the run's pinned plan, and writes nothing twice: the
idempotency keys are those of the original run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from airlock.errors import StateConflict, UserError
from airlock.store import Store

Replayer = Callable[[list[dict[str, Any]], str, str, bool], dict[str, Any]]


def list_letters(store: Store, *, status: str | None = "open", run_id: str | None = None,
                 step_id: str | None = None, error_type: str | None = None) -> list[dict[str, Any]]:
    return store.dead_letters_for(status=status, run_id=run_id, step_id=step_id, error_type=error_type)


def show(store: Store, letter_id: int) -> dict[str, Any]:
    """The letter (payload, error, every attempt of the failed call) and its history: every replay
    started or finished, discard and compensation, from the audit trail."""
    letter = store.get_dead_letter(letter_id)
    letter["history"] = [
        {"at": e["at"], "kind": e["kind"], "actor": e["actor"], "data": e["data"]}
        for e in store.audit_trail(letter["run_id"])
        if e["kind"].startswith("deadletter.") and e["subject"] == str(letter_id)
    ]
    return letter


def _require_reason(reason: str) -> None:
    if not reason.strip():
        raise UserError("say why (--reason): the audit trail keeps it with your name")


def discard(store: Store, letter_ids: Sequence[int], *, actor: str, reason: str) -> list[int]:
    _require_reason(reason)
    done = []
    for letter_id in letter_ids:
        letter = store.get_dead_letter(letter_id)
        if letter["status"] != "open":
            raise StateConflict(f"dead letter {letter_id} is {letter['status']}, not open")
        store.resolve_dead_letter(letter_id, "discarded", actor=actor, resolution=reason)
        store.audit("deadletter.discarded", actor=actor, run_id=letter["run_id"], subject=str(letter_id),
                    data={"reason": reason, "records": letter["record_ids"]})
        done.append(letter_id)
    return done


def replay(store: Store, letter_ids: Sequence[int], *, actor: str, reason: str, replayer: Replayer,
           allow_changed_tools: bool = False) -> dict[str, Any]:
    """Claim the letters, replay them through ``replayer`` (the project's replay flow), and put any
    letter the replay could not finish back in the queue."""
    _require_reason(reason)
    if not letter_ids:
        raise UserError("no dead letters to replay")
    claimed: list[dict[str, Any]] = []
    try:
        for letter_id in letter_ids:
            claimed.append(store.claim_dead_letter(letter_id, actor))
    except UserError:  # a letter that is not open, or does not exist: release the ones already claimed
        for letter in claimed:
            store.resolve_dead_letter(letter["id"], "open", actor=actor, resolution="")
        raise
    for letter in claimed:
        store.audit("deadletter.replay_started", actor=actor, run_id=letter["run_id"], subject=str(letter["id"]),
                    data={"reason": reason, "letters": list(letter_ids)})
    try:
        return replayer(claimed, actor, reason, allow_changed_tools)
    finally:
        for letter in claimed:
            if store.get_dead_letter(letter["id"])["status"] == "replaying":
                store.resolve_dead_letter(letter["id"], "open", actor=actor, resolution="replay did not finish")
