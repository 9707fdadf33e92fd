"""Past-behavior segments: who is in each segment each day, their tags, overlaps and score trees."""

import dagster as dg

from segment_pipeline.defs.constants import KEY_PREFIX, SEGMENTS_GROUP
from segment_pipeline.defs.engines.resources import EngineResource
from segment_pipeline.defs.ingest.assets import EVENT_SNAPSHOTS, PROFILES
from segment_pipeline.defs.partitions import daily, run_days
from segment_pipeline.defs.previews import rows_table, table_preview
from segment_pipeline.defs.resources import ConfigResource, WarehouseResource
from segment_pipeline.rules.vocabulary import read_vocabulary, vocabulary_warnings
from segment_pipeline.segments.evaluate import evaluate_day, size_history
from segment_pipeline.segments.score_trees import replace_user_scores
from segment_pipeline.storage.warehouse import scalar

SEGMENT_MEMBERSHIPS = dg.AssetKey([KEY_PREFIX, "segment_memberships"])
SEGMENT_TAGS = dg.AssetKey([KEY_PREFIX, "segment_tags"])
SEGMENT_OVERLAPS = dg.AssetKey([KEY_PREFIX, "segment_overlaps"])
USER_SCORES = dg.AssetKey([KEY_PREFIX, "user_scores"])


SEGMENT_SPECS = [
    dg.AssetSpec(
        SEGMENT_MEMBERSHIPS,
        deps=[EVENT_SNAPSHOTS, PROFILES],
        description=(
            "Who is in each past segment of segments.yaml (and the built-in All Users) as of "
            "the day: ordered actions, minCount, an inaction, event and profile properties, "
            "evaluated exactly over the segment's time frame ending at the day's end."
        ),
        group_name=SEGMENTS_GROUP,
        kinds={"duckdb"},
    ),
    dg.AssetSpec(
        SEGMENT_TAGS,
        deps=[EVENT_SNAPSHOTS, PROFILES],
        description=(
            "Segment tags as history: a row opens (created_at) on the first evaluated day a user "
            "is in a segment and closes (removed_at) on the first day the user is out; re-entry "
            "opens a new row. removed_at is NULL while the tag is current."
        ),
        group_name=SEGMENTS_GROUP,
        kinds={"duckdb"},
    ),
    dg.AssetSpec(
        SEGMENT_OVERLAPS,
        deps=[EVENT_SNAPSHOTS, PROFILES],
        description=(
            "Users in both segments, for every ordered pair of the day's segments: sizes on the "
            "diagonal (a = b), overlaps and conflicts off it, zeros kept."
        ),
        group_name=SEGMENTS_GROUP,
        kinds={"duckdb"},
    ),
]


def segment_memberships(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    project_config: ConfigResource,
    engine: EngineResource,
):
    segments = project_config.load().segments
    days = run_days(context)
    with warehouse.connect() as con, engine.open(warehouse.path) as compute:
        warnings = vocabulary_warnings(segments.past, read_vocabulary(con, segments.past))
        for warning in warnings:
            context.log.warning(str(warning))
        results = [evaluate_day(con, segments, day, compute) for day in days]
        last = results[-1]
        trend = size_history(con, last.as_of)
        overlaps = table_preview(
            con,
            """SELECT segment_a, segment_b, users FROM analytics.segment_overlaps
               WHERE as_of_date = ? AND segment_a < segment_b AND users > 0 ORDER BY users DESC LIMIT 15""",
            [last.as_of],
        )
        open_tags = scalar(con, "SELECT count(*) FROM analytics.segment_tags WHERE removed_at IS NULL")
    sizes_table = rows_table(["segment", "members"], sorted(last.sizes.items()))
    yield dg.MaterializeResult(
        asset_key=SEGMENT_MEMBERSHIPS,
        metadata={
            "as_of": str(last.as_of),
            "engine": engine.kind,
            "days_evaluated": len(results),
            "segments": len(last.sizes),
            "dagster/row_count": sum(last.sizes.values()),
            "sizes": dg.MetadataValue.md(sizes_table),
            "sizes_over_time": dg.MetadataValue.md(_trend_table(trend)),
            "vocabulary_warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in warnings) or "_none_"),
        },
    )
    yield dg.MaterializeResult(
        asset_key=SEGMENT_TAGS,
        metadata={"open_tags": open_tags, "update": last.tags_update},
    )
    yield dg.MaterializeResult(
        asset_key=SEGMENT_OVERLAPS,
        metadata={"largest_overlaps": dg.MetadataValue.md(overlaps)},
    )


TREND_COLUMNS = 30  # a table a person can read; thousands of segments would be thousands of columns


def _trend_table(trend: list[tuple]) -> str:
    """Days as rows, segments as columns: how each segment grew or shrank (the largest ones
    on the last day when there are more than ``TREND_COLUMNS``)."""
    days = sorted({d for d, _, _ in trend})
    cell = {(d, n): m for d, n, m in trend}
    names = sorted({n for _, n, _ in trend})
    note = ""
    if len(names) > TREND_COLUMNS:
        largest = sorted(names, key=lambda n: (-cell.get((days[-1], n), 0), n))[:TREND_COLUMNS]
        note = f"\n\n_The {TREND_COLUMNS} largest of {len(names)} segments on {days[-1]}._"
        names = sorted(largest)
    table = rows_table(["day", *names], [[str(d), *(cell.get((d, n), "") for n in names)] for d in days[-14:]])
    return table + note


def user_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource, project_config: ConfigResource):
    """Score-tree labels (e.g. S1..S4) per user: the first path of scores.yaml whose segments all
    hold; the default path catches everyone else. Recomputed on each tree's refresh day and
    carried forward between."""
    scores = project_config.load().scores.scores
    with warehouse.connect() as con:
        runs = [replace_user_scores(con, day, scores) for day in run_days(context)][-1]
    rows = [
        [r.score_name, r.mode, r.multi_path_users, ", ".join(f"{k}: {v:,}" for k, v in r.labels.items())] for r in runs
    ]
    return dg.MaterializeResult(
        metadata={
            "scores": dg.MetadataValue.md(
                rows_table(["score", "mode", "users matching several paths", "labels"], rows)
            ),
            "dagster/row_count": sum(sum(r.labels.values()) for r in runs),
        }
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[
            dg.multi_asset(specs=SEGMENT_SPECS, can_subset=False, **daily())(segment_memberships),
            dg.asset(
                key=USER_SCORES, deps=[SEGMENT_MEMBERSHIPS], group_name=SEGMENTS_GROUP, kinds={"duckdb"}, **daily()
            )(user_scores),
        ]
    )
