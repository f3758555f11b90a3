"""classify_industry and guess_industry_from_name: taxonomy labels with honest confidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airlock.errors import InputDataError
from airlock.registry import ToolSpec
from tools.domain import extract_domain
from tools.firmographics import FirmographicsIndex
from tools.industry import MATCH_MEMO_ENTRIES, Taxonomy, make_classify_industry, make_guess_industry_from_name


@pytest.fixture(scope="module")
def classify(taxonomy: Taxonomy) -> ToolSpec[Any, Any]:
    return make_classify_industry(taxonomy)


@pytest.fixture(scope="module")
def guess(taxonomy: Taxonomy) -> ToolSpec[Any, Any]:
    return make_guess_industry_from_name(taxonomy)


def test_taxonomy_loads(taxonomy: Taxonomy) -> None:
    assert len(taxonomy.labels) == 20
    assert {"Software", "Financial Services", "Media & Entertainment", "Nonprofit"} <= set(taxonomy.labels)
    assert "fintech" in taxonomy.synonyms["Financial Services"]


@pytest.mark.parametrize(
    ("raw", "label", "confidence"),
    [
        ("Software", "Software", 1.0),
        ("financial services", "Financial Services", 1.0),
        ("RealEstate", "Real Estate", 1.0),
        ("media & entertainment", "Media & Entertainment", 1.0),
        ("IT", "Software", 0.95),
        ("Fin-tech", "Financial Services", 0.95),
        ("NGO", "Nonprofit", 0.95),
        ("Consumer Products", "Consumer Goods", 0.95),
    ],
)
def test_exact_label_or_synonym(classify: ToolSpec[Any, Any], raw: str, label: str, confidence: float) -> None:
    out = classify.call({"industry": raw})
    assert (out.industry, out.confidence, out.flags) == (label, confidence, [])


@pytest.mark.parametrize(
    ("raw", "label"),
    [("hlthcare", "Healthcare"), ("software dev", "Software"), ("manufactoring", "Manufacturing"),
     ("logistic", "Logistics"), ("Transport/Logistics", "Logistics")],
)
def test_fuzzy_raw_industry_is_less_sure(classify: ToolSpec[Any, Any], raw: str, label: str) -> None:
    out = classify.call({"industry": raw})
    assert out.industry == label
    assert 0.7 <= out.confidence <= 0.85
    assert out.flags == ["industry_fuzzy_match"]


def test_typed_industries_are_matched_once_and_the_memo_stays_bounded(data_dir: Path) -> None:
    taxonomy = Taxonomy.from_csv(data_dir / "taxonomy.csv")
    first = taxonomy.match_term("hlthcare")
    assert first is not None and first[2] == "fuzzy"
    assert taxonomy.match_term("hlthcare") == first and taxonomy.match_term("xyzzy") is None
    for i in range(MATCH_MEMO_ENTRIES + 5):
        taxonomy.match_term(f"unheard of {i}")
    assert len(taxonomy._matched) <= MATCH_MEMO_ENTRIES
    assert taxonomy.match_term("hlthcare") == first


def test_description_keywords_when_raw_is_useless(classify: ToolSpec[Any, Any]) -> None:
    out = classify.call({"industry": "misc", "description": "Provides freight and warehousing services in Hamburg."})
    assert out.industry == "Logistics"
    assert out.flags == ["industry_raw_unrecognized", "industry_from_keywords"]
    assert out.confidence == pytest.approx(0.65)


def test_one_keyword_is_weak_evidence(classify: ToolSpec[Any, Any]) -> None:
    out = classify.call({"description": "We run hotels."})
    assert (out.industry, out.confidence) == ("Hospitality", pytest.approx(0.55))


def test_tied_keywords_are_ambiguous(classify: ToolSpec[Any, Any]) -> None:
    out = classify.call({"description": "Solar parks and a small hotel."})
    assert out.industry == "Energy"  # taxonomy order breaks the tie, deterministically
    assert "industry_ambiguous" in out.flags and out.confidence == pytest.approx(0.4)


def test_reference_breaks_a_tie(classify: ToolSpec[Any, Any]) -> None:
    out = classify.call({"description": "Solar parks and a small hotel.", "ref_industry": "Hospitality"})
    assert out.industry == "Hospitality"
    assert out.flags == ["industry_from_keywords", "industry_ambiguous"]
    assert out.confidence == pytest.approx(0.5)


def test_reference_industry_is_the_fallback(classify: ToolSpec[Any, Any]) -> None:
    out = classify.call({"industry": "", "description": "Family-owned since 1950.", "ref_industry": "Retail"})
    assert (out.industry, out.confidence, out.flags) == ("Retail", 0.7, ["industry_from_reference"])


def test_reference_agreement_and_conflict(classify: ToolSpec[Any, Any]) -> None:
    agree = classify.call({"industry": "hlthcare", "ref_industry": "Healthcare"})
    alone = classify.call({"industry": "hlthcare"})
    conflict = classify.call({"industry": "hlthcare", "ref_industry": "Retail"})
    assert agree.confidence == pytest.approx(alone.confidence + 0.1, abs=1e-4)
    assert conflict.industry == "Healthcare"
    assert conflict.confidence == pytest.approx(alone.confidence * 0.8, abs=1e-4)
    assert "industry_conflicts_reference" in conflict.flags


def test_unknown_reference_label_is_ignored(classify: ToolSpec[Any, Any]) -> None:
    out = classify.call({"ref_industry": "Widgets"})
    assert (out.industry, out.confidence) == (None, 0.0)
    assert out.flags == ["ref_industry_unknown", "industry_unclassified"]


def test_no_evidence(classify: ToolSpec[Any, Any]) -> None:
    out = classify.call({"industry": "n/a", "description": "See website."})
    assert (out.industry, out.confidence) == (None, 0.0)
    assert out.flags[-1] == "industry_unclassified"


@pytest.mark.parametrize(
    ("name", "label", "confidence"),
    [("Nordwind Logistics GmbH", "Logistics", 0.4), ("Helio Pharma Therapeutics AG", "Pharmaceuticals", 0.5),
     ("Starridge Real Estate Ltd", "Real Estate", 0.4), ("Corwave Foods S.A.", "Consumer Goods", 0.4)],
)
def test_guess_from_name(guess: ToolSpec[Any, Any], name: str, label: str, confidence: float) -> None:
    out = guess.call({"name": name})
    assert (out.industry, out.confidence, out.flags) == (label, confidence, ["industry_from_name"])


def test_guess_from_name_without_telling_word(guess: ToolSpec[Any, Any]) -> None:
    out = guess.call({"name": "Nordwind GmbH"})
    assert (out.industry, out.confidence, out.flags) == (None, 0.0, ["industry_unclassified"])


def test_both_produce_industry(classify: ToolSpec[Any, Any], guess: ToolSpec[Any, Any]) -> None:
    assert classify.produces == guess.produces == ("industry",)
    assert guess.requires == ("name",)


def test_from_csv_errors(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("label,keywords\nSoftware,app\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="synonyms"):
        Taxonomy.from_csv(tmp_path / "t.csv")


def test_sample_confidence_is_calibrated(
    classify: ToolSpec[Any, Any], index: FirmographicsIndex, sample: tuple[list[dict[str, str]], dict]
) -> None:
    """High confidence must mean right; a real share of records must be left for review."""
    accounts, truth = sample
    high = high_right = low = 0
    for account in accounts:
        domain = extract_domain.call({"website": account["website"], "email": account["email"]}).domain
        match = index.lookup(account["name"], domain, truth[account["id"]]["country_code"])
        out = classify.call({
            "industry": account["industry"], "description": account["description"], "name": account["name"],
            "ref_industry": match.company.industry if match.company else None,
        })
        if out.confidence >= 0.8:
            high += 1
            high_right += out.industry == truth[account["id"]]["industry"]
        else:
            low += 1
    assert 0.25 < low / len(accounts) < 0.45
    assert high_right / high > 0.98
