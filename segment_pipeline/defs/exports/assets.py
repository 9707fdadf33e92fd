"""BI exports: every analytics table as Parquet, once everything else of the run is written."""

from pathlib import Path

import dagster as dg

from segment_pipeline.defs.constants import EXPORTS_GROUP, KEY_PREFIX
from segment_pipeline.defs.partitions import daily
from segment_pipeline.defs.resources import ExportResource, WarehouseResource
from segment_pipeline.storage.export import export_tables
from segment_pipeline.storage.tables import TABLES

# Every table of the reference: the export runs after all of them are written.
EXPORTED = [dg.AssetKey([KEY_PREFIX, table.name]) for table in TABLES]


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
