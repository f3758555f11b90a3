"""Small stand-in tools, a registry of them, a plan that uses them, and a store on a SQLite file.

The tools are real ``@tool`` specs with deterministic bodies: they stand in for the project's tools
at the edge, so the engine (plan checks, planner, executor, ledger) runs unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict

from airlock.registry import SideEffect, ToolRegistry, tool
from airlock.store import Store
from tests.conftest import store_on

PROJECT_DIR = Path(__file__).resolve().parents[3]

_COUNTRIES = {"germany": "DE", "de": "DE", "deutschland": "DE", "france": "FR", "fr": "FR"}
_PREFIXES = {"DE": "+49", "FR": "+33"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CountryIn(Strict):
    country: str | None = None


class CountryOut(Strict):
    country_code: str | None = None
    confidence: float = 0.0
    flags: list[str] = []


class PartialCountryOut(Strict):
    code: str | None = None


class PhoneIn(Strict):
    phone: str | None = None
    country_code: str | None = None


class PhoneOut(Strict):
    phone_e164: str | None = None
    confidence: float = 0.0


class TextIn(Strict):
    text: str | None = None


class CountOut(Strict):
    word_count: int = 0


class AmountIn(Strict):
    amount: int


class AmountOut(Strict):
    doubled: int


class AccountWrite(Strict):
    idempotency_key: str
    values_hash: str | None = None
    account_id: str
    country_code: str | None = None
    phone_e164: str | None = None


class WriteResult(Strict):
    account_id: str
    status: Literal["applied", "duplicate", "unchanged"]


class EmailSend(Strict):
    idempotency_key: str
    account_id: str
    subject: str | None = None
    country_code: str | None = None


class SendResult(Strict):
    status: str


@tool(effect=SideEffect.NONE)
def clean_country(data: CountryIn) -> CountryOut:
    """ISO 3166-1 alpha-2 code from a country name or code (a small fixed table)."""
    code = _COUNTRIES.get((data.country or "").strip().lower())
    return CountryOut(country_code=code, confidence=1.0 if code else 0.0, flags=[] if code else ["country_unknown"])


@tool(effect=SideEffect.READ)
def country_lookup(data: CountryIn) -> CountryOut:
    """ISO code from a reference service (read-only lookup)."""
    code = _COUNTRIES.get((data.country or "").strip().lower())
    return CountryOut(country_code=code, confidence=0.9 if code else 0.0)


@tool(effect=SideEffect.NONE)
def partial_country(data: CountryIn) -> PartialCountryOut:
    """A country code under another output name."""
    return PartialCountryOut(code=_COUNTRIES.get((data.country or "").strip().lower()))


@tool(effect=SideEffect.NONE)
def format_phone(data: PhoneIn) -> PhoneOut:
    """E.164 phone number from a national number and the account's ISO country code."""
    digits = "".join(ch for ch in data.phone or "" if ch.isdigit())
    prefix = _PREFIXES.get(data.country_code or "")
    if not digits or prefix is None:
        return PhoneOut(phone_e164=None, confidence=0.0)
    return PhoneOut(phone_e164=prefix + digits.lstrip("0"), confidence=1.0)


@tool(effect=SideEffect.NONE)
def count_words(data: TextIn) -> CountOut:
    """How many words a text has."""
    return CountOut(word_count=len((data.text or "").split()))


@tool(effect=SideEffect.NONE)
def double_amount(data: AmountIn) -> AmountOut:
    """Twice the amount."""
    return AmountOut(doubled=data.amount * 2)


@tool(effect=SideEffect.WRITE, batched=True)
def crm_write(items: list[AccountWrite]) -> list[WriteResult]:
    """Write country codes and phone numbers to the CRM (idempotent by key)."""
    return [WriteResult(account_id=item.account_id, status="applied") for item in items]


@tool(effect=SideEffect.EXTERNAL)
def send_email(data: EmailSend) -> SendResult:
    """Send an e-mail to the account (irreversible)."""
    return SendResult(status="sent")


ALL_TOOLS = [clean_country, country_lookup, partial_country, format_phone, count_words, double_amount, crm_write,
             send_email]


def base_plan_body() -> dict[str, Any]:
    """A valid plan over the stand-in tools, as a planner or a playbook would write it."""
    return {
        "request": "fill country_code and phone_e164 for accounts and write them to crm",
        "dataset": {"name": "accounts", "columns": ["id", "name", "country", "phone", "notes"]},
        "steps": [
            {"id": "country", "tool": "clean_country", "inputs": {"country": "record.country"}},
            {"id": "phone", "tool": "format_phone",
             "inputs": {"phone": "record.phone", "country_code": "steps.country.country_code"}},
        ],
        "proposes": {"country_code": "steps.country.country_code", "phone_e164": "steps.phone.phone_e164"},
        "writes": [
            {"id": "crm", "tool": "crm_write", "target": "crm",
             "inputs": {"account_id": "record.id", "country_code": "proposal.country_code",
                        "phone_e164": "proposal.phone_e164"}},
        ],
        "policy": {"thresholds": {"country_code": 0.8}},
    }


@pytest.fixture(scope="session")
def project_dir() -> Path:
    return PROJECT_DIR


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry(ALL_TOOLS)


@pytest.fixture
def plan_body() -> dict[str, Any]:
    return copy.deepcopy(base_plan_body())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every store test runs on SQLite and on PostgreSQL (a database of its own, dropped after)."""
    yield from store_on(request, tmp_path)


@pytest.fixture
def sleeps() -> list[float]:
    """Pass ``sleep=sleeps.append`` where the engine would wait: the delays are kept, nothing waits."""
    return []


def new_run(store: Store, run_id: str, *, records: int = 3, dry_run: bool = False, status: str = "running") -> None:
    store.create_run(
        id=run_id, playbook="enrich", plan_hash="plan-hash", status=status, started_by="alice",
        input_hash=f"input-{run_id}", record_count=records, chunk_size=100, chunk_count=1, dry_run=dry_run,
        review_timeout=0.0, spec_hashes={},
    )


@pytest.fixture
def make_run() -> Callable[..., None]:
    return new_run
