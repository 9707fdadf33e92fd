"""Goals: frozen target groups, goal models in MLflow, forecasts, nightly intent buckets and audiences."""

import dagster as dg

from segment_pipeline.defs.constants import GOALS_GROUP, KEY_PREFIX
from segment_pipeline.defs.engines.resources import EngineResource
from segment_pipeline.defs.failures import input_errors_as_failures
from segment_pipeline.defs.goals.metadata import goal_asset_metadata
from segment_pipeline.defs.partitions import daily, run_days
from segment_pipeline.defs.resources import ConfigResource, MLflowResource, WarehouseResource
from segment_pipeline.defs.segments.assets import SEGMENT_MEMBERSHIPS
from segment_pipeline.engines import using
from segment_pipeline.goals import goal_day
from segment_pipeline.goals.model_quality import QUALITY_NUMBERS

TARGET_GROUPS = dg.AssetKey([KEY_PREFIX, "target_groups"])
GOAL_STATUS = dg.AssetKey([KEY_PREFIX, "goal_status"])
GOAL_FORECASTS = dg.AssetKey([KEY_PREFIX, "goal_forecasts"])
INTENT_BUCKETS = dg.AssetKey([KEY_PREFIX, "intent_buckets"])
ENGAGEMENT_AUDIENCES = dg.AssetKey([KEY_PREFIX, "engagement_audiences"])
GOAL_UPLIFT = dg.AssetKey([KEY_PREFIX, "goal_uplift"])
GOAL_MODEL_QUALITY = dg.AssetKey([KEY_PREFIX, "goal_model_quality"])


def _spec(key: dg.AssetKey, description: str, deps: list, kinds: set[str] | None = None) -> dg.AssetSpec:
    return dg.AssetSpec(key, deps=deps, description=description, group_name=GOALS_GROUP, kinds=kinds or {"duckdb"})


GOAL_SPECS = [
    _spec(
        TARGET_GROUPS,
        "Each goal's target group: its segment's members as of the day before createdOn, "
        "frozen once, with the contract's public 5% control hash (group test or control).",
        [SEGMENT_MEMBERSHIPS],
    ),
    _spec(
        GOAL_STATUS,
        "One row per goal per day: active, insufficient_history, ended or invalid, with a "
        "message and the MLflow run of the model that scores the goal.",
        [SEGMENT_MEMBERSHIPS],
        {"duckdb", "xgboost", "mlflow"},
    ),
    _spec(
        GOAL_FORECASTS,
        "The forecast made at creation of how many of the target group achieve the goal "
        "by each day of its window (90% interval), with the actual count for the days that have passed.",
        [SEGMENT_MEMBERSHIPS],
    ),
    _spec(
        INTENT_BUCKETS,
        "Every target-group user each night: a calibrated probability of achieving the goal "
        "in what is left of its window and a bucket (most, moderately, least likely), or achieved.",
        [SEGMENT_MEMBERSHIPS],
        {"duckdb", "xgboost"},
    ),
    _spec(
        ENGAGEMENT_AUDIENCES,
        "Campaign audiences per goal and bucket: test-group users who have not "
        "achieved yet. Never a control user, so the control stays clean.",
        [SEGMENT_MEMBERSHIPS],
    ),
    _spec(
        GOAL_UPLIFT,
        "Test vs control each night, overall and per bucket frozen at creation: rates, "
        "absolute and relative uplift with a 95% Newcombe interval, a two-sided p-value and a "
        "sample-ratio-mismatch test against the declared split.",
        [SEGMENT_MEMBERSHIPS],
    ),
    _spec(
        GOAL_MODEL_QUALITY,
        "How good each night's predictions turned out: once a goal's window has "
        "ended, one row per scored night with realized AUC (95% Hanley-McNeil interval), Brier score, "
        "predicted vs actual achievers and the most-likely bucket's lift.",
        [SEGMENT_MEMBERSHIPS],
        {"duckdb", "mlflow"},
    ),
]


def goals(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    project_config: ConfigResource,
    mlflow: MLflowResource,
    engine: EngineResource,
):
    config = project_config.load()

    def report(result: goal_day.GoalDayResult) -> None:
        log = context.log.warning if result.status in (goal_day.INVALID, goal_day.INSUFFICIENT) else context.log.info
        log(f"{result.goal_name} as of {result.as_of}: {result.status}: {result.message}")

    # Goal features (training and nightly scoring sets) and model boosting run on the engine;
    # target groups, status, buckets and the model registry stay in DuckDB and MLflow.
    with (
        warehouse.connect() as con,
        engine.open(warehouse.path) as compute,
        using(compute),
        input_errors_as_failures(),
    ):
        rows = goal_day.run_goal_nights(
            con,
            config.goals.goals,
            config.segments,
            run_days(context),
            tracking_uri=mlflow.tracking_uri,
            report=report,
        )
    last = run_days(context)[-1]
    latest = [r for r in rows if r.as_of == last]
    with warehouse.connect(read_only=True) as con:
        shown = goal_asset_metadata(con, latest, mlflow.tracking_uri, mlflow.ui_url)
    yield dg.MaterializeResult(asset_key=GOAL_STATUS, metadata=shown["goal_status"])
    yield dg.MaterializeResult(asset_key=TARGET_GROUPS, metadata=shown["target_groups"])
    yield dg.MaterializeResult(asset_key=GOAL_FORECASTS, metadata=shown["goal_forecasts"])
    yield dg.MaterializeResult(asset_key=INTENT_BUCKETS, metadata=shown["intent_buckets"])
    yield dg.MaterializeResult(
        asset_key=ENGAGEMENT_AUDIENCES,
        metadata={
            "audience_users": sum(r.audience for r in latest),
            **{f"{r.goal_name}/audience": r.audience for r in latest},
        },
    )
    yield dg.MaterializeResult(asset_key=GOAL_MODEL_QUALITY, metadata=_quality_metadata(rows))
    yield dg.MaterializeResult(asset_key=GOAL_UPLIFT, metadata=shown["goal_uplift"])


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


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[dg.multi_asset(specs=GOAL_SPECS, can_subset=False, **daily())(goals)])
