"""Nightly intent buckets: every target-group user scored for what is left of the window.

Users who have achieved the goal already are ``achieved`` (score 1.0); the others get
the champion model's calibrated probability of achieving in the days left (whichever
kind won: XGBoost or a baseline), and a bucket by rank among tonight's open users with
the shares (or precision cut-off) chosen on the held-out anchor at training time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import polars as pl

from segment_pipeline.config.goals import GoalDefinition
from segment_pipeline.goals import features
from segment_pipeline.goals.buckets import ACHIEVED, BucketThresholds, assign_buckets
from segment_pipeline.goals.control_group import TEST
from segment_pipeline.goals.store import stored_model
from segment_pipeline.goals.target_groups import target_group
from segment_pipeline.storage.warehouse import scalar, transaction


@dataclass(frozen=True)
class ScoringOutcome:
    users: int
    buckets: dict[str, int]
    audience: int


def achieved_by(con: duckdb.DuckDBPyConnection, goal: GoalDefinition, users: pl.Series, as_of: date) -> pl.DataFrame:
    """Users with a goal event in the window up to the end of ``as_of``."""
    last = min(as_of, goal.end_date)
    if last < goal.created_on:
        return pl.DataFrame(schema={"user_id": pl.String, "window_day": pl.Int32})
    return features.achievers_by_day(con, goal, users, goal.created_on, last).select("user_id", "window_day")


@dataclass(frozen=True)
class NightInputs:
    """What one goal's night reads once and hands to each of its steps."""

    goal: GoalDefinition  # as frozen
    as_of: date
    group: pl.DataFrame  # the frozen target group: user_id, group
    achieved: pl.DataFrame  # its achievers in the window up to the end of as_of: user_id, window_day
    stored: dict | None  # the model the goal scores with (store.stored_model)


def load_night(con: duckdb.DuckDBPyConnection, goal: GoalDefinition, as_of: date) -> NightInputs:
    group = target_group(con, goal.name)
    achieved = achieved_by(con, goal, group.get_column("user_id"), as_of)
    return NightInputs(goal, as_of, group, achieved, stored_model(con, goal.name))


def score_night(
    con: duckdb.DuckDBPyConnection, night: NightInputs, model, *, batch_users: int | None = None
) -> ScoringOutcome:
    """Replace the goal's ``intent_buckets`` and ``engagement_audiences`` rows of the night,
    scoring ``batch_users`` open users at a time (default ``SCORING_BATCH_USERS``)."""
    goal, as_of, group, stored = night.goal, night.as_of, night.group, night.stored
    batch = batch_users or SCORING_BATCH_USERS
    if stored is None:
        raise ValueError(f"goal {goal.name!r} has no stored model to score with")
    thresholds = BucketThresholds.from_dict(stored["thresholds"])
    achieved = night.achieved.get_column("user_id")
    open_users = group.filter(~pl.col("user_id").is_in(achieved.implode()))
    value_model = _value_model(con, goal)
    parts, value_parts = [], []
    # In batches of users: one batch's feature matrix is in memory at a time, whatever the group's size.
    for start in range(0, max(open_users.height, 1), batch):
        users = open_users.slice(start, batch)
        scoring = features.build_scoring_set(con, goal, users.get_column("user_id"), as_of, spec=stored["spec"])
        scored_batch = users.join(scoring, on="user_id", how="left")
        parts.append(np.asarray(model.predict_proba(scored_batch.select(stored["spec"].feature_columns)), dtype=float))
        if value_model is not None:
            value_parts.append(np.asarray(value_model.predict_value(scored_batch, parts[-1]), dtype=np.float64))
    probabilities = np.concatenate(parts)
    predicted = np.concatenate(value_parts) if value_model is not None else None
    scored = open_users
    rows = pl.concat(
        [
            scored.select("user_id", "group").with_columns(
                pl.Series("score", probabilities, dtype=pl.Float64),
                pl.Series(
                    "bucket", assign_buckets(probabilities, thresholds, scored.get_column("user_id")), dtype=pl.String
                ),
            ),
            group.filter(pl.col("user_id").is_in(achieved.implode())).with_columns(
                pl.lit(1.0).alias("score"), pl.lit(ACHIEVED).alias("bucket")
            ),
        ]
    ).with_columns(pl.lit(goal.name).alias("goal_name"), pl.lit(as_of).alias("as_of_date"))
    rows = rows.join(_night_values(con, goal, as_of, scored, predicted, achieved), on="user_id", how="left")
    rows = rows.select("goal_name", "as_of_date", "user_id", "group", "score", "bucket", *NIGHT_VALUE_COLUMNS)
    rows = rows.sort("user_id")
    with transaction(con):
        con.execute("DELETE FROM analytics.intent_buckets WHERE goal_name = ? AND as_of_date = ?", [goal.name, as_of])
        con.execute(
            "DELETE FROM analytics.engagement_audiences WHERE goal_name = ? AND as_of_date = ?", [goal.name, as_of]
        )
        con.register("_night_scores", rows)
        columns = ", ".join(f'"{c}"' for c in rows.columns)
        con.execute(f"INSERT INTO analytics.intent_buckets ({columns}) SELECT {columns} FROM _night_scores")
        con.unregister("_night_scores")
        # Campaign audiences: test group only, so the control stays untouched.
        con.execute(
            """INSERT INTO analytics.engagement_audiences
               SELECT goal_name, as_of_date, bucket, user_id FROM analytics.intent_buckets
               WHERE goal_name = ? AND as_of_date = ? AND "group" = ? AND bucket <> ?
               ORDER BY bucket, user_id""",
            [goal.name, as_of, TEST, ACHIEVED],
        )
    counts = dict(rows.group_by("bucket").len().iter_rows())
    audience = scalar(
        con,
        "SELECT count(*) FROM analytics.engagement_audiences WHERE goal_name = ? AND as_of_date = ?",
        [goal.name, as_of],
    )
    return ScoringOutcome(rows.height, counts, audience)


NIGHT_VALUE_COLUMNS = ("predicted_value", "value_tier")


SCORING_BATCH_USERS = 200_000


def _value_model(con: duckdb.DuckDBPyConnection, goal: GoalDefinition):
    """The value goal's stored value model, or None (not a value goal, or none stored)."""
    if not goal.value_property:
        return None
    from segment_pipeline.goals.value_setup import load_value_model

    loaded = load_value_model(con, goal.name)
    return None if loaded is None else loaded[0]


def _night_values(
    con: duckdb.DuckDBPyConnection,
    goal: GoalDefinition,
    as_of: date,
    scored: pl.DataFrame,
    predicted: np.ndarray | None,
    achieved: pl.Series,
) -> pl.DataFrame:
    """``user_id, predicted_value, value_tier``: open users get the value model's expected
    value of what is left of the window and a tier by rank among them; users who achieved
    get the value they realized in the window so far (a fact, like their score 1.0) and no
    tier. Empty (so NULL columns) for goals without valueProperty."""
    empty = pl.DataFrame(schema={"user_id": pl.String, "predicted_value": pl.Float64, "value_tier": pl.String})
    if predicted is None:
        return empty
    from segment_pipeline.goals.value_model import realized_by_day, value_tiers

    open_rows = pl.DataFrame(
        {
            "user_id": scored.get_column("user_id"),
            "predicted_value": predicted,
            "value_tier": value_tiers(predicted, scored.get_column("user_id")),
        },
        schema=empty.schema,
    )
    realized = realized_by_day(con, goal, achieved, goal.created_on, min(as_of, goal.end_date))
    done = (
        pl.DataFrame({"user_id": achieved})
        .join(
            realized.group_by("user_id").agg(pl.col("value").sum().alias("predicted_value")), on="user_id", how="left"
        )
        .with_columns(
            pl.col("predicted_value").fill_null(0.0).cast(pl.Float64), pl.lit(None, dtype=pl.String).alias("value_tier")
        )
    )
    return pl.concat([open_rows, done.select(empty.columns)])


def forecast_rows(con: duckdb.DuckDBPyConnection, night: NightInputs) -> int:
    """Replace ``goal_forecasts`` of the night: the creation forecast, with actuals for days that have passed."""
    goal, as_of, group = night.goal, night.as_of, night.group
    con.execute("DELETE FROM analytics.goal_forecasts WHERE goal_name = ? AND as_of_date = ?", [goal.name, as_of])
    con.register("_achieved", night.achieved)
    con.execute(
        """INSERT INTO analytics.goal_forecasts (goal_name, as_of_date, day, predicted_cumulative, predicted_low,
                                                 predicted_high, actual_cumulative)
           SELECT f.goal_name, ?, f.day, f.predicted_cumulative, f.predicted_low, f.predicted_high,
                  CASE WHEN f.day <= ? THEN (SELECT count(*) FROM _achieved a
                                             WHERE a.window_day <= datediff('day', ?, f.day) + 1) END
           FROM pipeline_state.goal_creation_forecasts f WHERE f.goal_name = ? ORDER BY f.day""",
        [as_of, as_of, goal.created_on, goal.name],
    )
    con.unregister("_achieved")
    if goal.value_property:
        _value_forecast_rows(con, goal, as_of, group.get_column("user_id"))
    return scalar(
        con, "SELECT count(*) FROM analytics.goal_forecasts WHERE goal_name = ? AND as_of_date = ?", [goal.name, as_of]
    )


def _value_forecast_rows(con: duckdb.DuckDBPyConnection, goal: GoalDefinition, as_of: date, users: pl.Series) -> None:
    """Fill tonight's value columns of ``goal_forecasts``: the creation value forecast, and
    the target group's realized value by each day that has passed."""
    from segment_pipeline.goals.value_model import realized_by_day

    last = min(as_of, goal.end_date)
    realized = (
        realized_by_day(con, goal, users, goal.created_on, last)
        if last >= goal.created_on
        else pl.DataFrame(schema={"user_id": pl.String, "window_day": pl.Int32, "value": pl.Float64})
    )
    con.register("_realized_value", realized)
    try:
        con.execute(
            """UPDATE analytics.goal_forecasts g SET
                   predicted_value_cumulative = v.predicted_value_cumulative,
                   predicted_value_low = v.predicted_value_low, predicted_value_high = v.predicted_value_high,
                   actual_value_cumulative = CASE WHEN g.day <= ? THEN
                       (SELECT coalesce(sum(r.value ORDER BY r.value), 0) FROM _realized_value r
                        WHERE r.window_day <= datediff('day', ?, g.day) + 1) END
               FROM pipeline_state.goal_creation_value_forecasts v
               WHERE v.goal_name = g.goal_name AND v.day = g.day AND g.goal_name = ? AND g.as_of_date = ?""",
            [as_of, goal.created_on, goal.name, as_of],
        )
    finally:
        con.unregister("_realized_value")
