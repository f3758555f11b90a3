"""``normalize_country``: ISO 3166-1 alpha-2 codes from however people spell a country.

Three steps, cheapest and surest first: pycountry's exact lookup (codes and names, any case), a
small table of names pycountry does not know (endonyms, ``UK``, ``U.S.``, ``Holland``), then fuzzy
matching for typos and partial names. The fuzzy step is ~1000x slower than the others, so its
answers are cached.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import pycountry
from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz import fuzz, process

from airlock.registry import SideEffect, tool

# Keys are in the form ``_alias_key`` produces: lower case, no accents or punctuation.
ALIASES: dict[str, str] = {
    "deutschland": "DE", "bundesrepublik deutschland": "DE", "brd": "DE", "allemagne": "DE",
    "us": "US", "usa": "US", "u s": "US", "u s a": "US", "america": "US", "united states": "US",
    "the united states": "US",
    "uk": "GB", "u k": "GB", "great britain": "GB", "britain": "GB", "england": "GB", "scotland": "GB", "wales": "GB",
    "northern ireland": "GB", "grossbritannien": "GB",
    "holland": "NL", "the netherlands": "NL", "nederland": "NL", "niederlande": "NL",
    "espana": "ES", "spanien": "ES", "espagne": "ES",
    "schweiz": "CH", "suisse": "CH", "svizzera": "CH", "swiss": "CH",
    "osterreich": "AT", "oesterreich": "AT", "autriche": "AT",
    "italia": "IT", "italien": "IT", "frankreich": "FR", "sverige": "SE", "schweden": "SE",
    "brasil": "BR", "bharat": "IN", "nippon": "JP", "nihon": "JP", "japon": "JP",
    "south korea": "KR", "korea": "KR", "russia": "RU", "czech republic": "CZ", "vietnam": "VN",
    "uae": "AE", "emirates": "AE", "ivory coast": "CI", "turkey": "TR", "danmark": "DK", "norge": "NO",
    "suomi": "FI", "polska": "PL", "belgie": "BE", "belgique": "BE", "eire": "IE", "hellas": "GR",
}
FUZZY_CUTOFF = 88.0


class CountryInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    country: str | None = Field(default=None, max_length=100)


class CountryOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    country_code: str | None = None
    confidence: float = 0.0
    flags: list[str] = []


def _alias_key(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain).split())


def _exact(text: str) -> str | None:
    # Digits would hit ISO numeric codes: "276" is Germany, but in a country column it is noise.
    if text.isdigit():
        return None
    try:
        return str(pycountry.countries.lookup(text).alpha_2)
    except LookupError:
        return None


def _choices() -> dict[str, str]:
    names: dict[str, str] = {}
    for country in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            value = getattr(country, attr, None)
            if value:
                names[_alias_key(value)] = country.alpha_2
    return {**names, **{k: v for k, v in ALIASES.items() if len(k) > 3}}


_CHOICES = _choices()


@lru_cache(maxsize=4096)
def fuzzy_country(key: str) -> str | None:
    """Typos first (rapidfuzz over names and aliases), then pycountry's own fuzzy search, which also
    knows subdivisions (``Bavaria``) but, for short or odd text, answers almost anything."""
    if len(key) < 4 or not key.replace(" ", "").isalpha():
        return None
    best = process.extractOne(key, _CHOICES.keys(), scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF)
    if best is not None:
        return _CHOICES[best[0]]
    try:
        found = pycountry.countries.search_fuzzy(key)
    except LookupError:
        return None
    return str(found[0].alpha_2) if found else None


def resolve_country(raw: str) -> tuple[str | None, str]:
    """(alpha-2 code, how it was found: exact|alias|fuzzy|unknown)."""
    text = " ".join(raw.split())
    code = _exact(text)
    if code:
        return code, "exact"
    key = _alias_key(text)
    if key in ALIASES:
        return ALIASES[key], "alias"
    code = _exact(key)  # "Germany." or "-germany-" once the punctuation is gone
    if code:
        return code, "alias"
    code = fuzzy_country(key)
    return (code, "fuzzy") if code else (None, "unknown")


_CONFIDENCE = {"exact": 1.0, "alias": 0.95, "fuzzy": 0.7, "unknown": 0.0}


@tool(effect=SideEffect.NONE, version="1")
def normalize_country(data: CountryInput) -> CountryOutput:
    """ISO 3166-1 alpha-2 country code from a country name, code or common spelling (Germany, DEU,
    Deutschland, U.S., UK, Holland, España...). Confidence 1.0 exact, 0.95 known alias, 0.7 fuzzy
    match; unknown text gives no code and the flag country_unknown."""
    if not (data.country and data.country.strip()):
        return CountryOutput(country_code=None, confidence=0.0, flags=["country_missing"])
    code, how = resolve_country(data.country)
    flags = {"fuzzy": ["country_fuzzy_match"], "unknown": ["country_unknown"]}.get(how, [])
    return CountryOutput(country_code=code, confidence=_CONFIDENCE[how], flags=flags)
