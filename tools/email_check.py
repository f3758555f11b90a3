"""``check_email``: is the account's e-mail address syntactically usable?

Syntax only, with email-validator (``tools.email_syntax`` answers the plain common form for it):
deliverability (DNS) is never checked, so the tool stays pure and offline. ``valid`` therefore means
"well formed", which is why its confidence stays below 1.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from airlock.registry import SideEffect, tool
from tools.domain import is_freemail
from tools.email_syntax import address_domain

EmailStatus = Literal["valid", "invalid", "unknown"]


class EmailCheckInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=320)


class EmailCheckOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email_status: EmailStatus
    confidence: float = 0.0
    flags: list[str] = []


@tool(effect=SideEffect.NONE, version="1")
def check_email(data: EmailCheckInput) -> EmailCheckOutput:
    """Classify the e-mail address as valid, invalid (malformed: no @, @@, spaces, trailing dot, no
    top-level domain...) or unknown (empty). Syntax check only, no DNS lookup; free-mail addresses are
    valid but flagged."""
    text = (data.email or "").strip()
    if not text:
        return EmailCheckOutput(email_status="unknown", confidence=0.0, flags=["email_missing"])
    flags = ["email_whitespace_trimmed"] if text != data.email else []
    domain = address_domain(text)
    if domain is None:
        # The syntax rules are definite: an address that breaks them is certainly unusable.
        return EmailCheckOutput(email_status="invalid", confidence=1.0, flags=[*flags, "email_invalid"])
    if is_freemail(domain):
        flags.append("freemail_address")
    return EmailCheckOutput(email_status="valid", confidence=0.9, flags=flags)
