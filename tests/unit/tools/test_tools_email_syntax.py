"""tools.email_syntax: the fast answers for plain addresses are email-validator's answers."""

from __future__ import annotations

import random
from types import ModuleType

import pytest
from email_validator import EmailNotValidError, validate_email

from tools.email_syntax import address_domain, plain_address_domain

EDGE_CASES = [
    "info@nordwind.de", "Anna.Mueller@Example.CO.UK", "a+b%c_d-e@x-y.com", "first.last@sub.domain.travel",
    "info@localhost", "info@printer.local", "a@b.test", "a@x.invalid", "a@10.in-addr.arpa", "a@site.onion",
    "a@xn--bcher-kva.de", "a@xn--invalid.de", "a@ab--cd.de", "a@abc--d.de", "a@-abc.de", "a@abc-.de",
    "a@abc.d3", "a@abc.123", "a@abc.c-m", "a@abc", ".a@abc.de", "a.@abc.de", "a..b@abc.de", "a@abc..de",
    "a@abc.de.", "@abc.de", "a@", "a@@abc.de", "a b@abc.de", "a@ab c.de", "\"a b\"@abc.de", "a!b@abc.de",
    "a/b@abc.de", "a'b@abc.de", "müller@abc.de", "a@bücher.de", "a@ABC.DE", "A@K\u212a.de", "a@[1.2.3.4]",
    "x" * 64 + "@abc.de", "x" * 65 + "@abc.de", "a@" + "b" * 63 + ".de", "a@" + "b" * 64 + ".de",
    "a@" + ".".join(["b" * 60] * 4) + ".de", "a@" + ".".join(["b" * 61] * 4) + ".com",
    "x" * 64 + "@" + ".".join(["b" * 60] * 3) + ".abcdefgh", "Name <a@abc.de>", "a@abc.de\n", "a\t@abc.de",
]
ALNUM = ["a", "Z", "0", "9", "mail"]
PIECES = ["a", "Z", "0", "9", ".", "-", "_", "+", "%", "xn--", "ab--", "de", "com", "co.uk", "localhost", "test",
          "arpa", "é", "\u212a", " ", "!", '"', "[", "]", "@", "x" * 30, "y" * 63]


def _near_address(rng: random.Random) -> str:
    """Mostly plain addresses, often with a piece of dirt put in somewhere."""
    def word(pieces: list[str]) -> str:
        inner = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))
        return rng.choice(ALNUM) + inner + rng.choice(ALNUM)
    labels = [word([*ALNUM, "-", "xn--", "ab--", "x" * 30, "y" * 63]) for _ in range(rng.randint(0, 3))]
    address = f"{word([*ALNUM, '.', '-', '_', '+', '%'])}@{'.'.join([*labels, rng.choice(PIECES[11:19])])}"
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        at = rng.randint(0, len(address))
        address = address[:at] + rng.choice(PIECES) + address[at:]
    return address


def _agree_with_the_library(address: str) -> None:
    fast = plain_address_domain(address)
    try:
        library: str | None = validate_email(address, check_deliverability=False).domain
    except EmailNotValidError:
        library = None
    if fast is not None:
        assert library == fast, f"{address!r}: fast path says {fast!r}, the library {library!r}"
    assert address_domain(address) == library, address


@pytest.mark.parametrize("address", EDGE_CASES)
def test_edge_cases_agree_with_the_library(address: str) -> None:
    _agree_with_the_library(address)


def test_random_near_addresses_agree_with_the_library() -> None:
    rng = random.Random(11)
    answered = 0
    for _ in range(10_000):
        address = _near_address(rng)
        _agree_with_the_library(address)
        answered += plain_address_domain(address) is not None
    assert answered > 1_000  # the strings reach the fast path, not only the library


def test_generated_addresses_agree_and_mostly_take_the_fast_path(
        generator: ModuleType, reference: list[dict[str, str | int]]) -> None:
    accounts = generator.generate_accounts(10_000, 3, reference)
    addresses = [a["email"].strip() for a in accounts if a["email"].strip()]
    well_formed = fast = 0
    for address in addresses:
        _agree_with_the_library(address)
        well_formed += address_domain(address) is not None
        fast += plain_address_domain(address) is not None
    assert fast >= 0.95 * well_formed  # why the module exists: the library is rarely needed


def test_plain_domains_come_back_in_lower_case() -> None:
    assert plain_address_domain("Anna@Nordwind-Logistics.DE") == "nordwind-logistics.de"
    assert plain_address_domain("a@printer.local") is None  # special-use: the library rejects it
