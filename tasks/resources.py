"""What every task needs, built once per process from the environment: settings, the store, the
tool registry (tools/), the pure-tool cache and the worker processes. GX has one runner per process
(``airlock.validation.process_gx``), which validation takes wherever it runs."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import partial

from airlock.execute import ToolCache
from airlock.llm import ModelClient
from airlock.llm.factory import build_client
from airlock.notify import Notifier, NullNotifier, notifier_for
from airlock.plan import Plan
from airlock.registry import ToolRegistry
from airlock.settings import Settings
from airlock.store import Store
from airlock.tool_processes import ToolProcesses, default_processes
from airlock.validation import RunClaims, warm_process_gx
from systems.local_tickets import start_local
from tools import build_registry
from tools.tickets import TicketClient


@dataclass
class Resources:
    settings: Settings
    store: Store
    registry: ToolRegistry
    cache: ToolCache
    model: ModelClient | None = None  # None with AIRLOCK_PLANNER=rules: no model anywhere
    # One webhook notifier per process (its own small thread pool), not one per notice.
    notifier: Notifier = field(default_factory=NullNotifier)
    # Worker processes for pure tools and validation (None: all of it runs in this process).
    tool_processes: ToolProcesses | None = None
    # Requests the model planned in this process, so a CLI check and the flow it starts share one plan.
    model_plans: dict[tuple[str, ...], Plan] = field(default_factory=dict)
    # The run-wide duplicate check of each run whose chunks this process is running, by run id.
    run_claims: dict[str, RunClaims] = field(default_factory=dict)


_lock = threading.Lock()
_built: dict[tuple[object, ...], Resources] = {}


_settings: dict[tuple[tuple[str, str], ...], Settings] = {}


def current_settings() -> Settings:
    """Settings for the current environment, built once per distinct AIRLOCK_* environment (tasks
    call this for every chunk; parsing the environment each time showed up in profiles)."""
    key = (("cwd", os.getcwd()), *sorted((k, v) for k, v in os.environ.items() if k.startswith("AIRLOCK_")))
    built = _settings.get(key)
    if built is None:
        built = _settings[key] = Settings()
    return built


def resources() -> Resources:
    settings = current_settings()
    key = (settings.store_url, settings.crm_database_url, settings.project_dir, settings.reference_dir,
           settings.planner, settings.llm_base_url, settings.tickets_url, tuple(settings.webhooks))
    with _lock:
        if key not in _built:
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            store = Store.open(settings.store_url)
            model = build_client(settings, sink=store, read_secret_block=_read_secret)
            registry = build_registry(
                settings.project_dir, settings.crm_database_url,
                TicketClient(_tickets_url(settings), settings.http_allowed_hosts, timeout=settings.http_timeout),
                model, settings.llm_batch_size, data_dir=settings.reference_dir,
                # Built on the first lookup, while the worker processes start and the first tools run:
                # before the run, it held up everything else (1.6 s at 100,000 records).
                reference_on_first_lookup=True)
            _built[key] = Resources(
                settings=settings,
                store=store,
                registry=registry,
                cache=ToolCache(),
                model=model,
                notifier=notifier_for(settings.webhooks),
                tool_processes=_tool_processes(settings, registry),
            )
        return _built[key]


def prepare_validation(chunk_size: int) -> None:
    """Great Expectations takes seconds to import: start that as soon as the chunk size is known,
    in the process that will validate: the worker processes (started now, they import GX as they
    start) when chunks are large enough to go there, this process (in a thread) otherwise.
    Calling it again costs nothing."""
    workers = resources().tool_processes
    if workers is not None and chunk_size >= workers.min_records:
        workers.start()
    else:
        threading.Thread(target=warm_process_gx, name="gx-warm", daemon=True).start()


def _tool_processes(settings: Settings, registry: ToolRegistry) -> ToolProcesses | None:
    """Pure tools and validation in worker processes when the machine has cores to spare. A worker
    builds the same registry from the same project folder; it needs neither the CRM nor the
    ticketing service, nor (it runs no lookups) the reference firmographics. It imports GX as it
    starts: it will validate the chunks it runs tools for."""
    count = default_processes() if settings.tool_processes is None else settings.tool_processes
    if count == 0:
        return None
    return ToolProcesses(count, registry, partial(build_registry, data_dir=settings.reference_dir,
                                                  reference_on_first_lookup=True),
                         (settings.project_dir, settings.crm_database_url),
                         min_records=settings.tool_process_min_records, warm=warm_process_gx)


def _read_secret(block_name: str) -> str:
    from airlock.orchestration import read_secret

    return read_secret(block_name)


def _tickets_url(settings: Settings) -> str:
    """The ticketing service named by AIRLOCK_TICKETS_URL or, without one, the demo service started in
    this process on its SQLite file in the state folder (the demo and a local worker need no set-up)."""
    return settings.tickets_url or start_local(settings.state_dir / "tickets.db")
