"""Goal reports: an HTML page per goal per night and an index, after goals and segments are written."""

from pathlib import Path

import dagster as dg

from segment_pipeline.defs.constants import REPORTS_GROUP
from segment_pipeline.defs.goals.assets import GOAL_FORECASTS, GOAL_STATUS, GOAL_UPLIFT, INTENT_BUCKETS
from segment_pipeline.defs.partitions import daily, run_days
from segment_pipeline.defs.reports.resources import ReportsResource
from segment_pipeline.defs.resources import MLflowResource, WarehouseResource
from segment_pipeline.defs.segments.assets import SEGMENT_MEMBERSHIPS, SEGMENT_OVERLAPS
from segment_pipeline.reports.build import write_night_reports
from segment_pipeline.reports.mlflow_links import run_page_url
from segment_pipeline.reports.summary import night_summary

BI_EXPORTS = dg.AssetKey("bi_exports")  # a key, not the asset: defs/ loading would see it twice


# After the exports too, so its summary is the run's closing message.
REPORTED = [GOAL_STATUS, GOAL_FORECASTS, GOAL_UPLIFT, INTENT_BUCKETS, SEGMENT_MEMBERSHIPS, SEGMENT_OVERLAPS, BI_EXPORTS]


def goal_reports(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, reports: ReportsResource, mlflow: MLflowResource
) -> dg.MaterializeResult:
    """A self-contained HTML report per goal and night (forecast vs actual, test vs control with
    the uplift interval, intent buckets, model quality) and an index of goals and segments,
    written under SEGMENT_PIPELINE_REPORTS_DIR/<night>/; open them from a file browser."""
    folder = Path(reports.reports_dir)

    def run_url(run_id: str) -> str | None:
        return run_page_url(mlflow.ui_url, mlflow.tracking_uri, run_id)

    with warehouse.connect(read_only=True) as con:
        nights = [write_night_reports(con, folder, day, run_url=run_url) for day in run_days(context)]
        summary = night_summary(con, nights[-1])
    context.log.info(summary)
    last = nights[-1]
    metadata: dict = {
        "index": dg.MetadataValue.url(last.index.as_uri()),
        "index_path": dg.MetadataValue.path(str(last.index)),
        "nights_written": len(nights),
        "goals": len(last.goals),
    }
    for name, page in last.goals.items():
        metadata[f"{name}/report"] = dg.MetadataValue.url(page.as_uri())
    return dg.MaterializeResult(metadata=metadata)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[dg.asset(deps=REPORTED, group_name=REPORTS_GROUP, kinds={"html", "vega"}, **daily())(goal_reports)]
    )
