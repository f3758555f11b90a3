"""Reading an input dataset (CSV) with errors a person can act on, and hashing it.

The whole file is checked before anything is pinned or written: a missing file, missing columns,
empty or repeated record ids are each refused with one line that says what to fix.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from airlock.errors import InputDataError


@dataclass
class Dataset:
    path: Path
    columns: list[str]
    records: list[dict[str, str]]
    sha256: str


class ChunkRecords(Sequence[dict[str, Any]]):
    """One chunk's input records as they go from task to task: a sequence, not a list, on purpose.
    Prefect links every item of a list a task returns to the task's state (for dependency tracking),
    a dictionary entry per record walked when the task ends and kept until the flow ends: 100,000 of
    them in a run of 100,000 records. Anything that is not a list, tuple, set, dict, dataclass or model
    it links once."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._rows)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        return self._rows[index]

    def __reduce__(self) -> tuple[type[ChunkRecords], tuple[list[dict[str, Any]]]]:
        return ChunkRecords, (self._rows,)

    def clear(self) -> None:
        """Let the records go (a committed chunk's are read no more)."""
        self._rows.clear()


def read_header(path: Path) -> list[str]:
    _require_file(path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise InputDataError(f"{path}: the file is empty; expected a CSV with a header row")
    return [h.strip() for h in header]


def read_dataset(path: Path, *, key: str, required: list[str]) -> Dataset:
    _require_file(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputDataError(f"{path}: not UTF-8 text (byte {error.start}); save the CSV as UTF-8") from error
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in [key, *required] if c not in columns]
    if missing:
        raise InputDataError(
            f"{path}: missing column(s) {', '.join(sorted(set(missing)))}; the file has {', '.join(columns) or 'none'}"
        )
    reader.fieldnames = columns
    records: list[dict[str, str]] = []
    for row in reader:
        line = reader.line_num
        if None in row:
            raise InputDataError(f"{path}: line {line} has more fields than the header")
        record = {k: (v or "").strip() for k, v in row.items()}
        if not record[key]:
            raise InputDataError(f"{path}: line {line} has an empty {key!r}; every record needs one")
        records.append(record)
    repeated = [k for k, n in Counter(r[key] for r in records).items() if n > 1]
    if repeated:
        shown = ", ".join(sorted(repeated)[:5]) + (" …" if len(repeated) > 5 else "")
        raise InputDataError(f"{path}: {len(repeated)} {key} value(s) appear more than once: {shown}")
    if not records:
        raise InputDataError(f"{path}: no records after the header")
    return Dataset(path, columns, records, hashlib.sha256(raw).hexdigest())


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise InputDataError(f"input file not found: {path}")


def read_sample(path: Path, rows: int = 5) -> list[dict[str, str]]:
    """The first few rows (a planner's sample): read lazily, never the whole file."""
    _require_file(path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        return [dict(row) for _, row in zip(range(rows), reader, strict=False)]
