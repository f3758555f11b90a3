"""``normalize_phone``: E.164 phone numbers, for valid numbers only.

phonenumbers does the parsing (national formats, ``Tel:`` prefixes, ``(0)`` trunk codes, extensions)
and the validation against each country's numbering plan. The account's country is the default
region; a number written with a leading ``+`` carries its own country and ignores it.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult
from pydantic import BaseModel, ConfigDict, Field

from airlock.registry import SideEffect, tool

_LENGTH_FLAGS = {
    ValidationResult.TOO_SHORT: "phone_too_short",
    ValidationResult.TOO_LONG: "phone_too_long",
    ValidationResult.INVALID_LENGTH: "phone_invalid_length",
}

_PARSE_FLAGS = {
    NumberParseException.TOO_SHORT_NSN: "phone_too_short",
    NumberParseException.TOO_SHORT_AFTER_IDD: "phone_too_short",
    NumberParseException.TOO_LONG: "phone_too_long",
}


class PhoneInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str | None = Field(default=None, max_length=64)
    country_code: str | None = None


class PhoneOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone_e164: str | None = None
    confidence: float = 0.0
    flags: list[str] = []


def _region(country_code: str | None) -> str | None:
    code = (country_code or "").strip().upper()
    return code if code in phonenumbers.SUPPORTED_REGIONS else None


def _has_letters(text: str) -> bool:
    """Three ASCII letters at least: without them phonenumbers' is_alpha_number is False (its
    pattern asks for three), and most numbers have none, so the pattern need not run for them."""
    return sum(1 for c in text if c.isascii() and c.isalpha()) >= 3


def _invalid(*flags: str) -> PhoneOutput:
    return PhoneOutput(phone_e164=None, confidence=0.0, flags=["phone_invalid", *flags])


@tool(effect=SideEffect.NONE, version="1")
def normalize_phone(data: PhoneInput) -> PhoneOutput:
    """The phone number in E.164 form (+4930123456), parsed in the account's country (ISO alpha-2)
    unless written with a leading +. Only numbers valid for their country's numbering plan are
    returned; others give the flag phone_invalid, a missing one phone_missing. Extensions are dropped."""
    raw = (data.phone or "").strip()
    if not raw:
        return PhoneOutput(phone_e164=None, confidence=0.0, flags=["phone_missing"])
    region = _region(data.country_code)
    text = raw
    if region is None and text.startswith("00"):
        # Without a home region "00" cannot be read as the international prefix; it nearly always is.
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as error:
        if error.error_type == NumberParseException.INVALID_COUNTRY_CODE and region is None:
            return _invalid("phone_region_unknown")
        return _invalid(_PARSE_FLAGS.get(error.error_type, "phone_unparseable"))
    # is_valid_number(number) is is_valid_number_for_region(number, region_code_for_number(number)):
    # the number's region is worked out once here, for the validity and the mismatch check alike (for a
    # calling code shared by several regions, +1 or +44, finding it was a quarter of this tool's time).
    number_region = phonenumbers.region_code_for_number(number)
    if number_region is None or not phonenumbers.is_valid_number_for_region(number, number_region):
        reason = phonenumbers.is_possible_number_with_reason(number)
        return _invalid(*([_LENGTH_FLAGS[reason]] if reason in _LENGTH_FLAGS else []))
    flags: list[str] = []
    confidence = 1.0
    if number.extension:
        flags.append("phone_extension_dropped")
        confidence = 0.9
    if _has_letters(raw) and phonenumbers.is_alpha_number(raw):
        # Letters turned into digits (vanity numbers) are more often junk in a CRM than real.
        flags.append("phone_letters_converted")
        confidence = min(confidence, 0.5)
    if region is not None and number_region != region:
        flags.append("phone_country_mismatch")
        confidence = min(confidence, 0.7)
    return PhoneOutput(
        phone_e164=phonenumbers.format_number(number, PhoneNumberFormat.E164), confidence=confidence, flags=flags
    )
