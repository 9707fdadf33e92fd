"""Goal reports from a real run of the graph: files, metadata, and charts drawn in a real browser."""

from __future__ import annotations

import shutil
from datetime import date

import dagster as dg
import pytest

from segment_pipeline.definitions import defs as load_definitions
from segment_pipeline.reports.build import goal_slug, write_night_reports
from segment_pipeline.settings import BUNDLED_CONFIG_DIR
from segment_pipeline.storage import warehouse
from segment_pipeline.storage.connections import open_duckdb
from segment_pipeline_tests.defs.conftest import small_demo_resources
from segment_pipeline_tests.reports.browser import browser_page

defs = load_definitions()

DAY = "2026-02-20"
GOAL = "carts in late february"
GOALS_YAML = """
kind: goals
goals:
  - goalName: carts in late february
    segment: All Users
    createdOn: 2026-02-16
    endDate: 2026-02-26
    objective: maximize
    events:
      - eventType: add_to_cart
    controlGroupPercent: 10
    lookbackDays: 14
"""


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """One real nightly run of the whole graph on a small demo with an active goal."""
    tmp = tmp_path_factory.mktemp("night")
    config = tmp / "config"
    config.mkdir()
    for name in ("segments.yaml", "scores.yaml"):
        shutil.copy(BUNDLED_CONFIG_DIR / name, config / name)
    (config / "goals.yaml").write_text(GOALS_YAML)
    resources = small_demo_resources(tmp, config_dir=config)
    result = dg.materialize(list(defs.assets) + list(defs.asset_checks), resources=resources, partition_key=DAY)
    assert result.success
    return tmp, result


def metadata(result, key: dg.AssetKey) -> dict:
    return next(m for m in result.get_asset_materialization_events() if m.asset_key == key).materialization.metadata


def test_each_goal_and_the_index_get_a_page_per_night(night):
    tmp, result = night
    folder = tmp / "reports" / DAY
    page = folder / f"{goal_slug(GOAL)}.html"
    assert page.exists() and (folder / "index.html").exists() and (tmp / "reports" / "index.html").exists()
    assert not list(folder.glob(".*.tmp"))  # written by rename, no leftovers
    text = page.read_text()
    assert "window.vegaEmbed" in text and "https://cdn" not in text  # the libraries are inlined
    meta = metadata(result, dg.AssetKey("goal_reports"))
    assert meta["index"].value == (folder / "index.html").as_uri()
    assert meta[f"{GOAL}/report"].value == page.as_uri()


def test_goal_assets_show_numbers_to_trend_and_tables_with_schemas(night):
    _, result = night
    status = metadata(result, dg.AssetKey(["analytics", "goal_status"]))
    forecasts = metadata(result, dg.AssetKey(["analytics", "goal_forecasts"]))
    uplift = metadata(result, dg.AssetKey(["analytics", "goal_uplift"]))
    buckets = metadata(result, dg.AssetKey(["analytics", "intent_buckets"]))
    for meta, key in (
        (status, "achievers"),
        (forecasts, "forecast"),
        (forecasts, "forecast_high"),
        (uplift, "uplift"),
        (uplift, "uplift_ci_low"),
        (status, "model_auc"),
    ):
        assert isinstance(meta[f"{GOAL}/{key}"], dg.FloatMetadataValue), key
    assert any(k.startswith(f"{GOAL}/") and isinstance(v, dg.FloatMetadataValue) for k, v in buckets.items())
    table = forecasts[f"{GOAL}/forecast_table"]
    assert isinstance(table, dg.TableMetadataValue)
    assert [c.name for c in table.schema.columns] == ["day", "predicted", "low_90", "high_90", "actual"]
    assert len(table.records) == 11  # 2026-02-16 .. 2026-02-26
    assert isinstance(uplift[f"{GOAL}/uplift_table"], dg.TableMetadataValue)
    assert status[f"{GOAL}/mlflow_run"].value.startswith("http://127.0.0.1:5000/#/experiments/")
    assert "mlflow ui --backend-store-uri sqlite:///" in status["mlflow_ui"].value


def test_the_catalog_has_the_column_schema_of_every_table():
    from segment_pipeline.storage.tables import TABLES

    graph = defs.resolve_asset_graph()
    for table in TABLES:
        schema = graph.get(dg.AssetKey(["analytics", table.name])).metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == [name for name, _, _ in table.columns], table.name


def test_the_mlflow_experiment_opens_on_runs(night):
    tmp, _ = night
    from mlflow import MlflowClient

    from segment_pipeline.goals.tracking import EXPERIMENT_NAME, resolve_store

    store, _ = resolve_store((tmp / "mlruns").as_uri())
    experiment = MlflowClient(tracking_uri=store).get_experiment_by_name(EXPERIMENT_NAME)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_every_chart_renders_offline_in_a_real_browser(night):
    tmp, _ = night
    for page_file in (tmp / "reports" / DAY / f"{goal_slug(GOAL)}.html", tmp / "reports" / DAY / "index.html"):
        with browser_page() as (page, visit):
            page.goto(page_file.as_uri())
            page.wait_for_function(
                "[...document.querySelectorAll('[data-chart]')].every(c => c.dataset.rendered)", timeout=20_000
            )
            charts = page.eval_on_selector_all(
                "[data-chart]",
                "els => els.map(e => [e.id, e.dataset.rendered, e.querySelectorAll('svg .mark-line path, "
                "svg .mark-rect path, svg .mark-area path, svg .mark-symbol path, svg .mark-rule line, "
                "svg .mark-text text').length])",
            )
            assert len(charts) >= (5 if "goal-" in page_file.name else 2), page_file.name
            for chart_id, rendered, marks in charts:
                assert rendered == "true" and marks > 0, (page_file.name, chart_id, rendered, marks)
            assert visit.console_errors == [] and visit.outside_requests == [], visit
            assert page.inner_text("#errors") == ""


def test_a_missing_model_quality_table_is_said_in_words_and_drawn_when_present(night, tmp_path):
    tmp, _ = night
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(tmp / "warehouse.duckdb", copy)
    with open_duckdb(str(copy)) as con:  # a warehouse written before the table existed
        con.execute("DROP TABLE IF EXISTS analytics.goal_model_quality")
    with warehouse.connect(copy, read_only=True) as con:
        without = write_night_reports(con, tmp_path / "a", date.fromisoformat(DAY))
    assert "no analytics.goal_model_quality table" in without.goals[GOAL].read_text()
    with open_duckdb(str(copy)) as con:
        con.execute(
            """CREATE TABLE analytics.goal_model_quality AS SELECT * FROM (VALUES
            (?, DATE '2026-02-16', 'run1', DATE '2026-02-26', 500, 60, 55.0, 0.71, 0.65, 0.77, 0.09, 2.4),
            (?, DATE '2026-02-18', 'run1', DATE '2026-02-26', 480, 50, 47.0, 0.69, 0.62, 0.76, 0.08, 2.1))
            t(goal_name, prediction_date, model_run_id, horizon_end, users, achievers, predicted_achievers,
              auc, auc_ci_low, auc_ci_high, brier, top_bucket_lift)""",
            [GOAL, GOAL],
        )
    with warehouse.connect(copy, read_only=True) as con:
        with_quality = write_night_reports(con, tmp_path / "b", date.fromisoformat(DAY))
    assert with_quality.nights[GOAL].numbers()["auc"] == pytest.approx(0.69)
    assert "Model quality over prediction dates: AUC" in with_quality.goals[GOAL].read_text()


@pytest.mark.slow
def test_a_range_run_reports_each_check_for_each_day(night, tmp_path):
    resources = small_demo_resources(tmp_path)
    job = defs.resolve_job_def("nightly_refresh")
    result = job.execute_in_process(
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        tags={"dagster/asset_partition_range_start": "2026-02-18", "dagster/asset_partition_range_end": "2026-02-20"},
    )
    assert result.success
    evaluations = [e for e in result.get_asset_check_evaluations() if e.asset_key.path[-1] == "event_snapshots"]
    by_check: dict[str, set] = {}
    for e in evaluations:
        assert e.passed, e
        by_check.setdefault(e.check_name, set()).add(e.partition)
    assert by_check and all(days == {"2026-02-18", "2026-02-19", "2026-02-20"} for days in by_check.values()), by_check
