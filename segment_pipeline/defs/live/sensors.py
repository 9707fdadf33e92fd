"""Live segments: a sensor that reads newly landed event files, enters users, and calls the webhook."""

from datetime import UTC, datetime

import dagster as dg
import duckdb

from segment_pipeline.defs.constants import KEY_PREFIX, LIVE_GROUP
from segment_pipeline.defs.resources import ConfigResource, EventSourcesResource, LiveResource, WarehouseResource
from segment_pipeline.ingest.sources import SourceError
from segment_pipeline.live.engine import process_files
from segment_pipeline.live.outbox import deliver
from segment_pipeline.settings import load_settings

LIVE_SEGMENT_ENTRIES = dg.AssetKey([KEY_PREFIX, "live_segment_entries"])

live_segment_entries = dg.AssetSpec(
    LIVE_SEGMENT_ENTRIES,
    description=(
        "The outbox of live-segment entries: each entry is written here before it is POSTed to "
        "SEGMENT_PIPELINE_WEBHOOK_URL; delivered_at is set on a 2xx, attempts counts the tries. "
        "Written by the live_segments sensor, not by runs."
    ),
    group_name=LIVE_GROUP,
    kinds={"duckdb"},
)


def _outbox_state(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(con.execute("SELECT status, count(*) FROM pipeline_state.live_outbox GROUP BY 1").fetchall())


@dg.sensor(
    name="live_segments",
    minimum_interval_seconds=load_settings().live_tick_seconds,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Each tick: read event files that are new or changed under SEGMENT_PIPELINE_EVENTS, enter users "
        "in live segments (subtype 1 on the action; subtype 2 when the inaction deadline passes), and "
        "deliver due entries to the webhook with retries. Needs your own event files: the demo has no stream."
    ),
)
def live_segments_sensor(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    sources: EventSourcesResource,
    project_config: ConfigResource,
    live_config: LiveResource,
):
    try:
        live = project_config.load().segments.live
    except dg.Failure as exc:
        return dg.SkipReason(f"config problem, nothing evaluated: {exc.description}")
    if not live:
        return dg.SkipReason("segments.yaml has no live segments")
    if sources.uses_demo:
        return dg.SkipReason("live segments read SEGMENT_PIPELINE_EVENTS as files land; the demo data is not a stream")
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        files = sources.event_files()
        with warehouse.connect() as con:
            result = process_files(
                con, live, files, now=now, late_tolerance_minutes=live_config.late_tolerance_seconds / 60
            )
            delivery = deliver(
                con, live_config.webhook_url, now=now, max_attempts=live_config.max_attempts,
                base_delay_s=live_config.base_delay_s, timeout_s=live_config.timeout_s,
            )
            state = _outbox_state(con)
    except SourceError as exc:
        return dg.SkipReason(str(exc))
    except duckdb.IOException as exc:  # the nightly run holds the warehouse: try again next tick
        return dg.SkipReason(f"warehouse busy, retrying next tick: {exc}")
    summary = (
        f"{result.events_new} new events, {len(result.entries)} entries, {result.pending} pending; "
        f"delivered {len(delivery.delivered)}, retrying {len(delivery.retrying)}, dead {len(delivery.dead)}; "
        f"outbox {state}" + ("" if live_config.webhook_url else " (no SEGMENT_PIPELINE_WEBHOOK_URL: kept, not sent)")
    )
    context.log.info(summary)
    if result.entries or delivery.delivered or delivery.dead:
        context.instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=LIVE_SEGMENT_ENTRIES,
                metadata={
                    "entries": len(result.entries),
                    "delivered": len(delivery.delivered),
                    "retrying": len(delivery.retrying),
                    "dead_letter": state.get("dead", 0),
                    "pending_deadlines": result.pending,
                },
            )
        )
    return dg.SkipReason(summary)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[live_segment_entries], sensors=[live_segments_sensor])
