"""Making the review page's decisions take effect off the request path.

A decision returns as soon as it is in the store. A background worker then resumes a paused run
once none of its items is pending any more, or runs a follow-up commit for a run that stopped
waiting. Runs queued several times while the worker is busy are handled once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from airlock.deadletter import Replayer
from airlock.review import take_effect
from airlock.store import Store

log = logging.getLogger("airlock.review")


@dataclass(frozen=True)
class Hooks:
    """What the page needs from Prefect and the project, handed in by whoever starts it (the
    engine's review package never imports either)."""

    resume: Callable[[str, dict[str, Any]], bool]
    follow_up: Callable[[str, str], Any]  # (run id, actor)
    replayer: Replayer | None = None


class Effector:
    def __init__(self, store: Store, hooks: Hooks) -> None:
        self.store = store
        self.hooks = hooks
        self._queued: dict[str, str] = {}  # run id -> the actor whose decision queued it
        self._busy = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="airlock-review-effects", daemon=True)
        self._thread.start()

    def submit(self, run_ids: Sequence[str], actor: str) -> None:
        with self._cond:
            for run_id in run_ids:
                self._queued.setdefault(run_id, actor)
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or running (for a clean shutdown, and for tests)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queued and not self._busy, timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queued))
                run_id, actor = next(iter(self._queued.items()))
                del self._queued[run_id]
                self._busy = True
            try:
                self._effect(run_id, actor)
            except Exception as error:
                log.exception("decisions of run %s did not take effect", run_id)
                self.store.audit("review.effect_failed", actor="airlock", run_id=run_id,
                                 data={"error": f"{type(error).__name__}: {error}"[:2000]})
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _effect(self, run_id: str, actor: str) -> None:
        run = self.store.get_run(run_id)
        if run["status"] == "waiting_review" and self.store.pending_review_count(run_id):
            return  # the paused run resumes when its last item is decided
        how = take_effect(self.store, [run_id], resume=self.hooks.resume,
                          follow_up=lambda r: self.hooks.follow_up(r, actor), actor=actor)
        log.info("run %s: %s", run_id, how.get(run_id))
