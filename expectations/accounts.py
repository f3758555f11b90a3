"""What a proposed account enrichment must look like before it may be written to the CRM.

Three layers, each a different kind of knowledge: ``ProposedAccount`` is the output contract (a
value of the wrong shape is rejected), ``build_suite`` is the Great Expectations suite run on every
batch of proposed records, and ``RULES`` are business rules that need a person's judgement.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pycountry
from pydantic import BaseModel, ConfigDict, Field

from airlock.validation import Rule

TAXONOMY_CSV = Path(__file__).resolve().parent.parent / "data" / "taxonomy.csv"
EMPLOYEE_BANDS = ("1-10", "11-50", "51-200", "201-500", "501-1000", "1001-5000", "5001-10000", "10001+")
E164 = r"^\+[1-9][0-9]{6,14}$"
DOMAIN = r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
FREEMAIL = frozenset({"gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "gmx.de",
                      "web.de", "icloud.com", "aol.com", "proton.me", "protonmail.com", "live.com"})


@cache
def taxonomy_labels() -> tuple[str, ...]:
    with TAXONOMY_CSV.open(newline="", encoding="utf-8") as handle:
        return tuple(row["label"] for row in csv.DictReader(handle))


@cache
def country_codes() -> tuple[str, ...]:
    return tuple(sorted(c.alpha_2 for c in pycountry.countries))


class ProposedAccount(BaseModel):
    """The output contract: shape only. Missing values are allowed here; rules decide about them."""

    model_config = ConfigDict(extra="forbid")

    domain: str | None = Field(default=None, pattern=DOMAIN)
    country_code: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    phone_e164: str | None = Field(default=None, pattern=E164)
    email_status: Literal["valid", "invalid", "unknown"] | None = None
    industry: str | None = None
    employee_band: Literal[EMPLOYEE_BANDS] | None = None  # type: ignore[valid-type]


def build_suite() -> Any:
    """The GX suite on proposed records. ``severity: reject`` means the value must never reach
    the CRM; the rest sends the record to a person."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name="proposed_accounts")
    reject = {"severity": "reject"}
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="country_code", value_set=list(country_codes()),
                                                          meta=reject))
    suite.add_expectation(gxe.ExpectColumnValuesToMatchRegex(column="phone_e164", regex=E164, meta=reject))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="industry", value_set=list(taxonomy_labels()),
                                                          meta=reject))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="employee_band", value_set=list(EMPLOYEE_BANDS),
                                                          meta=reject))
    suite.add_expectation(gxe.ExpectColumnValuesToMatchRegex(column="domain", regex=DOMAIN, meta=reject))
    # Two accounts claiming one domain are likely duplicates: a person merges or confirms them. Judged
    # over the whole run, not per batch (airlock.validation.run_scope): the first claim passes.
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="domain"))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="country_code"))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="industry"))
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    return suite


def _email_domain(record: Mapping[str, Any]) -> str | None:
    email = (record.get("email") or "").strip().lower()
    return email.rsplit("@", 1)[1] if email.count("@") == 1 else None


def _email_domain_mismatch(after: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """A business address on another company's domain is worth a look before it lands in the CRM."""
    email_domain, domain = _email_domain(record), after.get("domain")
    if after.get("email_status") != "valid" or not email_domain or not domain or email_domain in FREEMAIL:
        return False
    return not (email_domain == domain or email_domain.endswith("." + domain))


def _nothing_to_reach(after: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    return after.get("phone_e164") is None and after.get("email_status") != "valid"


RULES: list[Rule] = [
    Rule("email_domain_mismatch", "review", "the e-mail's company domain differs from the website's",
         _email_domain_mismatch),
    Rule("no_contact_channel", "review", "neither a valid phone number nor a valid e-mail address",
         _nothing_to_reach),
]
