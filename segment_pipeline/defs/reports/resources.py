"""Where goal reports are written, and the MLflow UI address their model links point at."""

import dagster as dg

from segment_pipeline.settings import load_settings


class ReportsResource(dg.ConfigurableResource):
    """SEGMENT_PIPELINE_REPORTS_DIR (default: ``reports/`` next to the warehouse) and
    SEGMENT_PIPELINE_MLFLOW_UI_URL (default http://127.0.0.1:5000, where ``mlflow ui`` serves)."""

    reports_dir: str
    mlflow_ui_url: str = "http://127.0.0.1:5000"


@dg.definitions
def resources() -> dg.Definitions:
    settings = load_settings()
    return dg.Definitions(
        resources={
            "reports": ReportsResource(reports_dir=str(settings.reports_dir), mlflow_ui_url=settings.mlflow_ui_url),
        }
    )
