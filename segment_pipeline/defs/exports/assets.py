"""BI exports: every analytics table as Parquet, once everything else of the run is written."""

from pathlib import Path

import dagster as dg

from segment_pipeline.defs.constants import EXPORTS_GROUP
from segment_pipeline.defs.partitions import daily
from segment_pipeline.defs.resources import ExportResource, WarehouseResource
from segment_pipeline.storage.export import export_tables

EXPORTED = [
    dg.AssetKey(["analytics", name])
    for name in (
        "event_snapshots",
        "rejected_events",
        "profiles",
        "segment_memberships",
        "segment_tags",
        "segment_overlaps",
        "user_scores",
        "target_groups",
        "goal_status",
        "goal_forecasts",
        "intent_buckets",
        "engagement_audiences",
        "goal_uplift",
    )
]


def bi_exports(warehouse: WarehouseResource, exports: ExportResource) -> dg.MaterializeResult:
    """Parquet copies of every analytics table in SEGMENT_PIPELINE_EXPORT_DIR, refreshed after
    each run for BI tools that read files; nothing is written when the variable is unset."""
    if not exports.export_dir:
        return dg.MaterializeResult(metadata={"exported": "no: SEGMENT_PIPELINE_EXPORT_DIR is not set"})
    with warehouse.connect(read_only=True) as con:
        written = export_tables(con, Path(exports.export_dir))
    return dg.MaterializeResult(
        metadata={
            "folder": exports.export_dir,
            "rows": dg.MetadataValue.json(written),
            "dagster/row_count": sum(written.values()),
        }
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[dg.asset(deps=EXPORTED, group_name=EXPORTS_GROUP, kinds={"duckdb", "parquet"}, **daily())(bi_exports)]
    )
