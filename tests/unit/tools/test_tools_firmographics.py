"""lookup_firmographics: domain hits, blocked fuzzy name matching, and its cost."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rapidfuzz import process

from airlock.errors import InputDataError
from airlock.registry import SideEffect, ToolSpec
from tools.domain import extract_domain
from tools.firmographics import (
    FirmographicsIndex,
    ReferenceCompany,
    block_keys,
    make_lookup_firmographics,
    normalize_name,
)

COMPANIES = [
    ReferenceCompany("Nordwind Logistics GmbH", "nordwind-logistics.de", "DE", "Logistics", 420),
    ReferenceCompany("Nordwind Energy AG", "nordwind-energy.de", "DE", "Energy", 80),
    ReferenceCompany("Bluepeak Software Inc.", "bluepeak.com", "US", "Software", 35),
    ReferenceCompany("Bluepeak Software Ltd", "bluepeak.co.uk", "GB", "Software", 12),
    ReferenceCompany("Starridge Foods S.p.A.", "starridge.it", "IT", "Consumer Goods", 2300),
]


@pytest.fixture
def lookup() -> ToolSpec[Any, Any]:
    return make_lookup_firmographics(FirmographicsIndex(COMPANIES))


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("The Nordwind Logistics GmbH & Co. KG", "nordwind logistics"),
        ("Starridge Foods S.p.A.", "starridge foods"),
        ("Foo Co., Ltd.", "foo"),
        ("Bar Pty Ltd", "bar"),
        ("Smith & Sons", "smith and sons"),
        ("Zürich Versicherung AG", "zurich versicherung"),
        ("AG", "ag"),
    ],
)
def test_normalize_name(name: str, normalized: str) -> None:
    assert normalize_name(name) == normalized


def test_domain_match_wins(lookup: ToolSpec[Any, Any]) -> None:
    out = lookup.call({"name": "Something Else Entirely", "domain": "Nordwind-Energy.de", "country_code": "DE"})
    assert (out.matched_name, out.ref_industry, out.ref_employees) == ("Nordwind Energy AG", "Energy", 80)
    assert out.confidence == 1.0 and out.flags == ["matched_by_domain"]


def test_legal_form_and_case_do_not_matter(lookup: ToolSpec[Any, Any]) -> None:
    out = lookup.call({"name": "NORDWIND LOGISTICS LTD", "domain": None, "country_code": "DE"})
    assert out.matched_name == "Nordwind Logistics GmbH"
    assert out.confidence == 1.0 and out.flags == ["matched_by_name"]


def test_same_name_prefers_same_country(lookup: ToolSpec[Any, Any]) -> None:
    assert lookup.call({"name": "Bluepeak Software", "country_code": "GB"}).matched_name == "Bluepeak Software Ltd"
    assert lookup.call({"name": "Bluepeak Software", "country_code": "US"}).matched_name == "Bluepeak Software Inc."


@pytest.mark.parametrize("typo", ["Nordwnid Logistics", "Nrodwind Logistics GmbH", "Nordwind Logstics"])
def test_typo_matches_with_score_as_confidence(lookup: ToolSpec[Any, Any], typo: str) -> None:
    out = lookup.call({"name": typo, "country_code": "DE"})
    assert out.matched_name == "Nordwind Logistics GmbH"
    assert 0.8 <= out.confidence < 1.0
    assert out.flags == ["matched_by_fuzzy_name"]


def test_other_country_and_own_domain_lower_the_confidence(lookup: ToolSpec[Any, Any]) -> None:
    plain = lookup.call({"name": "Nordwnid Logistics", "country_code": "DE"})
    other = lookup.call({"name": "Nordwnid Logistics", "country_code": "FR", "domain": "nordwnid.fr"})
    assert other.matched_name == plain.matched_name
    assert other.confidence == pytest.approx(plain.confidence - 0.15)
    assert {"match_country_differs", "match_domain_differs"} <= set(other.flags)


@pytest.mark.parametrize("name", ["Krellquist Holding", "Zzz", "Harvest Farms Cooperative"])
def test_no_match_below_threshold(lookup: ToolSpec[Any, Any], name: str) -> None:
    out = lookup.call({"name": name, "domain": "unknown.example", "country_code": "DE"})
    assert (out.matched_name, out.ref_industry, out.ref_employees, out.confidence) == (None, None, None, 0.0)
    assert out.flags == ["no_firmographics_match"]


def test_nothing_to_match_on(lookup: ToolSpec[Any, Any]) -> None:
    assert lookup.call({}).flags == ["no_firmographics_match", "name_missing"]


def test_contract(lookup: ToolSpec[Any, Any]) -> None:
    assert lookup.name == "lookup_firmographics"
    assert lookup.effect is SideEffect.READ
    assert lookup.produces == ("matched_name", "ref_industry", "ref_employees")


def test_an_index_loaded_on_first_use_is_built_once_whatever_the_threads() -> None:
    import threading
    import time

    built: list[int] = []

    def load() -> FirmographicsIndex:
        built.append(threading.get_ident())
        time.sleep(0.05)  # long enough for the other threads to arrive while it builds
        return FirmographicsIndex(COMPANIES)

    lookup = make_lookup_firmographics(load)
    assert built == []  # nothing is read until asked
    names = []
    threads = [threading.Thread(target=lambda: names.append(lookup.call({"domain": "bluepeak.com"}).matched_name))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert names == ["Bluepeak Software Inc."] * 8 and len(built) == 1
    lookup.call({"name": "Nordwind Energy"})
    assert len(built) == 1


def test_a_reference_that_cannot_be_read_is_read_once_and_fails_every_lookup() -> None:
    attempts: list[int] = []

    def load() -> FirmographicsIndex:
        attempts.append(1)
        raise InputDataError("reference.csv: an employee count is not a whole number")

    lookup = make_lookup_firmographics(load)
    for _ in range(3):  # a record each: the file is not read again for each of them
        with pytest.raises(InputDataError, match="not a whole number"):
            lookup.call({"name": "Nordwind"})
    assert len(attempts) == 1


def test_from_csv_rejects_wrong_columns(tmp_path: Path) -> None:
    bad = tmp_path / "ref.csv"
    bad.write_text("name,domain\nA,a.de\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="country_code"):
        FirmographicsIndex.from_csv(bad)
    with pytest.raises(InputDataError):
        FirmographicsIndex.from_csv(tmp_path / "missing.csv")
    bad.write_text("name,domain,country_code,industry,employees\nA,a.de,DE,Retail,5\nB,b.de\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="fewer columns"):
        FirmographicsIndex.from_csv(bad)
    bad.write_text("employees,industry,country_code,domain,name\n5,Retail, de ,A.DE,A GmbH\n\n", encoding="utf-8")
    [company] = FirmographicsIndex.from_csv(bad).companies  # columns by name, in any order
    assert company == ("A GmbH", "a.de", "DE", "Retail", 5)


def test_blocks_are_small(index: FirmographicsIndex) -> None:
    assert len(index) == 5000
    sizes = index.block_sizes()
    assert max(sizes.values()) < 0.03 * len(index)
    assert statistics.mean(sizes.values()) < 20


def test_a_typo_in_the_first_letters_keeps_the_second_block() -> None:
    assert block_keys("nordwind logistics")[1] == block_keys("rnodwind logistics")[1]
    assert block_keys("nordwind logistics")[0] == block_keys("nordwnid logistics")[0]


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many reference names each rapidfuzz call compares a record with."""
    sizes: list[int] = []
    original = process.extract

    def counting(query: Any, choices: Any, **kwargs: Any) -> Any:
        sizes.append(len(choices))
        return original(query, choices, **kwargs)

    monkeypatch.setattr(process, "extract", counting)
    yield sizes


def test_lookup_never_scans_the_reference(
    index: FirmographicsIndex, sample: tuple[list[dict[str, str]], dict], compared: list[int]
) -> None:
    accounts, _ = sample
    for account in accounts:
        index.lookup(account["name"], None, None)  # name only: every record takes the fuzzy path
    assert compared, "the fuzzy path was not exercised"
    assert max(compared) < 0.03 * len(index)
    assert sum(compared) / len(accounts) < 0.03 * len(index)


def test_sample_matches(index: FirmographicsIndex, sample: tuple[list[dict[str, str]], dict]) -> None:
    accounts, truth = sample
    lookup = make_lookup_firmographics(index)
    payloads = []
    for account in accounts:
        domain = extract_domain.call({"website": account["website"], "email": account["email"]}).domain
        country = truth[account["id"]]["country_code"]
        payloads.append({"name": account["name"], "domain": domain, "country_code": country})
    # Cost is checked without a clock (test_lookup_never_scans_the_reference counts comparisons);
    # the time per record is the benchmark's business.
    outputs = [lookup.fn(lookup.validate_input(p)) for p in payloads]
    right = wrong = false_match = 0
    for account, out in zip(accounts, outputs, strict=True):
        expected = truth[account["id"]]["reference_name"]
        if expected and out.matched_name == expected:
            right += 1
        elif expected and out.matched_name:
            wrong += 1
        elif not expected and out.matched_name:
            false_match += 1
    known = sum(1 for t in truth.values() if t["reference_name"])
    assert 0.6 < known / len(accounts) < 0.8
    assert right / known > 0.97
    assert wrong + false_match < 0.01 * len(accounts)


def test_name_only_matching_on_the_sample(index: FirmographicsIndex, sample: tuple[list[dict[str, str]], dict]) -> None:
    accounts, truth = sample
    named = [a for a in accounts if a["name"].strip() and truth[a["id"]]["reference_name"]]
    hits = sum(index.lookup(a["name"], None, None).company is not None for a in named)
    right = sum(
        (m := index.lookup(a["name"], None, truth[a["id"]]["country_code"]).company) is not None
        and m.name == truth[a["id"]]["reference_name"]
        for a in named
    )
    assert hits / len(named) > 0.97
    assert right / len(named) > 0.95
