"""normalize_country: exact ISO lookups, aliases, cached fuzzy matching."""

from __future__ import annotations

import pytest

from tools.country import fuzzy_country, normalize_country


@pytest.mark.parametrize(
    ("raw", "code"),
    [("Germany", "DE"), ("DE", "DE"), ("DEU", "DE"), (" germany ", "DE"), ("GERMANY", "DE"), ("de", "DE"),
     ("United States of America", "US"), ("USA", "US"), ("United Kingdom", "GB"), ("Spain", "ES"),
     ("Korea, Republic of", "KR")],
)
def test_exact(raw: str, code: str) -> None:
    out = normalize_country.call({"country": raw})
    assert (out.country_code, out.confidence, out.flags) == (code, 1.0, [])


@pytest.mark.parametrize(
    ("raw", "code"),
    [("Deutschland", "DE"), ("U.S.", "US"), ("U.S.A.", "US"), ("UK", "GB"), ("Great Britain", "GB"),
     ("England", "GB"), ("Holland", "NL"), ("España", "ES"), ("Schweiz", "CH"), ("Österreich", "AT"),
     ("Germany.", "DE"), ("Nippon", "JP"), ("Brasil", "BR")],
)
def test_alias(raw: str, code: str) -> None:
    out = normalize_country.call({"country": raw})
    assert (out.country_code, out.confidence, out.flags) == (code, 0.95, [])


@pytest.mark.parametrize(("raw", "code"), [("Germny", "DE"), ("Untied States", "US"), ("Holand", "NL")])
def test_fuzzy(raw: str, code: str) -> None:
    out = normalize_country.call({"country": raw})
    assert out.country_code == code
    assert out.confidence == pytest.approx(0.7)
    assert out.flags == ["country_fuzzy_match"]


@pytest.mark.parametrize("raw", ["Atlantis", "N/A", "Earth", "-", "xx", "276", "unknown"])
def test_unknown(raw: str) -> None:
    out = normalize_country.call({"country": raw})
    assert (out.country_code, out.confidence, out.flags) == (None, 0.0, ["country_unknown"])


def test_missing() -> None:
    assert normalize_country.call({"country": "  "}).flags == ["country_missing"]
    assert normalize_country.call({}).country_code is None


def test_fuzzy_search_is_cached() -> None:
    fuzzy_country.cache_clear()
    normalize_country.call({"country": "Atlantis"})
    normalize_country.call({"country": "Atlantis"})
    info = fuzzy_country.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_sample_codes_match_the_truth(sample: tuple[list[dict[str, str]], dict]) -> None:
    accounts, truth = sample
    resolved = wrong = 0
    for account in accounts:
        out = normalize_country.call({"country": account["country"]})
        if out.country_code:
            resolved += 1
            wrong += out.country_code != truth[account["id"]]["country_code"]
    assert resolved > 0.9 * len(accounts)
    assert wrong / resolved < 0.01
