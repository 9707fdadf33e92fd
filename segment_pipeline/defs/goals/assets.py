"""Goals: frozen target groups, goal models in MLflow, forecasts, nightly intent buckets and audiences."""

import dagster as dg

from segment_pipeline.defs.constants import GOALS_GROUP, KEY_PREFIX
from segment_pipeline.defs.failures import input_errors_as_failures
from segment_pipeline.defs.partitions import DAILY, run_days
from segment_pipeline.defs.previews import rows_table
from segment_pipeline.defs.resources import ConfigResource, MLflowResource, WarehouseResource
from segment_pipeline.defs.segments.assets import SEGMENT_MEMBERSHIPS
from segment_pipeline.goals import goal_day
from segment_pipeline.goals.store import ensure_tables

TARGET_GROUPS = dg.AssetKey([KEY_PREFIX, "target_groups"])
GOAL_STATUS = dg.AssetKey([KEY_PREFIX, "goal_status"])
GOAL_FORECASTS = dg.AssetKey([KEY_PREFIX, "goal_forecasts"])
INTENT_BUCKETS = dg.AssetKey([KEY_PREFIX, "intent_buckets"])
ENGAGEMENT_AUDIENCES = dg.AssetKey([KEY_PREFIX, "engagement_audiences"])
GOAL_UPLIFT = dg.AssetKey([KEY_PREFIX, "goal_uplift"])
GOAL_MODEL_QUALITY = dg.AssetKey([KEY_PREFIX, "goal_model_quality"])
QUALITY_NUMBERS = ("auc", "auc_ci_low", "auc_ci_high", "brier", "top_bucket_lift", "users", "achievers",
                   "predicted_achievers")


def _spec(key: dg.AssetKey, description: str, deps: list, kinds: set[str] | None = None) -> dg.AssetSpec:
    return dg.AssetSpec(key, deps=deps, description=description, group_name=GOALS_GROUP, kinds=kinds or {"duckdb"})


@dg.multi_asset(
    specs=[
        _spec(TARGET_GROUPS, "Each goal's target group: its segment's members as of the day before createdOn, "
              "frozen once, with the contract's public 5% control hash (group test or control).", [SEGMENT_MEMBERSHIPS]),
        _spec(GOAL_STATUS, "One row per goal per day: active, insufficient_history, ended or invalid, with a "
              "message and the MLflow run of the model that scores the goal.", [SEGMENT_MEMBERSHIPS],
              {"duckdb", "xgboost", "mlflow"}),
        _spec(GOAL_FORECASTS, "The forecast made at creation of how many of the target group achieve the goal "
              "by each day of its window (90% interval), with the actual count for the days that have passed.",
              [SEGMENT_MEMBERSHIPS]),
        _spec(INTENT_BUCKETS, "Every target-group user each night: a calibrated probability of achieving the goal "
              "in what is left of its window and a bucket (most, moderately, least likely), or achieved.",
              [SEGMENT_MEMBERSHIPS], {"duckdb", "xgboost"}),
        _spec(ENGAGEMENT_AUDIENCES, "Campaign audiences per goal and bucket: test-group users who have not "
              "achieved yet. Never a control user, so the control stays clean.", [SEGMENT_MEMBERSHIPS]),
        _spec(GOAL_UPLIFT, "Test vs control each night, overall and per bucket frozen at creation: rates, "
              "absolute and relative uplift with a 95% Newcombe interval, a two-sided p-value and a "
              "sample-ratio-mismatch test against the declared split.", [SEGMENT_MEMBERSHIPS]),
        _spec(GOAL_MODEL_QUALITY, "How good each night's predictions turned out: once a goal's window has "
              "ended, one row per scored night with realized AUC (95% Hanley-McNeil interval), Brier score, "
              "predicted vs actual achievers and the most-likely bucket's lift.", [SEGMENT_MEMBERSHIPS],
              {"duckdb", "mlflow"}),
    ],
    **DAILY,
    can_subset=False,
)
def goals(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    project_config: ConfigResource,
    mlflow: MLflowResource,
):
    config = project_config.load()
    rows: list[goal_day.GoalDayResult] = []
    with warehouse.connect() as con, input_errors_as_failures():
        ensure_tables(con)
        for day in run_days(context):
            for goal in config.goals.goals:
                result = goal_day.run_goal_day(
                    con, goal, config.segments, day, tracking_uri=mlflow.tracking_uri
                )
                if result is None:
                    continue
                rows.append(result)
                log = context.log.warning if result.status in ("invalid", "insufficient_history") else context.log.info
                log(f"{goal.name} as of {day}: {result.status}: {result.message}")
    last = run_days(context)[-1]
    latest = [r for r in rows if r.as_of == last]
    metadata = {
        "goals": dg.MetadataValue.md(rows_table(
            ["goal", "status", "message", "model run"], [[r.goal_name, r.status, r.message, r.run_id] for r in latest]
        )),
    }
    for result in latest:
        if result.forecast_table:
            metadata[f"forecast vs actual: {result.goal_name}"] = dg.MetadataValue.md(result.forecast_table)
    yield dg.MaterializeResult(asset_key=GOAL_STATUS, metadata=metadata)
    yield dg.MaterializeResult(asset_key=TARGET_GROUPS, metadata={
        "groups": dg.MetadataValue.md(rows_table(
            ["goal", "members", "control", "frozen on"],
            [[r.goal_name, r.members, r.control, str(r.frozen_on)] for r in latest],
        ))
    })
    yield dg.MaterializeResult(asset_key=GOAL_FORECASTS, metadata={"as_of": str(last)})
    yield dg.MaterializeResult(asset_key=INTENT_BUCKETS, metadata={
        "buckets": dg.MetadataValue.md(rows_table(
            ["goal", "most_likely", "moderately_likely", "least_likely", "achieved"],
            [[r.goal_name, *(r.buckets.get(b, 0) for b in ("most_likely", "moderately_likely", "least_likely", "achieved"))]
             for r in latest if r.buckets],
        ))
    })
    yield dg.MaterializeResult(asset_key=ENGAGEMENT_AUDIENCES, metadata={
        "audience_users": sum(r.audience for r in latest)
    })
    yield dg.MaterializeResult(asset_key=GOAL_MODEL_QUALITY, metadata=_quality_metadata(rows))
    yield dg.MaterializeResult(asset_key=GOAL_UPLIFT, metadata={
        f"uplift: {r.goal_name}": dg.MetadataValue.md(_uplift_table(r)) for r in latest if r.uplift
    })


def _quality_metadata(rows: list[goal_day.GoalDayResult]) -> dict:
    """Numbers (so Dagster plots them across runs): the latest matured night of each goal, and
    the mean over its matured nights."""
    metadata: dict = {"matured_prediction_dates": sum(len(r.quality) for r in rows)}
    for result in rows:
        if not result.quality:
            continue
        latest = max(result.quality, key=lambda q: q["prediction_date"])
        for name in QUALITY_NUMBERS:
            value = latest[name]
            if value is not None and value == value:  # NaN is not plottable
                metadata[f"{result.goal_name}: realized {name}"] = dg.MetadataValue.float(float(value))
        aucs = [q["auc"] for q in result.quality if q["auc"] == q["auc"]]
        if aucs:
            metadata[f"{result.goal_name}: mean realized auc"] = dg.MetadataValue.float(sum(aucs) / len(aucs))
    return metadata


def _pts(value: float | None) -> str:
    return "" if value is None else f"{value * 100:+.1f}"


def _uplift_table(result: goal_day.GoalDayResult) -> str:
    rows = [
        [u.bucket, f"{r.test_achievers}/{r.test_users}", f"{r.control_achievers}/{r.control_users}",
         _pts(r.abs_uplift), f"[{_pts(r.ci_low)}, {_pts(r.ci_high)}]",
         "" if r.p_value is None else f"{r.p_value:.3g}", "" if r.srm_p_value is None else f"{r.srm_p_value:.3g}",
         "" if r.mde is None else f"{r.mde * 100:.1f}", r.verdict]
        for u in result.uplift
        for r in [u.result]
    ]
    return rows_table(
        ["bucket (at creation)", "test", "control", "uplift pts", "95% CI", "p", "SRM p", "MDE pts", "verdict"], rows
    )

