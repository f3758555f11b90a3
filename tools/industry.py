"""``classify_industry`` and ``guess_industry_from_name``: a label of the fixed industry taxonomy.

Deterministic evidence, strongest first: the account's own industry text (a label or synonym as
typed, else a fuzzy match for typos), keywords in its description and name, the reference
company's industry. Confidence says which evidence decided, so weak guesses go to review. The name
guess is a separate, weaker tool for the planner's fallback.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz import fuzz, process

from airlock.errors import InputDataError
from airlock.registry import SideEffect, ToolSpec, tool

TAXONOMY_COLUMNS = ("label", "synonyms", "keywords")
FUZZY_CUTOFF = 85.0
MATCH_MEMO_ENTRIES = 10_000
CONFIDENCE_LABEL = 1.0
CONFIDENCE_SYNONYM = 0.95
CONFIDENCE_FUZZY_MAX = 0.85
CONFIDENCE_REFERENCE = 0.7
REFERENCE_AGREES_BONUS = 0.1
REFERENCE_DISAGREES_FACTOR = 0.8
# Keywords that are telling in a company name but not in running text ("works with", "partners of",
# "power users"): descriptions ignore them, names do not.
_PROSE_STOPWORDS = frozenset({"power", "health", "home", "care", "connect", "works", "partners", "mobile"})


def _words(text: str) -> str:
    """Lower case, plain ASCII, ``&`` as ``and``, punctuation as spaces, single-spaced."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().replace("&", " and ")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain).split())


def _compact(text: str) -> str:
    return _words(text).replace(" ", "")


@dataclass(frozen=True)
class IndustryGuess:
    label: str | None
    confidence: float
    flags: tuple[str, ...]


class _TermIndex:
    """Terms (words or phrases) pointing at labels, matched as whole words in a text."""

    def __init__(self, terms: Iterable[tuple[str, str]]) -> None:
        self.words: dict[str, list[str]] = {}
        self.phrases: list[tuple[str, str]] = []
        for term, label in terms:
            normalized = _words(term)
            if " " in normalized:
                self.phrases.append((f" {normalized} ", label))
            elif normalized and label not in self.words.setdefault(normalized, []):
                self.words[normalized].append(label)

    def hits(self, text: str) -> dict[str, set[str]]:
        """Per label, the distinct terms found in the text (a plural finds its singular)."""
        words = _words(text)
        found: dict[str, set[str]] = {}
        for word in words.split():
            forms = (word, word[:-1]) if word.endswith("s") and len(word) > 3 else (word,)
            key = next((f for f in forms if f in self.words), None)
            if key is not None:
                for label in self.words[key]:
                    found.setdefault(label, set()).add(key)
        padded = f" {words} "
        for phrase, label in self.phrases:
            if phrase in padded:
                found.setdefault(label, set()).add(phrase.strip())
        return found


class Taxonomy:
    """The fixed industry labels with their synonyms and keywords (data/taxonomy.csv)."""

    def __init__(self, rows: Iterable[tuple[str, Iterable[str], Iterable[str]]]) -> None:
        self.synonyms: dict[str, tuple[str, ...]] = {}
        self.keywords: dict[str, tuple[str, ...]] = {}
        for label, synonyms, keywords in rows:
            self.synonyms[label] = tuple(s for s in synonyms if s)
            self.keywords[label] = tuple(k for k in keywords if k)
        self.labels: tuple[str, ...] = tuple(self.synonyms)
        self._matched: dict[str, tuple[str, float, str] | None] = {}
        self._by_label = {label.casefold(): label for label in self.labels}
        # Exact terms compare without spaces or hyphens: "Fin-tech", "RealEstate", "non profit".
        self._exact: dict[str, tuple[str, float]] = {}
        for label in self.labels:
            for synonym in self.synonyms[label]:
                self._exact.setdefault(_compact(synonym), (label, CONFIDENCE_SYNONYM))
        for label in self.labels:
            self._exact[_compact(label)] = (label, CONFIDENCE_LABEL)
        self._fuzzy_terms: dict[str, str] = {}
        for label in self.labels:
            for term in (label, *self.synonyms[label]):
                self._fuzzy_terms.setdefault(_words(term), label)
        self._prose = _TermIndex((k, label) for label in self.labels for k in (label, *self.keywords[label])
                                 if _words(k) not in _PROSE_STOPWORDS)
        self._names = _TermIndex((t, label) for label in self.labels
                                 for t in (label, *self.synonyms[label], *self.keywords[label]) if len(t) > 2)

    @classmethod
    def from_csv(cls, path: Path | str) -> Taxonomy:
        path = Path(path)
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                missing = [c for c in TAXONOMY_COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise InputDataError(f"{path}: the taxonomy lacks the column(s) {', '.join(missing)}")
                rows = [(r["label"].strip(), r["synonyms"].split("|"), r["keywords"].split("|")) for r in reader]
        except OSError as error:
            raise InputDataError(f"cannot read the industry taxonomy {path}: {error}") from error
        if not rows:
            raise InputDataError(f"{path}: the taxonomy has no labels")
        return cls(
            (label, [s.strip().lower() for s in syn], [k.strip().lower() for k in kw]) for label, syn, kw in rows
        )

    def label_for(self, text: str | None) -> str | None:
        """The taxonomy label spelt as ``text`` (any case), else None."""
        return self._by_label.get(text.strip().casefold()) if text else None

    def match_term(self, raw: str) -> tuple[str, float, str] | None:
        """(label, confidence, how) for a free-text industry: exact label or synonym, else fuzzy."""
        # Typed industries repeat (a few hundred spellings in 100,000 accounts), and a fuzzy match
        # costs tens of microseconds, so each spelling is matched once; the memo is bounded.
        try:
            return self._matched[raw]  # one lookup, not "in" then get: another thread may clear the memo
        except KeyError:
            pass
        if len(self._matched) >= MATCH_MEMO_ENTRIES:
            self._matched.clear()
        matched = self._matched[raw] = self._match_term(raw)
        return matched

    def _match_term(self, raw: str) -> tuple[str, float, str] | None:
        compact = _compact(raw)
        if not compact:
            return None
        if compact in self._exact:
            label, confidence = self._exact[compact]
            return label, confidence, "exact"
        if len(compact) < 4:  # short text fuzzy-matches nearly anything
            return None
        best = process.extractOne(_words(raw), self._fuzzy_terms.keys(), scorer=fuzz.WRatio, score_cutoff=FUZZY_CUTOFF)
        if best is None:
            return None
        return self._fuzzy_terms[best[0]], round(CONFIDENCE_FUZZY_MAX * best[1] / 100.0, 4), "fuzzy"

    def from_keywords(self, text: str, *, names: bool = False) -> tuple[tuple[str, ...], int]:
        """(the labels with the most distinct keyword hits, in taxonomy order; that hit count)."""
        hits = (self._names if names else self._prose).hits(text)
        if not hits:
            return (), 0
        top = max(len(terms) for terms in hits.values())
        return tuple(label for label in self.labels if len(hits.get(label, ())) == top), top

    def classify(
        self, raw: str | None, description: str | None, name: str | None, ref_industry: str | None
    ) -> IndustryGuess:
        flags: list[str] = []
        reference = self.label_for(ref_industry)
        if ref_industry and ref_industry.strip() and reference is None:
            flags.append("ref_industry_unknown")
        label: str | None = None
        confidence = 0.0
        if raw and raw.strip():
            matched = self.match_term(raw)
            if matched is None:
                flags.append("industry_raw_unrecognized")
            else:
                label, confidence, how = matched
                if how == "fuzzy":
                    flags.append("industry_fuzzy_match")
        if label is None:
            best, hits = self.from_keywords(" ".join(t for t in (description, name) if t))
            if best:
                flags.append("industry_from_keywords")
                confidence = min(0.75, 0.45 + 0.1 * hits)
                # A tie is broken by the reference when it is among the tied, else by taxonomy order.
                label = reference if reference in best else best[0]
                if len(best) > 1:
                    flags.append("industry_ambiguous")
                    confidence = 0.4
        if label is None and reference is not None:
            return IndustryGuess(reference, CONFIDENCE_REFERENCE, (*flags, "industry_from_reference"))
        if label is None:
            return IndustryGuess(None, 0.0, (*flags, "industry_unclassified"))
        if reference is not None and reference == label:
            confidence = min(1.0, confidence + REFERENCE_AGREES_BONUS)
        elif reference is not None:
            confidence *= REFERENCE_DISAGREES_FACTOR
            flags.append("industry_conflicts_reference")
        return IndustryGuess(label, round(confidence, 4), tuple(flags))

    def guess_from_name(self, name: str | None) -> IndustryGuess:
        best, hits = self.from_keywords(name or "", names=True)
        if not best:
            return IndustryGuess(None, 0.0, ("industry_unclassified",))
        if len(best) > 1:
            return IndustryGuess(best[0], 0.3, ("industry_from_name", "industry_ambiguous"))
        return IndustryGuess(best[0], 0.4 if hits == 1 else 0.5, ("industry_from_name",))


class IndustryInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    industry: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=20000)
    name: str | None = Field(default=None, max_length=500)
    ref_industry: str | None = None


class NameIndustryInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=500)


class IndustryOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    industry: str | None = None
    confidence: float = 0.0
    flags: list[str] = []


def make_classify_industry(taxonomy: Taxonomy) -> ToolSpec[Any, Any]:
    """The classifier bound to one taxonomy."""

    @tool(effect=SideEffect.NONE, version="1")
    def classify_industry(data: IndustryInput) -> IndustryOutput:
        """An industry label of the fixed taxonomy for the account, from its free-text industry (exact
        label or synonym 0.95-1.0, fuzzy match up to 0.85), else keywords in its description and name
        (0.4-0.75), else the reference company's industry (0.7). Agreement with the reference raises the
        confidence, disagreement lowers it (flag industry_conflicts_reference). No evidence: no label,
        flag industry_unclassified."""
        guess = taxonomy.classify(data.industry, data.description, data.name, data.ref_industry)
        return IndustryOutput(industry=guess.label, confidence=guess.confidence, flags=list(guess.flags))

    return classify_industry


def make_guess_industry_from_name(taxonomy: Taxonomy) -> ToolSpec[Any, Any]:
    """The name-only fallback bound to one taxonomy."""

    @tool(effect=SideEffect.NONE, version="1")
    def guess_industry_from_name(data: NameIndustryInput) -> IndustryOutput:
        """A weak industry guess from words in the company name alone (e.g. "Logistics", "Pharma"):
        confidence 0.3-0.5. A fallback when nothing better is known; no telling word gives no label."""
        guess = taxonomy.guess_from_name(data.name)
        return IndustryOutput(industry=guess.label, confidence=guess.confidence, flags=list(guess.flags))

    return guess_industry_from_name
