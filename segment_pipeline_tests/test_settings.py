"""Defaults that shape the first hour: where partitions start, where reports go."""

from datetime import date

from segment_pipeline.demo.generator import DemoSpec
from segment_pipeline.settings import DEMO_FIRST_DAY, load_settings


def test_partitions_start_at_the_demo_first_day_with_the_demo_and_2025_otherwise():
    assert DemoSpec().start == DEMO_FIRST_DAY
    assert load_settings({}).start_date == date(2026, 1, 1)
    assert load_settings({"SEGMENT_PIPELINE_EVENTS": "/data/events/*.parquet"}).start_date == date(2025, 1, 1)
    assert load_settings({"SEGMENT_PIPELINE_START_DATE": "2024-03-01"}).start_date == date(2024, 3, 1)


def test_reports_sit_next_to_the_warehouse_unless_told_otherwise(tmp_path):
    settings = load_settings({"SEGMENT_PIPELINE_WAREHOUSE": str(tmp_path / "wh" / "w.duckdb")})
    assert settings.reports_dir == tmp_path / "wh" / "reports"
    assert load_settings({"SEGMENT_PIPELINE_REPORTS_DIR": str(tmp_path / "r")}).reports_dir == tmp_path / "r"
    assert load_settings({}).mlflow_ui_url == "http://127.0.0.1:5000"


def test_engine_is_duckdb_unless_told_and_an_unknown_engine_is_refused(tmp_path):
    import pytest

    from segment_pipeline.settings import SettingsError

    warehouse = str(tmp_path / "w.duckdb")
    plain = load_settings({"SEGMENT_PIPELINE_WAREHOUSE": warehouse})
    assert (plain.engine, plain.spark_remote, plain.lake_dir) == ("duckdb", None, tmp_path / "lake")
    spark = load_settings(
        {"SEGMENT_PIPELINE_WAREHOUSE": warehouse, "SEGMENT_PIPELINE_ENGINE": "Spark", "SPARK_REMOTE": "sc://h:15002"}
    )
    assert (spark.engine, spark.spark_remote) == ("spark", "sc://h:15002")
    with pytest.raises(SettingsError, match="SEGMENT_PIPELINE_ENGINE='polars'"):
        load_settings({"SEGMENT_PIPELINE_ENGINE": "polars"})
