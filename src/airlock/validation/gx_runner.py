"""Great Expectations on the proposed (enriched) records of a batch.

GX is imported lazily and its ephemeral context built once per process: the import alone takes
seconds. Record-level failures come back as row positions (result format COMPLETE on a frame with
its default index), turned into record ids here; a failed table-level expectation applies to the
whole batch.
An expectation's ``meta={"severity": "reject"}`` makes it reject instead of sending to review.

Uniqueness is not judged here: a batch is a chunk, and whether two records share a value must not
depend on how a run was cut into chunks. The suite's uniqueness expectations are taken out of the
batch suite and handed back as ``RunScoped`` rules, which ``airlock.validation.run_scope`` applies
across the whole run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from numbers import Integral
from typing import Any

from airlock.errors import ValidationCrashed
from airlock.validation.findings import Finding

SuiteFactory = Callable[[], Any]  # () -> great_expectations.ExpectationSuite
# Expectations about the whole run rather than one batch.
RUN_SCOPED_TYPES = frozenset({"expect_column_values_to_be_unique"})


@dataclass(frozen=True)
class RunScoped:
    """A uniqueness expectation of the suite, judged over the run: a value a record of the run
    claimed before gives this finding to every later record that proposes it."""

    column: str
    finding: Finding


@dataclass
class GxReport:
    by_record: dict[str, list[Finding]] = field(default_factory=dict)
    batch: list[Finding] = field(default_factory=list)
    run_scoped: list[RunScoped] = field(default_factory=list)
    evaluated: int = 0
    failed: int = 0


def _finding(config: Any, column: str | None) -> Finding:
    code = f"gx:{config.type}" + (f":{column}" if column else "")
    return Finding(code, "reject" if (config.meta or {}).get("severity") == "reject" else "review")


class GxRunner:
    _lock = threading.Lock()  # GX's context is not safe to share between threads

    def __init__(self) -> None:
        self._context: Any = None
        self._definitions: dict[SuiteFactory, Any] = {}

    def warm(self) -> None:
        """Import GX and build its context now (seconds of work), so the first batch does not wait.
        Safe to call from a background thread while chunk tasks start."""
        with self._lock:
            self._ensure_context()

    def _ensure_context(self) -> None:
        if self._context is not None:
            return
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        # After the import: GX sets this logger to INFO when the module loads. Its info lines are noise.
        for name in ("great_expectations", "great_expectations.data_context.types.base"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self._source = self._context.data_sources.add_pandas("airlock")

    def _definition(self, suite_factory: SuiteFactory) -> Any:
        self._ensure_context()
        # Build each suite once: building a second suite of the same name makes GX consider the
        # stored one changed and refuse to run it.
        if suite_factory not in self._definitions:
            suite = suite_factory()
            scoped = [e for e in suite.expectations if e.expectation_type in RUN_SCOPED_TYPES]
            suite.expectations = [e for e in suite.expectations if e.expectation_type not in RUN_SCOPED_TYPES]
            run_scoped = [RunScoped(e.column, _finding(e.configuration, e.column)) for e in scoped]
            name = f"{suite.name}-{len(self._definitions)}"
            asset = self._source.add_dataframe_asset(f"proposed-{name}")
            batch = asset.add_batch_definition_whole_dataframe("batch")
            self._definitions[suite_factory] = (batch, self._context.suites.add(suite), run_scoped)
        return self._definitions[suite_factory]

    def validate(self, suite_factory: SuiteFactory, rows: Sequence[dict[str, Any]], key: str) -> GxReport:
        import pandas as pd

        report = GxReport()
        if not rows:
            return report
        try:
            with self._lock:
                batch_definition, suite, run_scoped = self._definition(suite_factory)
                frame = pd.DataFrame.from_records(list(rows))
                # Validating the batch directly skips GX's store of validation results (a quarter of
                # the time); the verdicts are Airlock's record of what was found. Without
                # unexpected_index_column_names GX answers with row positions; with them it looks up
                # each failing row's id cell by cell (two thirds of the time at 12,500 rows).
                result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
                    suite, result_format={"result_format": "COMPLETE"})
        except Exception as error:
            raise ValidationCrashed(f"Great Expectations could not validate the batch: {error}") from error
        proposed = set(frame.columns)
        report.run_scoped = [rule for rule in run_scoped if rule.column in proposed]
        for item in result.results:
            config = item.expectation_config
            column = config.kwargs.get("column")
            if column and column not in proposed:
                continue  # about a field this plan does not fill (a model plan may fill a few): does not apply
            report.evaluated += 1
            if item.success:
                continue
            report.failed += 1
            finding = _finding(config, column)
            index_list = (item.result or {}).get("unexpected_index_list")
            if index_list:
                for entry in index_list:
                    record_id = rows[int(entry)].get(key) if isinstance(entry, Integral) else None
                    if record_id is not None:
                        report.by_record.setdefault(str(record_id), []).append(finding)
            else:
                report.batch.append(finding)
        return report


@cache
def process_gx() -> GxRunner:
    """This process's runner: one GX context per process, whether validation runs in the run's
    process or in a worker process."""
    return GxRunner()


def warm_process_gx() -> None:
    """Import GX and build this process's context, reporting nothing: only an early start, since
    validation imports GX itself and reports its errors. Meant for a background thread."""
    try:
        process_gx().warm()
    except Exception:  # noqa: BLE001 - see above
        return
