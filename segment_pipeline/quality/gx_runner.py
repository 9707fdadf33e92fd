"""Great Expectations plumbing: run a list of expectations on a pandas frame, get plain results.

Suites are plain data in, plain dataclasses out, so a Dagster asset check, a notebook or a
test can use them alike. GX is imported lazily: it takes seconds to import, and most
processes that import this package (the Dagster code server, the CLI) never validate.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.expectations.expectation import Expectation

MAX_EXAMPLES = 5
_DATASOURCE = "segment_pipeline_quality"
_BATCH_DEFINITION = "whole_frame"
# GX's current context is process-wide; a validation holds it from building its suite to the end.
LOCK = threading.RLock()


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict, with enough detail to find the offending rows."""

    expectation: str  # e.g. "expect_column_values_to_not_be_null(user_id)"
    success: bool
    unexpected_count: int | None
    unexpected_examples: list  # up to MAX_EXAMPLES offending values, as text
    observed: str | None  # the measured value, for aggregate expectations
    description: str = ""  # what the expectation protects, in business terms

    def describe(self, evaluated_rows: int) -> str:
        """One human line: what was expected, and what was found."""
        label = f"{self.description} [{self.expectation}]" if self.description else self.expectation
        return f"{label}: {self.finding(evaluated_rows)}"

    def finding(self, evaluated_rows: int) -> str:
        if self.observed is not None:
            return self.observed
        text = f"{self.unexpected_count} of {evaluated_rows} rows unexpected"
        if self.unexpected_examples:
            text += ", e.g. " + ", ".join(self.unexpected_examples)
        return text


@dataclass(frozen=True)
class SuiteOutcome:
    """A suite's verdict: it succeeds only when every expectation does."""

    suite: str
    success: bool
    evaluated_rows: int
    outcomes: list[ExpectationOutcome]

    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def summary(self) -> str:
        failed = self.failed()
        if not failed:
            return f"all {len(self.outcomes)} expectations passed"
        return "\n".join(o.describe(self.evaluated_rows) for o in failed)

    def as_metadata(self) -> dict[str, str | int | bool]:
        """A flat dict for a Dagster check: totals, the summary, then one entry per expectation."""
        metadata: dict[str, str | int | bool] = {
            "suite": self.suite,
            "success": self.success,
            "evaluated_rows": self.evaluated_rows,
            "expectations": len(self.outcomes),
            "failed_expectations": len(self.failed()),
            "summary": self.summary(),
        }
        for o in self.outcomes:
            verdict = "passed" if o.success else "FAILED"
            quiet = o.success and o.observed is None
            metadata[o.expectation] = verdict if quiet else f"{verdict}: {o.finding(self.evaluated_rows)}"
        return metadata


def gx_expectations() -> Any:
    """The `great_expectations.expectations` module, importing GX (quietly) on first use."""
    return quiet_gx().expectations


def run_suite(
    name: str,
    df: pd.DataFrame,
    expectations: Sequence[Expectation],
    *,
    id_column: str | None = "event_id",
) -> SuiteOutcome:
    """Validate `df` against `expectations` as one GX suite.

    Offending rows are reported by their `id_column` value when the frame has that column,
    so an operator can look the rows up in the warehouse.
    """
    # Offending rows come back as positions, which we look up ourselves: GX's own
    # `unexpected_index_column_names` walks every failing row in Python (a minute per million).
    frame = df.reset_index(drop=True)
    # A few more than we show, so repeats of one bad value leave room for others.
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": 4 * MAX_EXAMPLES}
    with LOCK:
        context = fresh_context()  # a suite binds to GX's current context as it is built
        suite = quiet_gx().ExpectationSuite(name=name)
        for position, expectation in enumerate(expectations):
            expectation.meta = {**(expectation.meta or {}), "position": position}  # GX reorders results
            suite.add_expectation(expectation)
        batch = _batch_definition(context, name).get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format=result_format)
    results = sorted(result.results, key=lambda r: (r.expectation_config.meta or {}).get("position", 0))
    return SuiteOutcome(
        suite=name,
        success=bool(result.success),
        evaluated_rows=len(frame),
        outcomes=[_outcome(r, frame, id_column) for r in results],
    )


def _outcome(result: Any, frame: pd.DataFrame, id_column: str | None) -> ExpectationOutcome:
    column = result.expectation_config.kwargs.get("column")
    return outcome_of(result, examples=_examples(result.result or {}, frame, column, id_column))


def outcome_of(result: Any, *, examples: list[str], label: str | None = None) -> ExpectationOutcome:
    """An ExpectationOutcome from one GX validation result, its examples already rendered."""
    config = result.expectation_config
    column = config.kwargs.get("column")
    details = result.result or {}
    observed = details.get("observed_value")
    observed = None if observed is None else text_of(observed)
    missing = (details.get("details") or {}).get("mismatched", {}).get("missing")
    if missing:  # a column-set check: name what is absent, not what is there
        observed = "missing columns: " + ", ".join(missing)
    error = _error_message(result.exception_info)
    return ExpectationOutcome(
        expectation=label or (f"{config.type}({column})" if column else config.type),
        success=bool(result.success),
        unexpected_count=details.get("unexpected_count"),
        unexpected_examples=examples,
        observed=f"error: {error}" if error else observed,
        description=config.description or "",
    )


def _examples(details: dict, frame: pd.DataFrame, column: str | None, id_column: str | None) -> list[str]:
    """Offending values, prefixed with their row's id so an operator can find the row."""
    positions = details.get("partial_unexpected_index_list") or []
    if positions and id_column in frame.columns and column in frame.columns:
        rows = frame.loc[positions, [id_column, column]].itertuples(index=False)
        examples = [f"{id_column}={i}" + ("" if column == id_column else f": {text_of(v)}") for i, v, *_ in rows]
    else:
        examples = [text_of(v) for v in details.get("partial_unexpected_list") or []]
    return list(dict.fromkeys(examples))[:MAX_EXAMPLES]  # a duplicated id shows up once


def text_of(value: Any) -> str:
    """Render a value for a human: null for missing, strings quoted so blanks are visible."""
    import pandas as pd

    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return "null"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    return str(value)


def _error_message(exception_info: Any) -> str | None:
    """GX reports errors either flat or keyed by metric; return the first message."""
    if not isinstance(exception_info, dict):
        return None
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message") or "unknown error")
    return None


def _batch_definition(context: Any, asset_name: str) -> Any:
    """The whole-dataframe batch definition of one asset."""
    asset = context.data_sources.add_pandas(_DATASOURCE).add_dataframe_asset(asset_name)
    return asset.add_batch_definition_whole_dataframe(_BATCH_DEFINITION)


def fresh_context() -> Any:
    """A new in-memory GX context (about 10 ms), made GX's current one: nothing on disk, no network.

    One per validation, so what a validation registers (a datasource holding a connection,
    suites, results for Data Docs) is never seen by another.
    """
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = quiet_gx().get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


@functools.cache
def quiet_gx() -> Any:
    """The `great_expectations` module, imported with analytics off and its logger quiet."""
    # Analytics off before the import: the machine may have no network, and a
    # telemetry call must never stall a pipeline run.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    return gx
