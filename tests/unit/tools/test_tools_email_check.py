"""check_email: syntax-only validation into valid / invalid / unknown."""

from __future__ import annotations

import typing

import pytest
from email_validator import EmailNotValidError, validate_email

from airlock.errors import ToolOutputError
from tools.email_check import EmailCheckOutput, check_email


@pytest.mark.parametrize("email", ["info@nordwind.de", "Anna.Mueller@Example.CO.UK", "sales@nordwind-logistics.com.au"])
def test_valid(email: str) -> None:
    out = check_email.call({"email": email})
    assert out.email_status == "valid"
    assert 0.8 <= out.confidence < 1.0
    assert out.flags == []


@pytest.mark.parametrize(
    "email",
    ["info.nordwind.de", "info@@nordwind.de", "info @ nordwind.de", "info@nordwind.de.", "info@nordwind",
     "anna,mueller@nordwind.de", "@nordwind.de", "info@"],
)
def test_invalid(email: str) -> None:
    out = check_email.call({"email": email})
    assert out.email_status == "invalid"
    assert "email_invalid" in out.flags


@pytest.mark.parametrize("email", [None, "", "   "])
def test_empty_is_unknown(email: str | None) -> None:
    out = check_email.call({"email": email})
    assert (out.email_status, out.confidence, out.flags) == ("unknown", 0.0, ["email_missing"])


def test_freemail_is_valid_but_flagged() -> None:
    out = check_email.call({"email": "max.berg12@gmx.de"})
    assert out.email_status == "valid"
    assert out.flags == ["freemail_address"]


def test_outer_whitespace_is_trimmed_and_said() -> None:
    out = check_email.call({"email": " info@nordwind.de "})
    assert out.email_status == "valid"
    assert out.flags == ["email_whitespace_trimmed"]


def test_status_is_a_literal_and_enforced() -> None:
    annotation = EmailCheckOutput.model_fields["email_status"].annotation
    assert set(typing.get_args(annotation)) == {"valid", "invalid", "unknown"}
    with pytest.raises(ToolOutputError):
        check_email.validate_output({"email_status": "maybe", "confidence": 1.0, "flags": []})


def test_agrees_with_email_validator_on_the_sample(sample: tuple[list[dict[str, str]], dict]) -> None:
    accounts, _ = sample
    statuses = {"valid": 0, "invalid": 0, "unknown": 0}
    for account in accounts:
        out = check_email.call({"email": account["email"]})
        statuses[out.email_status] += 1
        if out.email_status == "valid":
            validate_email(account["email"].strip(), check_deliverability=False)
        elif out.email_status == "invalid":
            with pytest.raises(EmailNotValidError):
                validate_email(account["email"].strip(), check_deliverability=False)
    assert all(count > 0 for count in statuses.values())
    assert 0.03 < statuses["invalid"] / len(accounts) < 0.15
