"""Is an e-mail address well formed, and what is its domain: email-validator's answer, quickly.

email-validator checks an address against the RFCs and the Unicode and IDNA rules, which costs it
tens of microseconds an address: the largest single cost of an enrichment run, measured. Most
addresses in a CRM are in one plain form (ASCII letters, digits and ``._%+-`` before the ``@``,
letter-digit-hyphen labels after it, a top-level domain of letters) that the library accepts in
every case; those are answered here, within its own length limits and special-use names.
Everything else goes to the library: non-ASCII text, quoted or unusual local parts, Punycode and
``ab--`` labels, over-long parts, special-use domains and every malformed address. The tests
check the fast answers against the library's over the sample, generated data, edge cases and
random strings.
"""

from __future__ import annotations

import re

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from email_validator.rfc_constants import (
    DNS_LABEL_LENGTH_LIMIT,
    DOMAIN_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    LOCAL_PART_MAX_LENGTH,
)

# No re.IGNORECASE: with it, non-ASCII letters such as the Kelvin sign would match [a-z].
_PLAIN_ADDRESS = re.compile(
    r"([A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*)"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]+)"
)
_SPECIAL_USE_SUFFIXES = tuple(f".{name}" for name in SPECIAL_USE_DOMAIN_NAMES)


def plain_address_domain(text: str) -> str | None:
    """The lower-case domain of an address in the plain form email-validator always accepts; None
    when the address is not in that form (which says nothing about whether the library accepts it)."""
    if len(text) > EMAIL_MAX_LENGTH or not text.isascii():
        return None
    match = _PLAIN_ADDRESS.fullmatch(text)
    if match is None:
        return None
    local, domain = match.group(1), match.group(2).lower()
    if len(local) > LOCAL_PART_MAX_LENGTH or len(domain) > DOMAIN_MAX_LENGTH:
        return None
    # "xn--" labels must be valid Punycode and other "ab--" labels are reserved: the library decides.
    if any(len(label) > DNS_LABEL_LENGTH_LIMIT or label[2:4] == "--" for label in domain.split(".")):
        return None
    if domain in SPECIAL_USE_DOMAIN_NAMES or domain.endswith(_SPECIAL_USE_SUFFIXES):
        return None
    return domain


def address_domain(text: str) -> str | None:
    """The domain of a well-formed address (``validate_email(...).domain``, deliverability not
    checked), or None when the address is malformed."""
    domain = plain_address_domain(text)
    if domain is not None:
        return domain
    try:
        return validate_email(text, check_deliverability=False).domain
    except EmailNotValidError:
        return None
