"""``crm_update_accounts``: write enriched account fields to the CRM, idempotently, a batch at a time.

Each update carries its idempotency key and the hash of its values; the CRM records the key in the
same transaction as the write (see systems/crm.py), so a retried, resumed or replayed batch never
applies twice: keys it has seen come back as ``duplicate``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from airlock.registry import SideEffect, ToolSpec, tool
from systems.crm import AccountChange, CrmDatabase


class AccountUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_key: str
    values_hash: str
    account_id: str
    domain: str | None = None
    country_code: str | None = None
    phone_e164: str | None = None
    email_status: str | None = None
    industry: str | None = None
    employee_band: str | None = None


class AccountWriteResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str
    status: Literal["applied", "duplicate", "unchanged"]
    # The enriched values an applied update replaced: the ledger keeps them, and a compensation
    # writes them back through this same tool under a new key.
    before: dict[str, str | None] | None = None


def make_crm_update_accounts(crm: CrmDatabase) -> ToolSpec[Any, Any]:
    """The write tool bound to one CRM database."""

    @tool(effect=SideEffect.WRITE, version="1", batched=True)
    def crm_update_accounts(updates: list[AccountUpdate]) -> list[AccountWriteResult]:
        """Write the enriched fields (domain, country_code, phone_e164, email_status, industry,
        employee_band) of a batch of accounts to the CRM in one transaction, creating accounts it does
        not have. Idempotent: an update whose key the CRM already recorded is reported duplicate and
        changes nothing; values equal to the stored ones are reported unchanged. An applied update reports
        the values it replaced, so it can be compensated. Database outages raise a retryable
        infrastructure error."""
        # The validated model's own fields (flat strings), not a model_dump copy of them: half the cost,
        # and a chunk's commit builds 12,500 of these.
        changes = [AccountChange(**vars(update)) for update in updates]
        statuses = crm.apply_updates_with_before(changes)
        return [
            AccountWriteResult(account_id=update.account_id, status=status, before=before)
            for update, (status, before) in zip(updates, statuses, strict=True)
        ]

    return crm_update_accounts
