"""Live segments: a sensor that reads newly landed event files, enters users, and calls the webhook."""

from datetime import UTC, datetime

import dagster as dg
import duckdb

from segment_pipeline.defs.constants import KEY_PREFIX, LIVE_GROUP
from segment_pipeline.defs.resources import ConfigResource, EventSourcesResource, LiveResource
from segment_pipeline.ingest.sources import SourceError
from segment_pipeline.live.tick import run_tick
from segment_pipeline.settings import load_settings

LIVE_SEGMENT_ENTRIES = dg.AssetKey([KEY_PREFIX, "live_segment_entries"])

live_segment_entries = dg.AssetSpec(
    LIVE_SEGMENT_ENTRIES,
    description=(
        "The outbox of live-segment entries: each entry is written to the live store "
        "(SEGMENT_PIPELINE_LIVE_STORE) before it is POSTed to SEGMENT_PIPELINE_WEBHOOK_URL; delivered_at is "
        "set on a 2xx, attempts counts the tries. Written by the live_segments sensor, not by runs; the "
        "nightly run copies it into the warehouse when it publishes."
    ),
    group_name=LIVE_GROUP,
    kinds={"duckdb"},
)


SENSOR_DESCRIPTION = (
    "Each tick: read event files that are new or changed under SEGMENT_PIPELINE_EVENTS, enter users "
    "in live segments (subtype 1 on the action; subtype 2 when the inaction deadline passes), and "
    "deliver due entries to the webhook with retries over a day. Keeps its state in the live store, never "
    "in the warehouse. Its first tick takes the files already there as history. Needs your own event "
    "files: the demo has no stream."
)


def live_segments_tick(
    context: dg.SensorEvaluationContext,
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
    try:
        files, missing = sources.event_files(), ""
    except SourceError as exc:  # no file yet: still deliver, and still start the watermark
        files, missing = [], f"; {exc}"
    try:
        result = run_tick(
            live_config.store_path,
            live,
            files,
            url=live_config.webhook_url,
            now=datetime.now(UTC).replace(tzinfo=None),
            late_tolerance_seconds=live_config.late_tolerance_seconds,
            secret=live_config.webhook_secret,
            timeout_s=live_config.timeout_s,
            budget_s=live_config.tick_budget_s,
            schedule=live_config.retry_schedule_s,
            concurrency=live_config.concurrency,
        )
    except (SourceError, ValueError) as exc:  # an unreadable source, a refused URL: the message says what to fix
        return dg.SkipReason(str(exc))
    except duckdb.IOException as exc:  # the nightly publish is copying the live store: try again next tick
        return dg.SkipReason(f"live store busy, retrying next tick: {exc}")
    summary = result.summary(live_config.webhook_url) + missing
    context.log.info(summary)
    processed, delivery = result.processed, result.delivery
    if processed.entries or delivery.delivered or delivery.dead:
        context.instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=LIVE_SEGMENT_ENTRIES,
                metadata={
                    "entries": len(processed.entries),
                    "delivered": len(delivery.delivered),
                    "retrying": len(delivery.retrying),
                    "dead_letter": result.outbox.get("dead", 0),
                    "left_for_next_tick": delivery.deferred,
                    "pending_deadlines": processed.pending,
                    "rejected_events": result.rejected_total,
                },
            )
        )
    return dg.SkipReason(summary)


def live_segments_sensor(tick_seconds: int) -> dg.SensorDefinition:
    """The sensor, evaluated every ``tick_seconds`` (SEGMENT_PIPELINE_LIVE_TICK_SECONDS)."""
    return dg.sensor(
        name="live_segments",
        minimum_interval_seconds=tick_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=SENSOR_DESCRIPTION,
    )(live_segments_tick)


@dg.definitions
def defs() -> dg.Definitions:
    sensor = live_segments_sensor(load_settings().live_tick_seconds)
    return dg.Definitions(assets=[live_segment_entries], sensors=[sensor])
