"""read_dataset: the whole file is checked first, and each refusal says what to fix in one line."""

from __future__ import annotations

import csv
import hashlib
import pickle
from pathlib import Path

import pytest

from airlock.dataset import ChunkRecords, read_dataset, read_header
from airlock.errors import InputDataError


def csv_file(tmp_path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path = tmp_path / "accounts.csv"
    path.write_bytes(text.encode(encoding))
    return path


def refusal(path: Path, required: list[str] | None = None) -> str:
    with pytest.raises(InputDataError) as raised:
        read_dataset(path, key="id", required=required or ["name"])
    assert "\n" not in raised.value.message
    return raised.value.message


def test_a_good_file_is_read_trimmed_and_hashed(tmp_path: Path) -> None:
    text = "\ufeffid , name,country\n A1 , Acme ,DE\nA2,Beta,\n"
    path = csv_file(tmp_path, text)
    dataset = read_dataset(path, key="id", required=["name", "country"])
    assert dataset.columns == ["id", "name", "country"]
    assert dataset.records == [{"id": "A1", "name": "Acme", "country": "DE"},
                               {"id": "A2", "name": "Beta", "country": ""}]
    assert dataset.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert read_header(path) == ["id", "name", "country"]


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path / "nope.csv") == f"input file not found: {tmp_path / 'nope.csv'}"


def test_missing_columns_are_named(tmp_path: Path) -> None:
    message = refusal(csv_file(tmp_path, "id,city\nA1,Berlin\n"), ["name", "country"])
    assert "missing column(s) country, name; the file has id, city" in message


def test_a_missing_key_column_is_named(tmp_path: Path) -> None:
    assert "missing column(s) id" in refusal(csv_file(tmp_path, "name\nAcme\n"))


def test_an_empty_id_names_its_line(tmp_path: Path) -> None:
    message = refusal(csv_file(tmp_path, "id,name\nA1,Acme\n  ,Beta\n"))
    assert "line 3 has an empty 'id'; every record needs one" in message


def test_duplicate_ids_are_counted_and_named(tmp_path: Path) -> None:
    message = refusal(csv_file(tmp_path, "id,name\nA2,a\nA1,b\nA2,c\nA1,d\nA3,e\n"))
    assert "2 id value(s) appear more than once: A1, A2" in message


def test_many_duplicates_are_shortened(tmp_path: Path) -> None:
    rows = "".join(f"D{i},x\nD{i},y\n" for i in range(7))
    message = refusal(csv_file(tmp_path, "id,name\n" + rows))
    assert "7 id value(s) appear more than once: D0, D1, D2, D3, D4 …" in message


def test_a_header_without_records_is_refused(tmp_path: Path) -> None:
    assert "no records after the header" in refusal(csv_file(tmp_path, "id,name\n"))


def test_an_empty_file_has_no_header(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="the file is empty"):
        read_header(csv_file(tmp_path, ""))


def test_a_row_longer_than_the_header_is_refused(tmp_path: Path) -> None:
    assert "line 3 has more fields than the header" in refusal(csv_file(tmp_path, "id,name\nA1,a\nA2,b,extra\n"))


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    message = refusal(csv_file(tmp_path, "id,name\nA1,Müller\n", encoding="latin-1"))
    assert "not UTF-8 text" in message and "save the CSV as UTF-8" in message


def test_quoted_line_breaks_survive(tmp_path: Path) -> None:
    path = csv_file(tmp_path, 'id,name,description\nA1,Acme,"first line\nsecond line"\nA2,Beta,"a\u2028b"\n')
    dataset = read_dataset(path, key="id", required=["name"])
    assert [r["description"] for r in dataset.records] == ["first line\nsecond line", "a\u2028b"]


def test_short_rows_blank_lines_and_the_sample_read_as_dict_reader_reads_them(tmp_path: Path) -> None:
    """The records are what csv.DictReader gives, trimmed: a short row's missing fields are empty,
    blank lines are skipped, and the shipped sample reads the same either way."""
    path = csv_file(tmp_path, "id,name,country\nA1,Acme\n\nA2, Beta ,DE\n")
    assert read_dataset(path, key="id", required=["name"]).records == [
        {"id": "A1", "name": "Acme", "country": ""}, {"id": "A2", "name": "Beta", "country": "DE"}]
    sample = Path(__file__).resolve().parents[3] / "data" / "accounts.csv"
    with sample.open(newline="", encoding="utf-8-sig") as handle:
        expected = [{k.strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(handle)]
    assert read_dataset(sample, key="id", required=[]).records == expected


def test_chunk_records_read_as_the_list_they_hold_and_travel_whole() -> None:
    rows = [{"id": "A1"}, {"id": "A2"}, {"id": "A3"}]
    records = ChunkRecords(rows)
    assert len(records) == 3 and list(records) == rows and records[1] == {"id": "A2"}
    assert records[1:] == rows[1:] and records[-1] is rows[-1]
    copied = pickle.loads(pickle.dumps(records))  # as a chunk goes to a worker process
    assert isinstance(copied, ChunkRecords) and list(copied) == rows
    records.clear()
    assert len(records) == 0 and rows == []
