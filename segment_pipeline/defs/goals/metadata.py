"""What the goal assets show in the UI: tables with column schemas, and numbers the Plots tab trends.

Numbers are keyed ``<goal>/<figure>`` (achievers, forecast, uplift, its interval, bucket
sizes, AUC), one value per materialization, so the asset's Plots tab draws each over nights.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import duckdb

from segment_pipeline.goals.goal_day import GoalDayResult
from segment_pipeline.reports.figures import GoalNight, goal_night
from segment_pipeline.reports.mlflow_links import experiment_runs_url, mlflow_ui_command, run_page_url

FORECAST_FIGURES = ("achievers", "forecast", "forecast_low", "forecast_high")
UPLIFT_FIGURES = ("test_rate", "control_rate", "uplift", "uplift_ci_low", "uplift_ci_high")
# Value goals only (valueProperty): absent for the others.
VALUE_FORECAST_FIGURES = ("value_actual", "value_forecast", "value_forecast_low", "value_forecast_high")
VALUE_UPLIFT_FIGURES = ("value_uplift", "value_uplift_ci_low", "value_uplift_ci_high")


def table(columns: list[tuple[str, str, str]], rows: list[list]) -> dg.TableMetadataValue:
    """A table the UI renders as one (name, type, meaning) per column."""
    schema = dg.TableSchema(columns=[dg.TableColumn(n, t, description=d) for n, t, d in columns])
    names = [n for n, _, _ in columns]
    return dg.MetadataValue.table(
        records=[dg.TableRecord(dict(zip(names, row, strict=True))) for row in rows], schema=schema
    )


def goal_asset_metadata(
    con: duckdb.DuckDBPyConnection, results: list[GoalDayResult], tracking_uri: str, ui_url: str
) -> dict[str, dict[str, Any]]:
    """Metadata per goal asset name (goal_status, goal_forecasts, goal_uplift, intent_buckets, target_groups)."""
    nights = {r.goal_name: goal_night(con, r.goal_name, r.as_of) for r in results}
    status: dict[str, Any] = {
        "goals": table(
            [
                ("goal", "string", ""),
                ("status", "string", "active, insufficient_history, ended or invalid"),
                ("message", "string", "what a person should know"),
                ("model_run_id", "string", "MLflow run"),
            ],
            [[r.goal_name, r.status, r.message, r.run_id] for r in results],
        ),
        "mlflow_ui": dg.MetadataValue.text(mlflow_ui_command(tracking_uri)),
    }
    forecasts: dict[str, Any] = {}
    uplift: dict[str, Any] = {}
    buckets: dict[str, Any] = {}
    for r in results:
        night, numbers = nights[r.goal_name], nights[r.goal_name].numbers()
        if r.run_id and (url := run_page_url(ui_url, tracking_uri, r.run_id)):
            status[f"{r.goal_name}/mlflow_run"] = dg.MetadataValue.url(url)
            if experiment := experiment_runs_url(ui_url, tracking_uri, r.run_id):
                status["mlflow_experiment"] = dg.MetadataValue.url(experiment)
        if r.model_auc is not None:
            status[f"{r.goal_name}/model_auc"] = r.model_auc
        if (q := night.latest_quality) is not None and q["auc"] is not None:
            status[f"{r.goal_name}/auc"] = float(q["auc"])
        for figure in FORECAST_FIGURES:
            if figure in numbers:
                status[f"{r.goal_name}/{figure}"] = forecasts[f"{r.goal_name}/{figure}"] = round(numbers[figure], 2)
        for figure in UPLIFT_FIGURES + VALUE_UPLIFT_FIGURES:
            if figure in numbers:
                uplift[f"{r.goal_name}/{figure}"] = numbers[figure]
        for figure in VALUE_FORECAST_FIGURES:
            if figure in numbers:
                forecasts[f"{r.goal_name}/{figure}"] = round(numbers[figure], 2)
        for name, value in numbers.items():
            if name.startswith("bucket_"):
                buckets[f"{r.goal_name}/{name.removeprefix('bucket_')}"] = value
        if night.forecast:
            forecasts[f"{r.goal_name}/forecast_table"] = _forecast_table(night)
        if r.uplift:
            uplift[f"{r.goal_name}/uplift_table"] = _uplift_table(r)
    return {
        "goal_status": status,
        "goal_forecasts": {"as_of": str(results[0].as_of) if results else "", **forecasts},
        "goal_uplift": uplift,
        "intent_buckets": {
            "buckets": table(
                [
                    ("goal", "string", ""),
                    *(
                        (b, "int", "users tonight")
                        for b in ("most_likely", "moderately_likely", "least_likely", "achieved")
                    ),
                ],
                [
                    [
                        r.goal_name,
                        *(
                            r.buckets.get(b, 0)
                            for b in ("most_likely", "moderately_likely", "least_likely", "achieved")
                        ),
                    ]
                    for r in results
                    if r.buckets
                ],
            ),
            **buckets,
        },
        "target_groups": {
            "groups": table(
                [
                    ("goal", "string", ""),
                    ("members", "int", "frozen target group"),
                    ("control", "int", "of them"),
                    ("frozen_on", "string", "the day the group was taken as of"),
                ],
                [[r.goal_name, r.members, r.control, str(r.frozen_on)] for r in results],
            ),
            **{f"{r.goal_name}/members": r.members for r in results},
        },
    }


def _forecast_table(night: GoalNight) -> dg.TableMetadataValue:
    return table(
        [
            ("day", "date", "day of the goal window"),
            ("predicted", "float", "expected achievers by the day's end"),
            ("low_90", "float", "90% interval, low"),
            ("high_90", "float", "90% interval, high"),
            ("actual", "int", "achievers so far (empty for days to come)"),
        ],
        [
            [
                row["day"],
                round(row["predicted_cumulative"], 1),
                round(row["predicted_low"], 1),
                round(row["predicted_high"], 1),
                row["actual_cumulative"],
            ]
            for row in night.forecast
        ],
    )


def _pts(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 2)


def _uplift_table(result: GoalDayResult) -> dg.TableMetadataValue:
    return table(
        [
            ("verdict", "string", "what the figures allow one to say"),
            ("bucket", "string", "bucket at creation, or all"),
            ("test", "string", "achievers / users"),
            ("control", "string", "achievers / users"),
            ("uplift_pts", "float", "test - control, points"),
            ("ci_low_pts", "float", "95% Newcombe interval, low"),
            ("ci_high_pts", "float", "95% Newcombe interval, high"),
            ("p", "float", "two-sided p-value"),
            ("srm_p", "float", "sample-ratio mismatch p-value"),
            ("mde_pts", "float", "minimum detectable effect"),
        ],
        [
            [
                u.result.verdict,
                u.bucket,
                f"{u.result.test_achievers}/{u.result.test_users}",
                f"{u.result.control_achievers}/{u.result.control_users}",
                _pts(u.result.abs_uplift),
                _pts(u.result.ci_low),
                _pts(u.result.ci_high),
                u.result.p_value,
                u.result.srm_p_value,
                _pts(u.result.mde),
            ]
            for u in result.uplift
        ],
    )
