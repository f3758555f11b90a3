"""A real project registry (plus a sentinel external tool that counts its calls) with a model client
pointed at the stub, and a good plan answer for the free-text example request."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from airlock.llm import ModelClient
from airlock.plan import DatasetSpec, Plan, Policy
from airlock.registry import SideEffect, ToolRegistry, tool
from tools import build_registry

PROJECT = Path(__file__).resolve().parents[3]
FREE_TEXT = ("fill in missing industries and phone numbers for German accounts and open a ticket for every "
             "account whose e-mail is invalid")
COLUMNS = ["id", "name", "website", "email", "phone", "country", "city", "employees", "industry", "description"]


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_key: str
    email: str | None = None


class NoticeOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sent: bool


SENTINEL_CALLS: list[dict[str, Any]] = []


@tool(effect=SideEffect.EXTERNAL)
def send_email(data: NoticeIn) -> NoticeOut:
    """Send an e-mail to the account (irreversible)."""
    SENTINEL_CALLS.append(data.model_dump())
    return NoticeOut(sent=True)


def registry_with(client: ModelClient, tmp_path: Path, batch_size: int = 20) -> ToolRegistry:
    registry = build_registry(PROJECT, f"sqlite:///{tmp_path / 'crm.db'}", model=client, model_batch_size=batch_size)
    registry.register(send_email)
    return registry


GOOD: dict[str, Any] = {
    "steps": [
        {"id": "country", "tool": "normalize_country", "inputs": {"country": "record.country"}},
        {"id": "phone", "tool": "normalize_phone",
         "inputs": {"phone": "record.phone", "country_code": "steps.country.country_code"}},
        {"id": "email", "tool": "check_email", "inputs": {"email": "record.email"}},
        {"id": "industry", "tool": "classify_industry_llm", "fallback": "classify_industry",
         "inputs": {"name": "record.name", "industry": "record.industry", "description": "record.description"}},
    ],
    "proposes": {"industry": "steps.industry.industry", "phone_e164": "steps.phone.phone_e164",
                 "email_status": "steps.email.email_status"},
    "writes": [{"id": "crm", "tool": "crm_update_accounts", "target": "crm",
                "inputs": {"account_id": "record.id", "industry": "proposal.industry",
                           "phone_e164": "proposal.phone_e164", "email_status": "proposal.email_status"}},
               {"id": "tickets", "tool": "tickets_open", "target": "tickets",
                "inputs": {"account_id": "record.id", "email_status": "proposal.email_status",
                           "phone_e164": "proposal.phone_e164"}}],
    "unsupported": ["only German accounts: a plan runs on every record of its input; filter the input first"],
}


def good() -> dict[str, Any]:
    return copy.deepcopy(GOOD)


def llm_plan() -> Plan:
    """One step: the model-backed industry classifier, falling back to the deterministic one."""
    return Plan(request="industries", dataset=DatasetSpec(name="accounts", columns=COLUMNS),
                steps=[{"id": "industry", "tool": "classify_industry_llm", "fallback": "classify_industry",
                        "inputs": {"name": "record.name", "industry": "record.industry",
                                   "description": "record.description"}}],
                proposes={"industry": "steps.industry.industry"}, policy=Policy())
