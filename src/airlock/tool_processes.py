"""Worker processes for pure work (pure tools and validation), so that a run uses more than one core.

One Python process runs one thread of Python at a time. Chunk tasks run in threads, and the pure
tools (parsing phone numbers, matching industries) and the validation of their proposals (building
proposals, the GX suite, rules) are the largest part of their work: on a machine with several cores
they run here, in worker processes, while the run's own process keeps the audit trail and writes.
Only pure tools (effect ``none``, called per record) come here: they have no side effect, need no
model client and no store, and give the same output wherever they run. Validation comes here as a
pure function of a chunk's records and step results; its verdicts are stored by the run's process.
A write never leaves the run's process.

Each worker builds its own tool registry once, from a factory the application passes in (the
engine does not know the tools), and keeps its own pure-tool cache and its own GX context. The
spec hashes of the tools a worker ran are checked against the run's registry, so a worker can never
run other code than the plan was checked against.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ParamSpec, TypeVar

from airlock.errors import ConfigError, InfrastructureError
from airlock.execute import BATCH_GC_THRESHOLDS, StepResult, ToolCache, call_tools
from airlock.plan import Step
from airlock.registry import ToolRegistry

RegistryFactory = Callable[..., ToolRegistry]
P = ParamSpec("P")
R = TypeVar("R")

# In a worker: the registry built by the initializer, and the worker's own pure-tool cache.
_worker_registry: ToolRegistry | None = None
_worker_cache = ToolCache()


def _start_worker(factory: RegistryFactory, args: tuple[Any, ...], warm: Callable[[], None] | None) -> None:
    global _worker_registry
    # Ctrl-C reaches the whole process group: the run's process handles it (the run is marked
    # interrupted) and shuts the pool down; a worker printing its own KeyboardInterrupt would only add noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if warm is not None:  # e.g. import GX while the first tools run, not when the first chunk is validated
        threading.Thread(target=warm, name="warm", daemon=True).start()
    _worker_registry = factory(*args)
    # A worker only ever processes batches (see BATCH_GC_THRESHOLDS; with the default thresholds most
    # of unpickling a chunk was collection, measured), and what its start-up made is never rescanned.
    gc.freeze()
    gc.set_threshold(*BATCH_GC_THRESHOLDS)


def _run_in_worker(step: Step, payloads: dict[str, dict[str, Any]]) -> tuple[StepResult, dict[str, str]]:
    registry = _worker_registry
    if registry is None:  # the initializer failed: the pool reports it as broken
        raise RuntimeError("tool worker has no registry")
    result = call_tools(step, registry, payloads, cache=_worker_cache)
    names = [step.tool] + ([step.fallback] if step.fallback else [])
    return result, {name: registry[name].spec_hash for name in names}


def _call_in_worker(fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[R, int]:
    return fn(*args, **kwargs), os.getpid()


def default_processes() -> int:
    """One worker per core beyond the first (the run's own process keeps one), at most four."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


class ToolProcesses:
    """A lazily started pool of worker processes. ``run`` has the signature ``run_step`` takes as
    ``offload`` and answers None for a tool step it leaves to the calling thread: one over fewer
    than ``min_records`` inputs (sending it costs more than it saves), or one that would wait for a
    busy worker. ``call`` sends any pure, importable function (validation) the same way."""

    def __init__(self, processes: int, registry: ToolRegistry, factory: RegistryFactory,
                 factory_args: tuple[Any, ...], *, min_records: int = 1000,
                 warm: Callable[[], None] | None = None) -> None:
        if processes < 1:
            raise ConfigError("tool processes must be at least 1 (0 means: run tools in the run's process)")
        self.processes = processes
        self.min_records = min_records
        self.registry = registry
        self._factory = factory
        self._factory_args = factory_args
        self._warm = warm
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self.worker_pids: set[int] = set()
        self._in_flight = 0  # calls sent and not answered yet
        self.offloaded: Counter[str] = Counter()  # what went to the workers: "tool:<name>" or a function's name

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn, never fork: the run's process has threads (Prefect's, the task runner's)
                # whose locks a forked child would inherit held.
                self._pool = ProcessPoolExecutor(
                    max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker, initargs=(self._factory, self._factory_args, self._warm))
            return self._pool

    @property
    def started(self) -> bool:
        return self._pool is not None

    def start(self) -> None:
        """Start the workers now, without waiting for them: a worker takes seconds to start (and
        to warm), which is better spent while the first chunks load. The pool starts a process per
        call it cannot give to an idle one, so one call each starts them all."""
        pool = self._executor()
        for _ in range(self.processes):
            pool.submit(os.getpid)

    def run(self, step: Step, payloads: dict[str, dict[str, Any]]) -> StepResult | None:
        # A tool step the workers cannot start soon runs here instead: the run's process would
        # otherwise wait with a core idle (validation, which needs GX, always goes to a worker).
        if len(payloads) < self.min_records or self.busy():
            return None
        result, hashes = self._submit(f"tool:{step.tool}", _run_in_worker, step, payloads)
        for name, spec_hash in hashes.items():
            if self.registry[name].spec_hash != spec_hash:
                raise ConfigError(f"tool {name} in the worker process is not the tool the plan was checked "
                                  "against (its code changed while the run was going); restart the run")
        return result

    def call(self, size: int, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)`` in a worker, or here when it is about fewer than ``min_records``
        records (``size``). ``fn`` must be pure and importable by name (a module-level function)."""
        if size < self.min_records:
            return fn(*args, **kwargs)
        return self._submit(fn.__qualname__, fn, *args, **kwargs)

    def busy(self) -> bool:
        """Every worker has a call running and another waiting. One waiting call keeps a worker fed
        between calls; more would only wait while the run's process might have a core free."""
        return self._in_flight >= 2 * self.processes

    def _submit(self, what: str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        pool = self._executor()
        with self._lock:
            self._in_flight += 1
        try:
            result, pid = pool.submit(_call_in_worker, fn, args, kwargs).result()
        except BrokenProcessPool as error:
            self._discard(pool)
            # A worker died (killed, out of memory): nothing was written, the task may simply retry.
            raise InfrastructureError(f"a worker process died: {error}") from error
        finally:
            with self._lock:
                self._in_flight -= 1
        with self._lock:
            self.worker_pids.add(pid)
            self.offloaded[what] += 1
        return result

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
