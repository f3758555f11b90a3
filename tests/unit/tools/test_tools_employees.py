"""band_employees: head-count text to a band, with impossible counts caught."""

from __future__ import annotations

import pytest

from tools.employees import band_employees, band_for, parse_employees


@pytest.mark.parametrize(
    ("count", "band"),
    [(1, "1-10"), (10, "1-10"), (11, "11-50"), (50, "11-50"), (51, "51-200"), (200, "51-200"), (201, "201-500"),
     (500, "201-500"), (501, "501-1000"), (1000, "501-1000"), (1001, "1001-5000"), (5000, "1001-5000"),
     (5001, "5001-10000"), (10000, "5001-10000"), (10001, "10001+"), (2_000_000, "10001+")],
)
def test_band_edges(count: int, band: str) -> None:
    assert band_for(count) == band


@pytest.mark.parametrize(
    ("raw", "count", "flags"),
    [
        ("1200", 1200, []),
        ("1,200", 1200, []),
        ("1.200", 1200, []),
        ("1 200 employees", 1200, []),
        ("1.2k", 1200, ["employees_abbreviated"]),
        ("3K", 3000, ["employees_abbreviated"]),
        ("approx 50", 50, ["employees_approximate"]),
        ("ca. 40", 40, ["employees_approximate"]),
        ("~300", 300, ["employees_approximate"]),
        ("500+", 500, ["employees_lower_bound"]),
        ("50-100", 75, ["employees_range_midpoint"]),
        ("50 to 100 staff", 75, ["employees_range_midpoint"]),
        ("lots", None, []),
        ("-5", None, []),
        ("100-50", None, []),
    ],
)
def test_parse(raw: str, count: float | None, flags: list[str]) -> None:
    assert parse_employees(raw) == (count, flags)


@pytest.mark.parametrize(
    ("raw", "band", "confidence"),
    [("1,200", "1001-5000", 1.0), ("1.2k", "1001-5000", 0.85), ("approx 50", "11-50", 0.85),
     ("50-100", "51-200", 0.8), ("8", "1-10", 1.0)],
)
def test_band_from_text(raw: str, band: str, confidence: float) -> None:
    out = band_employees.call({"employees": raw})
    assert (out.employee_band, out.confidence) == (band, confidence)


@pytest.mark.parametrize("raw", ["-5", "0", "99999999", "lots", "unknown", "12.5", "5000001"])
def test_impossible_counts(raw: str) -> None:
    alone = band_employees.call({"employees": raw})
    assert (alone.employee_band, alone.confidence, alone.flags) == (None, 0.0, ["impossible_employee_count"])
    with_ref = band_employees.call({"employees": raw, "ref_employees": 420})
    assert with_ref.employee_band == "201-500"
    assert with_ref.confidence == 0.6
    assert with_ref.flags == ["impossible_employee_count", "employees_from_reference"]


def test_missing_uses_reference_else_nothing() -> None:
    assert band_employees.call({"employees": "", "ref_employees": 12}).model_dump() == {
        "employee_band": "11-50", "confidence": 0.7, "flags": ["employees_missing", "employees_from_reference"]}
    assert band_employees.call({}).model_dump() == {
        "employee_band": None, "confidence": 0.0, "flags": ["employees_missing"]}


def test_far_from_reference_is_flagged() -> None:
    out = band_employees.call({"employees": "12", "ref_employees": 50_000})
    assert out.employee_band == "11-50"  # the account's own figure still wins
    assert out.flags == ["employees_conflict_reference"] and out.confidence == 0.6


def test_neighbouring_band_is_no_conflict() -> None:
    assert band_employees.call({"employees": "480", "ref_employees": 520}).flags == []


def test_sample(sample: tuple[list[dict[str, str]], dict]) -> None:
    accounts, truth = sample
    banded = right = impossible = 0
    for account in accounts:
        out = band_employees.call({"employees": account["employees"]})
        impossible += "impossible_employee_count" in out.flags
        if out.employee_band is not None and out.confidence == 1.0:
            banded += 1
            right += out.employee_band == band_for(int(truth[account["id"]]["employees"]))
    assert 0.02 < impossible / len(accounts) < 0.08
    assert right / banded > 0.99
