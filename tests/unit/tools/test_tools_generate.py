"""data/generate.py: deterministic, shaped like the contract, and dirty in the ways promised."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from types import ModuleType

import phonenumbers
from email_validator import EmailNotValidError, validate_email

COLUMNS = ["id", "name", "website", "email", "phone", "country", "city", "employees", "industry", "description"]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_shipped_files_are_what_the_script_writes(generator: ModuleType, tmp_path: Path, data_dir: Path) -> None:
    generator.main(["--out-dir", str(tmp_path)])
    for name in ("taxonomy.csv", "reference_firmographics.csv", "accounts.csv"):
        assert (tmp_path / name).read_bytes() == (data_dir / name).read_bytes(), f"data/{name} is stale"


def test_deterministic_per_seed(generator: ModuleType, reference: list[dict[str, str | int]]) -> None:
    assert generator.generate_reference(7) == reference
    first = generator.generate_accounts(500, 11, reference)
    assert generator.generate_accounts(500, 11, reference) == first
    assert generator.generate_accounts(500, 12, reference) != first


def test_accounts_shape(sample: tuple[list[dict[str, str]], dict], data_dir: Path) -> None:
    accounts, truth = sample
    shipped = read_csv(data_dir / "accounts.csv")
    assert list(shipped[0]) == COLUMNS
    assert shipped == accounts
    ids = [a["id"] for a in accounts]
    assert all(ids) and len(set(ids)) == len(ids) == 2000
    assert all(list(a) == COLUMNS and all(isinstance(v, str) for v in a.values()) for a in accounts)
    assert set(truth) == set(ids)


def test_reference_shape(reference: list[dict[str, str | int]], data_dir: Path) -> None:
    shipped = read_csv(data_dir / "reference_firmographics.csv")
    taxonomy = {row["label"] for row in read_csv(data_dir / "taxonomy.csv")}
    assert list(shipped[0]) == ["name", "domain", "country_code", "industry", "employees"]
    assert len(reference) == 5000
    assert len({r["domain"] for r in reference}) == 5000
    assert {r["industry"] for r in reference} == taxonomy
    assert all(isinstance(r["employees"], int) and r["employees"] > 0 for r in reference)
    assert len({r["country_code"] for r in reference}) >= 15


def test_taxonomy_shape(data_dir: Path) -> None:
    rows = read_csv(data_dir / "taxonomy.csv")
    assert list(rows[0]) == ["label", "synonyms", "keywords"]
    assert len(rows) == 20
    for row in rows:
        assert row["synonyms"] == row["synonyms"].lower() and row["keywords"] == row["keywords"].lower()
        assert all(row["synonyms"].split("|")) and all(row["keywords"].split("|"))


def _share(accounts: list[dict[str, str]], predicate: object) -> float:
    return sum(1 for a in accounts if predicate(a)) / len(accounts)  # type: ignore[operator]


def test_dirt_is_present_in_realistic_amounts(sample: tuple[list[dict[str, str]], dict]) -> None:
    accounts, truth = sample
    for column in COLUMNS[1:]:
        assert 0.01 < _share(accounts, lambda a, c=column: not a[c].strip()) < 0.4, column

    def email_bad(a: dict[str, str]) -> bool:
        try:
            validate_email(a["email"], check_deliverability=False)
        except EmailNotValidError:
            return bool(a["email"])
        return False

    assert 0.03 < _share(accounts, email_bad) < 0.12
    freemail = ("@gmail.com", "@yahoo.com", "@gmx.de", "@web.de", "@hotmail.com", "@outlook.com")
    assert 0.03 < _share(accounts, lambda a: a["email"].endswith(freemail)) < 0.12
    countries = Counter(a["country"] for a in accounts)
    for spelling in ("Germany", "DE", "Deutschland", "USA", "UK", "Holland", "España", "Atlantis", " germany "):
        assert countries[spelling] > 0, spelling
    websites = [a["website"] for a in accounts]
    assert any(w.startswith("https://") for w in websites) and any(w.startswith("www.") for w in websites)
    assert any(w.endswith(".co.uk") for w in websites) and any(w.isupper() for w in websites if w)
    employees = Counter(a["employees"] for a in accounts)
    assert any(e in employees for e in ("-5", "0", "99999999", "lots"))
    assert any("," in e or e.endswith("k") or e.startswith("approx") or "-" in e[1:] for e in employees)
    industries = {a["industry"] for a in accounts}
    assert {"Fin-tech", "IT", "hlthcare"} & industries
    duplicates = sum(t["duplicate"] == "1" for t in truth.values())
    assert duplicates == 60  # 3% of 2,000
    described = _share(accounts, lambda a: a["description"].startswith("Provides"))
    assert 0.3 < described < 0.6


def test_clean_phone_numbers_are_valid(sample: tuple[list[dict[str, str]], dict]) -> None:
    accounts, truth = sample
    valid = present = 0
    for account in accounts:
        if not account["phone"]:
            continue
        present += 1
        try:
            number = phonenumbers.parse(account["phone"], truth[account["id"]]["country_code"])
        except phonenumbers.NumberParseException:
            continue
        valid += phonenumbers.is_valid_number(number)
    assert 0.8 < valid / present < 0.97  # the rest is the deliberate dirt


def test_large_volumes(generator: ModuleType, reference: list[dict[str, str | int]]) -> None:
    # How fast is the benchmark's business (bench/throughput.py reports it); here, that it scales.
    accounts = generator.generate_accounts(100_000, 7, reference)
    assert len(accounts) == 100_000 and len({a["id"] for a in accounts}) == 100_000


def _repeat_share(accounts: list[dict[str, str]], truth: dict[str, dict[str, str]]) -> float:
    """The share of accounts whose company (its true domain) an earlier account already named."""
    seen: set[str] = set()
    repeats = 0
    for account in accounts:
        domain = truth[account["id"]]["domain"]
        repeats += domain in seen
        seen.add(domain)
    return repeats / len(accounts)


def test_scaled_companies_keep_the_samples_share_of_repeats(generator: ModuleType,
                                                            sample: tuple[list[dict[str, str]], dict]) -> None:
    sample_share = _repeat_share(*sample)
    records = 20_000
    scale = generator.scale_for(records)
    assert scale == 10
    reference = generator.generate_reference(7, round(generator.SAMPLE_REFERENCE * scale))
    assert len({r["domain"] for r in reference}) == len(reference) == 50_000
    assert reference[:5000] == generator.generate_reference(7)  # the sample's reference, grown
    scaled = _repeat_share(*generator.generate_accounts_with_truth(records, 7, reference, scale))
    unscaled = _repeat_share(*generator.generate_accounts_with_truth(records, 7, generator.generate_reference(7)))
    assert abs(scaled - sample_share) < 0.03, (scaled, sample_share)
    assert unscaled > 3 * sample_share  # what scaling is for: 5,000 companies cannot fill 20,000 accounts


def test_scale_option(generator: ModuleType, tmp_path: Path) -> None:
    generator.main(["--records", "4000", "--scale", "auto", "--out-dir", str(tmp_path)])
    assert len(read_csv(tmp_path / "reference_firmographics.csv")) == 10_000
    assert len(read_csv(tmp_path / "accounts.csv")) == 4000
