"""Great Expectations checks on the events each run loads, before anything downstream reads them."""

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from segment_pipeline.defs.findings import unique_key_results, unique_key_specs
from segment_pipeline.defs.ingest.assets import EVENT_SNAPSHOTS
from segment_pipeline.defs.partitions import daily_partitions, run_days
from segment_pipeline.defs.resources import WarehouseResource
from segment_pipeline.ingest.events import day_cutoff
from segment_pipeline.ingest.state import first_event_day
from segment_pipeline.quality.snapshot_sql import check_loaded_slice
from segment_pipeline.quality.snapshot_suite import EARLIEST_EVENT_TS, SuiteOutcome, check_daily_volume
from segment_pipeline.storage.warehouse import data_docs_directory

REQUIRED_COLUMNS_CHECK = "required_columns_present"
TIMESTAMP_RANGE_CHECK = "timestamps_inside_loaded_range"
UNIQUE_IDS_CHECK = "event_ids_unique"
DAILY_VOLUME_CHECK = "daily_volume_normal"

VOLUME_TRAILING_DAYS = 7
KEYED_TABLES = ["profiles", "rejected_events"]

_DAILY_COUNTS_SQL = """
SELECT CAST(ts AS DATE) AS day, count(*) FROM analytics.event_snapshots
WHERE ts >= ? AND ts < ? GROUP BY 1
"""


def _metadata(outcome: SuiteOutcome, docs: Path | None) -> dict[str, Any]:
    """The suite's rules with their unexpected counts and example rows, and where GX's Data Docs are."""
    metadata: dict[str, Any] = dict(outcome.as_metadata())
    metadata["rules"] = _rules_table(outcome)
    if docs is not None:
        metadata["data_docs"] = dg.MetadataValue.path(str(docs / "index.html"))
    return metadata


_RULE_COLUMNS = dg.TableSchema(
    columns=[
        dg.TableColumn("rule", "string"),
        dg.TableColumn("passed", "bool"),
        dg.TableColumn("unexpected_rows", "int", description="-1 for a rule on the whole table"),
        dg.TableColumn("finding", "string", description="what was found, with up to 5 offending rows"),
        dg.TableColumn("protects", "string"),
    ]
)


def _rules_table(outcome: SuiteOutcome) -> dg.TableMetadataValue:
    """One row per GX expectation, as the UI shows tables."""
    records = [
        dg.TableRecord(
            {
                "rule": o.expectation,
                "passed": o.success,
                "unexpected_rows": -1 if o.unexpected_count is None else int(o.unexpected_count),
                "finding": o.finding(outcome.evaluated_rows),
                "protects": o.description,
            }
        )
        for o in outcome.outcomes
    ]
    return dg.MetadataValue.table(records=records, schema=_RULE_COLUMNS)


def _result(
    check_name: str,
    outcome: SuiteOutcome,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    docs: Path | None = None,
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=EVENT_SNAPSHOTS,
        check_name=check_name,
        passed=outcome.success,
        severity=severity,
        description=outcome.summary(),
        metadata=_metadata(outcome, docs),
    )


def _per_day(
    check_name: str,
    day: date,
    outcome: SuiteOutcome,
    severity: dg.AssetCheckSeverity,
    blocking: bool,
    docs: Path | None = None,
) -> dg.AssetCheckEvaluation:
    """The check's result for one day of a range run. Dagster files an AssetCheckResult of a
    range under no partition (the UI then shows the range's days as skipped), so a range run
    reports each day itself."""
    return dg.AssetCheckEvaluation(
        asset_key=EVENT_SNAPSHOTS,
        check_name=check_name,
        passed=outcome.success,
        severity=severity,
        description=outcome.summary(),
        metadata=_metadata(outcome, docs),
        blocking=blocking,
        partition=day.isoformat(),
    )


def _specs(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            REQUIRED_COLUMNS_CHECK,
            asset=EVENT_SNAPSHOTS,
            partitions_def=partitions,
            blocking=True,
            description="Every loaded event has an id, a non-blank user and event name, a time and properties.",
        ),
        dg.AssetCheckSpec(
            TIMESTAMP_RANGE_CHECK,
            asset=EVENT_SNAPSHOTS,
            partitions_def=partitions,
            blocking=True,
            description="Every loaded event is before the end of the run's day and from 1970-01-01 on.",
        ),
        dg.AssetCheckSpec(
            UNIQUE_IDS_CHECK,
            asset=EVENT_SNAPSHOTS,
            partitions_def=partitions,
            blocking=True,
            description="Every event_id is in the snapshot once.",
        ),
        dg.AssetCheckSpec(
            DAILY_VOLUME_CHECK,
            asset=EVENT_SNAPSHOTS,
            partitions_def=partitions,
            blocking=False,
            description="The day's event count is within 50% of the trailing 7 days' mean.",
        ),
        # event_snapshots' key is event_ids_unique above, with the load's own examples.
        *unique_key_specs(["profiles"], partitions),
        # A warning only: a source file rewritten in place can be rejected again at the same
        # path:N with other content, and the record of bad input must not stop the night.
        *unique_key_specs(["rejected_events"], partitions, blocking=False),
    ]


def event_snapshot_quality(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    """The GX suites on the rows this run loaded, run in the warehouse; Data Docs next to it."""
    days = run_days(context)
    first, last = days[0], days[-1]
    docs = data_docs_directory(warehouse.path)
    with warehouse.connect(read_only=True) as con:
        required, timestamps, unique = check_loaded_slice(
            con, first, last, min_ts=EARLIEST_EVENT_TS, max_ts_exclusive=day_cutoff(last), docs_dir=docs
        )
        counts = dict(
            con.execute(_DAILY_COUNTS_SQL, [first - timedelta(days=VOLUME_TRAILING_DAYS), day_cutoff(last)]).fetchall()
        )
        first_day = first_event_day(con)  # from pipeline_state.users, not a scan of the history
        keys = unique_key_results(con, KEYED_TABLES, days)

    outcomes = {REQUIRED_COLUMNS_CHECK: required, TIMESTAMP_RANGE_CHECK: timestamps, UNIQUE_IDS_CHECK: unique}

    def volume_on(day: date) -> SuiteOutcome:
        since = day - timedelta(days=VOLUME_TRAILING_DAYS)
        # Days before the first event are not history, so they don't drag the mean to zero.
        trailing = [
            counts.get(since + timedelta(days=i), 0)
            for i in range(VOLUME_TRAILING_DAYS)
            if first_day is not None and since + timedelta(days=i) >= first_day
        ]
        return check_daily_volume(counts.get(day, 0), trailing)

    yield from keys
    if len(days) == 1:
        for name, outcome in outcomes.items():
            yield _result(name, outcome, docs=docs)
        yield _result(DAILY_VOLUME_CHECK, volume_on(last), dg.AssetCheckSeverity.WARN)
        return
    # A range: the rows it loaded are checked once, and that outcome holds for each of its days;
    # the volume is judged day by day.
    for day in days:
        for name, outcome in outcomes.items():
            yield _per_day(name, day, outcome, dg.AssetCheckSeverity.ERROR, blocking=True, docs=docs)
        yield _per_day(DAILY_VOLUME_CHECK, day, volume_on(day), dg.AssetCheckSeverity.WARN, blocking=False)
    for name in (*outcomes, DAILY_VOLUME_CHECK):
        key = dg.AssetCheckKey(EVENT_SNAPSHOTS, name)
        output_name = context.op_execution_context.assets_def.get_output_name_for_asset_check_key(key)
        yield dg.Output(None, output_name=output_name)


@dg.definitions
def defs() -> dg.Definitions:
    partitions = daily_partitions()
    return dg.Definitions(
        asset_checks=[
            dg.multi_asset_check(specs=_specs(partitions))(event_snapshot_quality),
        ]
    )
