"""Everything in the engine that talks to Prefect: loading the project's flows, waiting for a
review inside a flow run, and resuming a paused run from another process.

The rest of the engine (registry, plans, validation, store, ledger) is plain Python that tests use
without Prefect; an import-linter contract keeps it that way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any, cast
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout, NotPausedError, PrefectHTTPStatusError
from prefect.flow_runs import apause_flow_run, aresume_flow_run, asuspend_flow_run, resume_flow_run
from prefect.input import RunInput
from prefect.input.run_input import keyset_from_base_key

from airlock.errors import ConfigError, InfrastructureError, StateConflict
from airlock.review import DASHBOARD_ACTOR, ReviewWindowClosed

__all__ = ["DASHBOARD_ACTOR", "ReviewInput", "api_outage_is_infrastructure", "current_flow_run_id", "read_secret",
           "resume_paused_run", "wait_for_review"]

# Prefect's own pause timeout must never be what ends a review (the run would end Failed): it is
# set this much beyond our window, and our window ends first.
PAUSE_MARGIN_SECONDS = 3600


class ReviewInput(RunInput):
    """The form the Prefect dashboard shows on a paused run. The store stays the source of truth:
    this only signals that decisions were taken, or takes simple ones from the dashboard."""

    approve_all: bool = False
    reject_ids: list[str] = []
    note: str = ""
    timed_out: bool = False


@contextlib.contextmanager
def api_outage_is_infrastructure() -> Iterator[None]:
    """Prefect's client failing to reach or talk to its API (refused, timed out, a 5xx) is an outage,
    not a bug: it becomes one retryable error naming the API, not a traceback. The run's stored
    work is kept; it can be resumed once the API is back."""
    try:
        yield
    except (httpx.TransportError, PrefectHTTPStatusError) as error:
        # Only what Prefect's client raises: our own HTTP tools turn their errors into tool errors.
        raise InfrastructureError(f"the Prefect API at {_api_url()} failed: {type(error).__name__}: {error}") from error
    except RuntimeError as error:
        # What Prefect raises when the API does not answer its first (version) check.
        if not str(error).startswith("Failed to reach API"):
            raise
        raise InfrastructureError(f"the Prefect API at {_api_url()} is not reachable") from error


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value() or "(ephemeral server)")


def current_flow_run_id() -> str | None:
    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None


async def wait_for_review(description: str, window_seconds: float, poll_interval: float, *,
                          suspend_after: float | None = None) -> ReviewInput:
    """Pause the current flow run until a person resumes it or ``window_seconds`` pass.

    On expiry the flow resumes its own run with ``timed_out``; if that fails because the run is no
    longer paused, a person resumed it first and their input is read instead. Either way the run
    goes on and ends Completed, never Failed by Prefect's pause timeout.

    A run of a deployment whose window is at least ``suspend_after`` seconds is *suspended* instead:
    its process exits, and a resume reschedules it on a worker, where it runs again from the top
    (the store's stored outcomes make that pass repeat no work and no write) and this call returns
    the input. Prefect's timeout ends such a window: the run is then Failed in Prefect, its items
    stay pending in the store, and a later decision is committed by a follow-up run."""
    form = ReviewInput.with_initial_data(description=description)
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("wait_for_review must be called inside a flow run")
    flow_run_id = context.flow_run.id
    if suspend_after is not None and window_seconds >= suspend_after and context.flow_run.deployment_id:
        received = await asuspend_flow_run(wait_for_input=form, timeout=max(1, int(window_seconds)))
        return received if isinstance(received, ReviewInput) else ReviewInput()
    pause = apause_flow_run(
        wait_for_input=form,
        timeout=int(window_seconds + PAUSE_MARGIN_SECONDS),
        poll_interval=max(1, round(poll_interval)),
    )
    try:
        return await asyncio.wait_for(pause, timeout=window_seconds)
    except TimeoutError:
        pass
    pause_key = context.observed_flow_pauses.get("counter", 1)
    # If a person resumed between our deadline and our own resume, their input wins.
    with contextlib.suppress(NotPausedError, RuntimeError):
        await aresume_flow_run(flow_run_id, {"timed_out": True})
    return await ReviewInput.aload(keyset_from_base_key(f"paused-{pause_key}"))


def resume_paused_run(flow_run_id: str, run_input: dict[str, Any]) -> bool:
    """Resume a paused run from another process. False when it was not paused (any more)."""
    try:
        resume_flow_run(UUID(flow_run_id), run_input=run_input)
    except NotPausedError:
        # Not paused: either it is between two waits and will read the store itself, or it is over
        # (a suspended run whose window Prefect closed, a crash) and will never commit anything.
        if _has_ended(flow_run_id):
            raise ReviewWindowClosed(f"flow run {flow_run_id} is over; it will not resume") from None
        return False
    except FlowPauseTimeout as error:
        raise ReviewWindowClosed(f"flow run {flow_run_id} stopped waiting for review (its window closed)") from error
    except RuntimeError as error:
        raise StateConflict(f"Prefect refused to resume flow run {flow_run_id}: {error}") from error
    return True


def read_secret(block_name: str) -> str:
    """A model API key from a Prefect Secret block (never from flow parameters or logs)."""
    from prefect.blocks.system import Secret

    try:
        value = cast(Any, Secret.load(block_name)).get()
    except ValueError as error:
        raise ConfigError(f"Prefect Secret block {block_name!r} cannot be read: {error}") from error
    return str(value)


def _has_ended(flow_run_id: str) -> bool:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(flow_run_id)).state
    return state is not None and state.is_final()
