"""The door of the pipeline: events and profiles loaded into the warehouse, bad rows kept aside."""

import dagster as dg

from segment_pipeline.defs.constants import INGEST_GROUP, KEY_PREFIX
from segment_pipeline.defs.failures import input_errors_as_failures
from segment_pipeline.defs.partitions import daily, run_days
from segment_pipeline.defs.previews import table_preview
from segment_pipeline.defs.resources import ConfigResource, EventSourcesResource, WarehouseResource
from segment_pipeline.ingest.events import load_events
from segment_pipeline.ingest.profiles import load_profiles
from segment_pipeline.ingest.state import user_count
from segment_pipeline.storage.warehouse import scalar

EVENT_SNAPSHOTS = dg.AssetKey([KEY_PREFIX, "event_snapshots"])
REJECTED_EVENTS = dg.AssetKey([KEY_PREFIX, "rejected_events"])
PROFILES = dg.AssetKey([KEY_PREFIX, "profiles"])


EVENT_SPECS = [
    dg.AssetSpec(
        EVENT_SNAPSHOTS,
        description=(
            "Every valid event with ts before the end of the partition's day, loaded once "
            "(by event_id) from SEGMENT_PIPELINE_EVENTS or the demo generator. "
            "snapshot_date is the day of the run that loaded the row."
        ),
        group_name=INGEST_GROUP,
        kinds={"duckdb"},
    ),
    dg.AssetSpec(
        REJECTED_EVENTS,
        description=(
            "Source rows that broke the input contract (empty user_id or event_name, "
            "missing or unparseable ts, properties not a JSON object, malformed, too long or "
            "non-UTF-8 lines, an event_id repeated with different content), each with its "
            "file:row and reason, and files that could not be read at all (source = the path). "
            "Never silently dropped."
        ),
        group_name=INGEST_GROUP,
        kinds={"duckdb"},
    ),
]


def event_snapshots(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: EventSourcesResource,
    project_config: ConfigResource,
):
    as_of = run_days(context)[-1]
    project_config.load()  # a broken config stops the run here, before anything is written
    with warehouse.connect() as con, input_errors_as_failures():
        files = sources.event_files()
        report = load_events(con, files, snapshot_date=as_of, max_reject_rate=sources.max_reject_rate)
        total = scalar(con, "SELECT count(*) FROM analytics.event_snapshots")
        users = user_count(con)
        total_rejected = scalar(con, "SELECT count(*) FROM analytics.rejected_events")
        preview = table_preview(
            con, "SELECT * FROM analytics.event_snapshots WHERE snapshot_date = ? ORDER BY ts DESC LIMIT 10", [as_of]
        )
        rejects_preview = table_preview(
            con, "SELECT * FROM analytics.rejected_events WHERE snapshot_date = ? LIMIT 10", [as_of]
        )
    context.log.info(
        f"Loaded {report.loaded:,} events as of {as_of}, rejected {report.rejected:,} "
        f"({report.reject_rate:.3%}); skipped {report.files_skipped} unchanged files"
    )
    for path, reason in report.unreadable_files.items():
        context.log.warning(f"{path}: {reason}; the other files were loaded, this one is retried on the next run")
    yield dg.MaterializeResult(
        asset_key=EVENT_SNAPSHOTS,
        metadata={
            "as_of": str(as_of),
            "loaded_rows": report.loaded,
            "dagster/row_count": total,
            "users": users,
            "files_read": report.files_read,
            "files_skipped_unchanged": report.files_skipped,
            "rows_read": report.rows_read,
            "duplicate_event_ids_skipped": report.duplicates_skipped,
            "already_loaded": report.already_loaded,
            "deferred_after_day": report.deferred,
            "source": "demo generator" if sources.uses_demo else str(sources.events),
            "preview": dg.MetadataValue.md(preview),
        },
    )
    yield dg.MaterializeResult(
        asset_key=REJECTED_EVENTS,
        metadata={
            "rejected_rows": report.rejected,
            "reject_rate": round(report.reject_rate, 6),
            "max_reject_rate": sources.max_reject_rate,
            "reasons": dg.MetadataValue.json(report.reject_reasons),
            "unreadable_files": dg.MetadataValue.json(report.unreadable_files),
            "dagster/row_count": total_rejected,
            "preview": dg.MetadataValue.md(rejects_preview),
        },
    )


def profiles(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: EventSourcesResource,
    project_config: ConfigResource,
) -> dg.MaterializeResult:
    """User profiles as they are now (one row per user_id, one column per property), replacing
    the previous state; segments test their properties. Rows without a user_id are rejected."""
    as_of = run_days(context)[-1]
    project_config.load()  # the first steps both check the config: neither writes if it is broken
    with warehouse.connect() as con, input_errors_as_failures():
        files = sources.profile_files()
        report = load_profiles(con, files, snapshot_date=as_of)
        preview = table_preview(con, "SELECT * FROM analytics.profiles LIMIT 10")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": report.profiles,
            "properties": dg.MetadataValue.json(report.properties),
            "rows_read": report.rows_read,
            "duplicate_user_rows": report.duplicate_rows,
            "rejected_rows": report.rejected,
            "files": dg.MetadataValue.json([str(f.path) for f in files]),
            "preview": dg.MetadataValue.md(preview),
        }
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[
            dg.multi_asset(specs=EVENT_SPECS, can_subset=False, **daily())(event_snapshots),
            dg.asset(key=PROFILES, group_name=INGEST_GROUP, kinds={"duckdb"}, **daily())(profiles),
        ]
    )
