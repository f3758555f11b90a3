"""normalize_phone: E.164 for valid numbers only, in the account's country."""

from __future__ import annotations

import phonenumbers
import pytest

from tools.phone import normalize_phone


@pytest.mark.parametrize(
    ("phone", "country", "e164"),
    [
        ("030 1234567", "DE", "+49301234567"),
        ("01512 3456789", "DE", "+4915123456789"),
        ("+49 (0)30 1234567", "DE", "+49301234567"),
        ("Tel: +49 30 1234567", "DE", "+49301234567"),
        ("0049 30 1234567", "DE", "+49301234567"),
        ("(201) 555-0123", "US", "+12015550123"),
        ("07400 123456", "GB", "+447400123456"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("+41 78 123 45 67", None, "+41781234567"),
        ("0041 78 123 45 67", None, "+41781234567"),
        ("090-1234-5678", "jp", "+819012345678"),
    ],
)
def test_valid_numbers(phone: str, country: str | None, e164: str) -> None:
    out = normalize_phone.call({"phone": phone, "country_code": country})
    assert (out.phone_e164, out.confidence, out.flags) == (e164, 1.0, [])


def test_extension_is_dropped_and_said() -> None:
    out = normalize_phone.call({"phone": "+1 201-555-0123 ext. 12", "country_code": "US"})
    assert out.phone_e164 == "+12015550123"
    assert out.flags == ["phone_extension_dropped"]
    assert out.confidence < 1.0


def test_number_of_another_country_is_kept_but_flagged() -> None:
    out = normalize_phone.call({"phone": "+44 7400 123456", "country_code": "DE"})
    assert out.phone_e164 == "+447400123456"
    assert "phone_country_mismatch" in out.flags
    assert out.confidence <= 0.7


@pytest.mark.parametrize(
    ("phone", "country", "e164", "flags"),
    [
        # A calling code several regions share: the number's own region decides, not the code's first.
        ("+1 416 555 0123", "US", "+14165550123", ["phone_country_mismatch"]),  # Toronto
        ("(416) 555-0123", "CA", "+14165550123", []),
        ("+44 1624 812345", "GB", "+441624812345", ["phone_country_mismatch"]),  # Isle of Man
        ("01624 812345", "IM", "+441624812345", []),
    ],
)
def test_a_shared_calling_code_is_judged_by_the_numbers_own_region(
        phone: str, country: str, e164: str, flags: list[str]) -> None:
    out = normalize_phone.call({"phone": phone, "country_code": country})
    assert (out.phone_e164, out.flags) == (e164, flags)


@pytest.mark.parametrize("phone", ["+49 30 1234567 AB", "+49 30 12345 A", "+49 30 1234567"])
def test_fewer_than_three_letters_are_not_a_vanity_number(phone: str) -> None:
    out = normalize_phone.call({"phone": phone, "country_code": "DE"})
    assert "phone_letters_converted" not in out.flags


@pytest.mark.parametrize(
    ("phone", "country", "flag"),
    [
        ("01512", "DE", "phone_invalid"),
        ("123", "DE", "phone_invalid"),
        ("0000000000", "DE", "phone_invalid"),
        ("call reception", "DE", "phone_unparseable"),
        ("030 1234567", None, "phone_region_unknown"),
        ("030 1234567", "XX", "phone_region_unknown"),
        ("+1 201 555", "US", "phone_too_short"),
        ("+49 3", "DE", "phone_too_short"),
    ],
)
def test_invalid_numbers(phone: str, country: str | None, flag: str) -> None:
    out = normalize_phone.call({"phone": phone, "country_code": country})
    assert out.phone_e164 is None and out.confidence == 0.0
    assert out.flags[0] == "phone_invalid" and flag in out.flags


def test_letters_are_suspicious() -> None:
    out = normalize_phone.call({"phone": "+49 30 ABC DEF", "country_code": "DE"})
    assert "phone_letters_converted" in out.flags and out.confidence <= 0.5


@pytest.mark.parametrize("phone", [None, "", "  "])
def test_missing(phone: str | None) -> None:
    out = normalize_phone.call({"phone": phone, "country_code": "DE"})
    assert (out.phone_e164, out.confidence, out.flags) == (None, 0.0, ["phone_missing"])


def test_sample_outputs_are_valid_e164(sample: tuple[list[dict[str, str]], dict]) -> None:
    accounts, truth = sample
    produced = 0
    for account in accounts:
        out = normalize_phone.call({"phone": account["phone"], "country_code": truth[account["id"]]["country_code"]})
        if out.phone_e164 is not None:
            produced += 1
            assert out.phone_e164.startswith("+")
            assert phonenumbers.is_valid_number(phonenumbers.parse(out.phone_e164, None))
    present = sum(1 for a in accounts if a["phone"])
    # Clean numbers in the sample are valid; only the deliberately broken ones may fail.
    assert 0.8 < produced / present < 0.97
