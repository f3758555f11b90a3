"""``lookup_firmographics``: match an account to a reference company and read its industry and size.

The reference (data/reference_firmographics.csv) is indexed once. A lookup is an exact domain hit,
else an exact match of the normalized name, else rapidfuzz over small *blocks* of candidates: the
names sharing its first letters, and those sharing the last letters of its first word (plus the
next word's initial). Comparing a record with the whole reference costs milliseconds; its blocks
hold a few dozen names, so a lookup costs microseconds. One typo cannot change both ends of a
word, so a misspelt name still meets its company in one of its blocks.
"""

from __future__ import annotations

import csv
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz import fuzz, process

from airlock.errors import InputDataError
from airlock.registry import SideEffect, ToolSpec, tool

REFERENCE_COLUMNS = ("name", "domain", "country_code", "industry", "employees")
# Tokens that say what legal form a company has, not which company it is.
LEGAL_FORMS = frozenset({
    "ab", "ag", "aps", "as", "asa", "bv", "co", "company", "corp", "corporation", "cv", "ev", "gmbh", "inc",
    "incorporated", "kg", "kgaa", "kk", "limited", "llc", "llp", "lp", "ltd", "ltda", "nv", "oy", "oyj", "plc",
    "pte", "pty", "pvt", "private", "sa", "sarl", "sas", "se", "sl", "spa", "srl", "ug"
})
MIN_SCORE = 60.0
COUNTRY_PENALTY = 5.0  # same name, other country: often a sister company, so only a nudge
DOMAIN_PENALTY = 10.0  # the account has its own domain and it is not the candidate's
BLOCK_PREFIX = 3
# For lower-case ASCII: "&" reads "and", dots go ("S.p.A." -> "spa", "K.K." -> "kk"), anything else
# but a-z and 0-9 separates words. One translate, not a regex: it runs for every reference company
# when the index is built, and for every lookup.
_TO_WORDS = str.maketrans({**{chr(c): " " for c in range(128) if not ("a" <= chr(c) <= "z" or "0" <= chr(c) <= "9")},
                           "&": " and ", ".": None})


class ReferenceCompany(NamedTuple):
    """A tuple, not a dataclass: a reference of 250,000 companies is held by every run's process."""

    name: str
    domain: str
    country_code: str
    industry: str
    employees: int | None


@dataclass(frozen=True)
class FirmographicsMatch:
    company: ReferenceCompany | None
    score: float
    flags: tuple[str, ...]


def normalize_name(name: str) -> str:
    """Lower case, accents and punctuation gone, ``&`` as ``and``, legal forms and a leading "the" dropped:
    ``The Nordwind Logistics GmbH & Co. KG`` becomes ``nordwind logistics``."""
    text = (name if name.isascii() else unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()).lower()
    tokens = text.translate(_TO_WORDS).split()
    if len(tokens) > 1 and tokens[0] == "the":
        tokens = tokens[1:]
    while len(tokens) > 1 and (tokens[-1] in LEGAL_FORMS or tokens[-1] == "and"):
        tokens.pop()
    return " ".join(tokens)


def block_keys(normalized: str) -> tuple[str, ...]:
    """The blocks a normalized name belongs to: its first letters, and the last letters of its first
    word with the initial of the next one. A typo in the first letters leaves the second key intact."""
    if not normalized:
        return ()
    words = normalized.split(" ", 2)
    keys = ["p:" + normalized.replace(" ", "")[:BLOCK_PREFIX]]
    if len(words[0]) > BLOCK_PREFIX:
        keys.append("s:" + words[0][-BLOCK_PREFIX:] + (words[1][:1] if len(words) > 1 else ""))
    return tuple(keys)


def name_score(query: str, candidate: str, full_ratio: float | None = None) -> float:
    """Similarity of two normalized names, 0-100. The first word counts half: it is what tells firms
    apart, while "Logistics" or "Group" is shared by hundreds of them."""
    full = fuzz.ratio(query, candidate) if full_ratio is None else full_ratio
    return 0.5 * full + 0.5 * fuzz.ratio(query.split(" ", 1)[0], candidate.split(" ", 1)[0])


class FirmographicsIndex:
    """The reference companies indexed by domain, normalized name and name blocks. Build once, share."""

    def __init__(self, companies: Iterable[ReferenceCompany]) -> None:
        self.companies: tuple[ReferenceCompany, ...] = tuple(companies)
        self._by_domain: dict[str, int] = {}
        # A name's first company; the few names several companies share list them all (one list per
        # name would be 250,000 lists).
        self._by_name: dict[str, int] = {}
        self._shared_names: dict[str, list[int]] = {}
        # rapidfuzz wants a block's names side by side: each block keeps them aligned with its members.
        self._blocks: dict[str, tuple[list[int], list[str]]] = {}
        self._normalized: list[str] = []
        # Bound once: this loop runs once per reference company (250,000 at 100,000 accounts).
        by_domain, by_name, blocks, normalized_names = self._by_domain, self._by_name, self._blocks, self._normalized
        for i, (name, domain, *_) in enumerate(self.companies):
            if domain:
                by_domain.setdefault(domain if domain.islower() else domain.lower(), i)
            normalized = normalize_name(name)
            normalized_names.append(normalized)
            if normalized:
                first = by_name.setdefault(normalized, i)
                if first != i:
                    self._shared_names.setdefault(normalized, [first]).append(i)
                for key in block_keys(normalized):
                    block = blocks.get(key)
                    if block is None:
                        block = blocks[key] = ([], [])
                    block[0].append(i)
                    block[1].append(normalized)

    @staticmethod
    def check_csv(path: Path | str) -> None:
        """The reference can be read and has every column: what a run checks before it starts when
        the index itself is built later, on the first lookup."""
        try:
            with Path(path).open(newline="", encoding="utf-8") as handle:
                _columns(Path(path), next(csv.reader(handle), []))
        except OSError as error:
            raise InputDataError(f"cannot read reference firmographics {path}: {error}") from error

    @classmethod
    def from_csv(cls, path: Path | str) -> FirmographicsIndex:
        path = Path(path)
        # csv.reader by column position, not DictReader: reading 250,000 rows costs half as much.
        # Countries and industries repeat; one string each keeps the reference small.
        intern = sys.intern
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                name, domain, country, industry, employees = _columns(path, next(reader, []))
                companies = [
                    ReferenceCompany(
                        row[name].strip(), row[domain].strip().lower(), intern(row[country].strip().upper()),
                        intern(row[industry].strip()), int(row[employees]) if row[employees].strip() else None,
                    )
                    for row in reader if row
                ]
        except OSError as error:
            raise InputDataError(f"cannot read reference firmographics {path}: {error}") from error
        except ValueError as error:
            raise InputDataError(f"{path}: an employee count is not a whole number: {error}") from error
        except IndexError:
            raise InputDataError(f"{path}: a row has fewer columns than the header") from None
        return cls(companies)

    def __len__(self) -> int:
        return len(self.companies)

    def block_sizes(self) -> dict[str, int]:
        return {key: len(members) for key, (members, _) in self._blocks.items()}

    def candidates(self, name: str) -> list[ReferenceCompany]:
        """Every company a name is compared with: the union of its blocks."""
        seen: dict[int, None] = {}
        for key in block_keys(normalize_name(name)):
            seen.update(dict.fromkeys(self._blocks.get(key, ([], []))[0]))
        return [self.companies[i] for i in seen]

    def lookup(self, name: str | None, domain: str | None, country_code: str | None) -> FirmographicsMatch:
        if domain:
            hit = self._by_domain.get(domain.strip().lower())
            if hit is not None:
                return FirmographicsMatch(self.companies[hit], 100.0, ("matched_by_domain",))
        normalized = normalize_name(name) if name else ""
        if not normalized:
            return FirmographicsMatch(None, 0.0, ("no_firmographics_match", "name_missing"))
        country = (country_code or "").strip().upper()
        own_domain = (domain or "").strip().lower()
        first = self._by_name.get(normalized)
        exact = self._shared_names.get(normalized) or ([] if first is None else [first])
        if exact:
            best = max(exact, key=lambda i: self.companies[i].country_code == country)
            return self._judge(best, 100.0, ("matched_by_name",), country, own_domain)
        scored: dict[int, float] = {}
        for key in block_keys(normalized):
            members, names = self._blocks.get(key, ([], []))
            for _, score, pos in process.extract(normalized, names, scorer=fuzz.ratio, limit=10, score_cutoff=40):
                scored[members[pos]] = name_score(normalized, names[pos], score)
        if not scored:
            return FirmographicsMatch(None, 0.0, ("no_firmographics_match",))
        judged = [self._judge(i, s, ("matched_by_fuzzy_name",), country, own_domain) for i, s in scored.items()]
        return max(judged, key=lambda m: m.score)

    def _judge(
        self, index: int, score: float, flags: tuple[str, ...], country: str, own_domain: str
    ) -> FirmographicsMatch:
        company = self.companies[index]
        if country and company.country_code and company.country_code != country:
            score -= COUNTRY_PENALTY
            flags += ("match_country_differs",)
        if own_domain and company.domain and company.domain != own_domain:
            score -= DOMAIN_PENALTY
            flags += ("match_domain_differs",)
        if score < MIN_SCORE:
            return FirmographicsMatch(None, 0.0, ("no_firmographics_match",))
        return FirmographicsMatch(company, score, flags)


def _columns(path: Path, header: list[str]) -> tuple[int, ...]:
    """The positions of ``REFERENCE_COLUMNS`` in the reference's header."""
    missing = [c for c in REFERENCE_COLUMNS if c not in header]
    if missing:
        raise InputDataError(f"{path}: reference firmographics lack the column(s) {', '.join(missing)}")
    return tuple(header.index(c) for c in REFERENCE_COLUMNS)


class FirmographicsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=500)
    domain: str | None = None
    country_code: str | None = None


class FirmographicsOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matched_name: str | None = None
    ref_industry: str | None = None
    ref_employees: int | None = None
    confidence: float = 0.0
    flags: list[str] = []


def _once(load: Callable[[], FirmographicsIndex]) -> Callable[[], FirmographicsIndex]:
    """``load`` called on the first lookup only, however many task threads look up at once (an
    index of 250,000 companies takes a second or two to build: the chunks of a wave look up at the
    same time, and must not each build it). A reference that cannot be read fails every lookup with
    the same error, read once: not once per record."""
    lock = threading.Lock()
    built: list[FirmographicsIndex | InputDataError] = []

    def loaded() -> FirmographicsIndex:
        if not built:
            with lock:
                if not built:
                    try:
                        built.append(load())
                    except InputDataError as error:
                        built.append(error)
        found = built[0]
        if isinstance(found, InputDataError):
            raise InputDataError(str(found))
        return found

    return loaded


def make_lookup_firmographics(index: FirmographicsIndex | Callable[[], FirmographicsIndex]) -> ToolSpec[Any, Any]:
    """The lookup tool bound to one reference index, or to a function that loads it on the first
    lookup (a process that may never look anything up need not hold the reference); it is called
    once, not per lookup."""
    load = _once(index) if callable(index) else (lambda: index)

    @tool(effect=SideEffect.READ, version="1")
    def lookup_firmographics(data: FirmographicsInput) -> FirmographicsOutput:
        """Match the account to a reference company (exact registered domain first, else a fuzzy match of
        the company name without legal form) and return the reference's name, industry and employee
        count. Confidence 1.0 for a domain match, else the name similarity (0.6-1.0); no match below 0.6
        (flag no_firmographics_match)."""
        match = load().lookup(data.name, data.domain, data.country_code)
        if match.company is None:
            return FirmographicsOutput(confidence=0.0, flags=list(match.flags))
        return FirmographicsOutput(
            matched_name=match.company.name,
            ref_industry=match.company.industry or None,
            ref_employees=match.company.employees,
            confidence=round(match.score / 100.0, 4),
            flags=list(match.flags),
        )

    return lookup_firmographics

