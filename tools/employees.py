"""``band_employees``: an employee-count band from the head count people typed, or the reference's.

CRM head counts are free text: ``1,200``, ``1.2k``, ``approx 50``, ``50-100``, ``500+``, ``lots``.
Parseable forms become a number (a range its midpoint); numbers no company can have (zero,
negative, more than any employer on earth) are flagged and the reference company's count, when the
lookup found one, is used instead.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from airlock.registry import SideEffect, tool

EmployeeBand = Literal["1-10", "11-50", "51-200", "201-500", "501-1000", "1001-5000", "5001-10000", "10001+"]
BANDS: tuple[tuple[int, EmployeeBand], ...] = (
    (10, "1-10"), (50, "11-50"), (200, "51-200"), (500, "201-500"), (1000, "501-1000"), (5000, "1001-5000"),
    (10000, "5001-10000"),
)
# The largest employers have about two million staff; beyond that a count is a typo.
MAX_EMPLOYEES = 5_000_000

_APPROX = re.compile(r"^(?:approx\.?|approximately|about|around|circa|ca\.?|c\.|~|\+/-)\s*")
_UNIT = re.compile(r"\s*(?:employees|staff|people|persons|ftes?|heads|mitarbeiter)$")
_NUMBER = r"(\d{1,3}(?:[,.' ]\d{3})+|\d+(?:[.,]\d+)?)\s*([km]?)"
_SINGLE = re.compile(rf"^{_NUMBER}\s*(\+?)$")
_RANGE = re.compile(rf"^{_NUMBER}\s*(?:-|\u2013|to|bis)\s*{_NUMBER}$")  # \u2013: en dash
_MULTIPLIERS = {"": 1, "k": 1_000, "m": 1_000_000}


class EmployeesInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    employees: str | None = Field(default=None, max_length=64)
    ref_employees: int | None = None


class EmployeesOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    employee_band: EmployeeBand | None = None
    confidence: float = 0.0
    flags: list[str] = []


def band_for(count: int) -> EmployeeBand:
    for upper, band in BANDS:
        if count <= upper:
            return band
    return "10001+"


def _number(digits: str, suffix: str) -> float | None:
    if re.fullmatch(r"\d{1,3}(?:[,.' ]\d{3})+", digits) and not suffix:
        return float(re.sub(r"[,.' ]", "", digits))  # thousands separators: "1,200", "1.200", "1 200"
    try:
        return float(digits.replace(",", ".")) * _MULTIPLIERS[suffix]
    except ValueError:
        return None


def parse_employees(raw: str) -> tuple[float | None, list[str]]:
    """(count, flags) from head-count text; None when there is no number in it."""
    text = " ".join(raw.strip().lower().split())
    flags: list[str] = []
    stripped = _UNIT.sub("", _APPROX.sub("", text))
    if _APPROX.match(text):
        flags.append("employees_approximate")
    if match := _SINGLE.match(stripped):
        if match.group(3):
            flags.append("employees_lower_bound")
        if match.group(2):
            flags.append("employees_abbreviated")  # "1.2k" is a rounded figure
        return _number(match.group(1), match.group(2)), flags
    if match := _RANGE.match(stripped):
        low, high = _number(match.group(1), match.group(2)), _number(match.group(3), match.group(4))
        if low is None or high is None or high < low:
            return None, flags
        return (low + high) / 2, [*flags, "employees_range_midpoint"]
    return None, flags


@tool(effect=SideEffect.NONE, version="1")
def band_employees(data: EmployeesInput) -> EmployeesOutput:
    """Employee band (1-10, 11-50, 51-200, 201-500, 501-1000, 1001-5000, 5001-10000, 10001+) from the
    account's head-count text (understands 1,200 / 1.2k / approx 50 / 50-100 as the midpoint). Zero,
    negative, non-numeric or absurd counts are flagged impossible_employee_count and the reference
    company's count (ref_employees) is used instead, with lower confidence."""
    raw = (data.employees or "").strip()
    reference = data.ref_employees if data.ref_employees is not None and data.ref_employees > 0 else None
    flags: list[str] = []
    if raw:
        count, flags = parse_employees(raw)
        if count is not None and 1 <= count <= MAX_EMPLOYEES and (count == int(count) or count >= 100):
            band = band_for(round(count))
            confidence = 1.0
            if "employees_range_midpoint" in flags:
                confidence = 0.8
            elif flags:
                confidence = 0.85
            if reference is not None and abs(_band_index(band) - _band_index(band_for(reference))) > 1:
                flags.append("employees_conflict_reference")
                confidence = min(confidence, 0.6)
            return EmployeesOutput(employee_band=band, confidence=confidence, flags=flags)
        flags = ["impossible_employee_count"]
    else:
        flags = ["employees_missing"]
    if reference is not None:
        confidence = 0.7 if flags == ["employees_missing"] else 0.6
        return EmployeesOutput(employee_band=band_for(reference), confidence=confidence,
                               flags=[*flags, "employees_from_reference"])
    return EmployeesOutput(employee_band=None, confidence=0.0, flags=flags)


def _band_index(band: EmployeeBand) -> int:
    return next((i for i, (_, b) in enumerate(BANDS) if b == band), len(BANDS))
