"""Where goal reports are written (their model links use the MLflow resource's UI address)."""

import dagster as dg

from segment_pipeline.settings import load_settings


class ReportsResource(dg.ConfigurableResource):
    """SEGMENT_PIPELINE_REPORTS_DIR (default: ``reports/`` next to the warehouse)."""

    reports_dir: str


@dg.definitions
def resources() -> dg.Definitions:
    settings = load_settings()
    return dg.Definitions(
        resources={
            "reports": ReportsResource(reports_dir=str(settings.reports_dir)),
        }
    )
