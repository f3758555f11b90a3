"""The account-enrichment tools of this project, and the registry the flows build from them.

The registration order is part of the contract: a planner takes the first tool that produces a
field and keeps later producers of the same field as fallbacks (``classify_industry`` before
``guess_industry_from_name``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path

from airlock.llm import ModelClient
from airlock.registry import ToolRegistry
from systems.crm import CrmDatabase
from tools.country import normalize_country
from tools.crm import make_crm_update_accounts
from tools.domain import extract_domain
from tools.email_check import check_email
from tools.employees import band_employees
from tools.firmographics import FirmographicsIndex, make_lookup_firmographics
from tools.industry import Taxonomy, make_classify_industry, make_guess_industry_from_name
from tools.llm_industry import make_classify_industry_llm
from tools.phone import normalize_phone
from tools.tickets import TicketClient, make_tickets_open

REFERENCE_FILE = "reference_firmographics.csv"
TAXONOMY_FILE = "taxonomy.csv"


def _stamp(path: Path) -> tuple[str, int, int]:
    """Cache key of a data file: a regenerated file is a different key, so it is read again."""
    resolved = path.resolve()
    stat = resolved.stat() if resolved.exists() else None
    return str(resolved), stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0


@lru_cache(maxsize=8)
def _firmographics(stamp: tuple[str, int, int]) -> FirmographicsIndex:
    return FirmographicsIndex.from_csv(stamp[0])


@lru_cache(maxsize=8)
def _taxonomy(stamp: tuple[str, int, int]) -> Taxonomy:
    return Taxonomy.from_csv(stamp[0])


# One engine (one connection pool) per CRM per process, however often the registry is built.
_CRMS: dict[str, CrmDatabase] = {}
_CRMS_LOCK = threading.Lock()


def _crm(url: str) -> CrmDatabase:
    with _CRMS_LOCK:
        if url not in _CRMS:
            _CRMS[url] = CrmDatabase(url)
        return _CRMS[url]


def close_crm_connections() -> None:
    """Close the pooled CRM connections the registries of this process hold (before dropping a
    test database, or at shutdown)."""
    with _CRMS_LOCK:
        for crm in _CRMS.values():
            crm.dispose()
        _CRMS.clear()


def load_firmographics(data_dir: Path) -> FirmographicsIndex:
    return _firmographics(_stamp(data_dir / REFERENCE_FILE))


def load_taxonomy(data_dir: Path) -> Taxonomy:
    return _taxonomy(_stamp(data_dir / TAXONOMY_FILE))


def _checked_loader(data_dir: Path) -> Callable[[], FirmographicsIndex]:
    """The reference loaded later, checked now: a missing file or column is a clear error before a run
    starts, not a failed lookup for every record."""
    FirmographicsIndex.check_csv(data_dir / REFERENCE_FILE)
    return partial(load_firmographics, data_dir)


def build_registry(project_dir: Path, crm_url: str, tickets: TicketClient | None = None,
                   model: ModelClient | None = None, model_batch_size: int = 20, *,
                   data_dir: Path | None = None, reference_on_first_lookup: bool = False) -> ToolRegistry:
    """Every enrichment tool, with the reference data and taxonomy of ``data_dir`` (default
    ``project_dir/data``; read once per process and file version), the CRM at ``crm_url`` and the
    ticketing service ``tickets``.
    Nothing here connects to either: the CRM creates its schema on its first write, so a run can
    plan and execute while it is down. With a ``model``, the model-backed tools are registered too,
    last, so that they are never a structured request's first choice. ``reference_on_first_lookup``
    defers building the reference index to the first lookup (its file and columns are checked now):
    a run's process then builds it while the first chunks' tools run rather than before the run
    starts, and a tool worker process, which runs only pure tools, never does."""
    data_dir = Path(data_dir) if data_dir is not None else Path(project_dir) / "data"
    taxonomy = load_taxonomy(data_dir)
    registry = ToolRegistry(
        [
            extract_domain,
            check_email,
            normalize_country,
            normalize_phone,
            make_lookup_firmographics(_checked_loader(data_dir) if reference_on_first_lookup
                                      else load_firmographics(data_dir)),
            make_classify_industry(taxonomy),
            make_guess_industry_from_name(taxonomy),
            band_employees,
            make_crm_update_accounts(_crm(crm_url)),
            make_tickets_open(tickets or TicketClient(None, ())),
        ]
    )
    if model is not None:
        registry.register(make_classify_industry_llm(taxonomy, model, model_batch_size))
    return registry
