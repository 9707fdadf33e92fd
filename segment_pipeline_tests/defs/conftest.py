"""Fixtures for running the real Dagster graph on a small demo in a temp folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from segment_pipeline.defs.engines.resources import EngineResource
from segment_pipeline.defs.reports.resources import ReportsResource
from segment_pipeline.defs.resources import (
    ConfigResource,
    EventSourcesResource,
    ExportResource,
    MLflowResource,
    WarehouseResource,
)
from segment_pipeline.settings import BUNDLED_CONFIG_DIR

SMALL_DEMO = {"demo_users": 400, "demo_days": 60}
SMALL_DEMO_DAY = "2026-02-27"


def small_demo_resources(tmp: Path, config_dir: Path | None = None, **sources) -> dict:
    return {
        "warehouse": WarehouseResource(path=str(tmp / "warehouse.duckdb")),
        "sources": EventSourcesResource(demo_dir=str(tmp / "demo"), **{**SMALL_DEMO, **sources}),
        "project_config": ConfigResource(config_dir=str(config_dir or BUNDLED_CONFIG_DIR)),
        "mlflow": MLflowResource(tracking_uri=(tmp / "mlruns").as_uri()),
        "exports": ExportResource(export_dir=str(tmp / "exports")),
        "reports": ReportsResource(reports_dir=str(tmp / "reports")),
        "engine": EngineResource(),
    }


@pytest.fixture
def demo_resources(tmp_path: Path) -> dict:
    return small_demo_resources(tmp_path)
