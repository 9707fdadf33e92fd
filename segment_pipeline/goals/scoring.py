"""Nightly intent buckets: every target-group user scored for what is left of the window.

Users who have achieved the goal already are ``achieved`` (score 1.0); the others get
the champion model's calibrated probability of achieving in the days left (whichever
kind won: XGBoost or a baseline), and a bucket by rank among tonight's open users with
the shares (or precision cut-off) chosen on the held-out anchor at training time.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl

from segment_pipeline.config.goals import GoalDefinition
from segment_pipeline.goals import features
from segment_pipeline.goals.buckets import ACHIEVED, BucketThresholds, assign_buckets, value_tiers
from segment_pipeline.goals.control_group import TEST
from segment_pipeline.goals.outcomes import NightInputs
from segment_pipeline.storage.warehouse import transaction


@dataclass(frozen=True)
class ScoringOutcome:
    users: int
    buckets: dict[str, int]
    audience: int


def score_night(
    con: duckdb.DuckDBPyConnection, night: NightInputs, model, *, batch_users: int | None = None
) -> ScoringOutcome:
    """Replace the goal's ``intent_buckets`` rows of the night (``engagement_audiences`` is a view of them),
    scoring ``batch_users`` open users at a time (default ``SCORING_BATCH_USERS``)."""
    goal, as_of, group, stored = night.goal, night.as_of, night.group, night.stored
    batch = batch_users or SCORING_BATCH_USERS
    if stored is None:
        raise ValueError(f"goal {goal.name!r} has no stored model to score with")
    achieved = night.achieved.get_column("user_id")
    open_users = group.filter(~pl.col("user_id").is_in(achieved.implode()))
    value_model = _value_model(con, goal)
    parts, value_parts = [], []
    # In batches of users: one batch's feature matrix is in memory at a time, whatever the group's size.
    for start in range(0, max(open_users.height, 1), batch):
        users = open_users.slice(start, batch)
        scoring = features.build_scoring_set(
            con, goal, users.get_column("user_id"), as_of, spec=stored["spec"], horizon_days=night.days_left
        )
        scored_batch = users.join(scoring, on="user_id", how="left")
        parts.append(np.asarray(model.predict_proba(scored_batch.select(stored["spec"].feature_columns)), dtype=float))
        if value_model is not None:
            value_parts.append(np.asarray(value_model.predict_value(scored_batch, parts[-1]), dtype=np.float64))
    probabilities = np.concatenate(parts)
    predicted = np.concatenate(value_parts) if value_model is not None else None
    scored = open_users
    thresholds = BucketThresholds.from_dict(stored["thresholds"])
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
    rows = rows.join(_night_values(night, scored, predicted), on="user_id", how="left")
    rows = rows.select("goal_name", "as_of_date", "user_id", "group", "score", "bucket", *NIGHT_VALUE_COLUMNS)
    rows = rows.sort("user_id")
    with transaction(con):
        con.execute("DELETE FROM analytics.intent_buckets WHERE goal_name = ? AND as_of_date = ?", [goal.name, as_of])
        con.register("_night_scores", rows)
        columns = ", ".join(f'"{c}"' for c in rows.columns)
        con.execute(f"INSERT INTO analytics.intent_buckets ({columns}) SELECT {columns} FROM _night_scores")
        con.unregister("_night_scores")
    counts = dict(rows.group_by("bucket").len().iter_rows())
    # Campaign audiences (the engagement_audiences view): test group only, so the control stays untouched.
    audience = rows.filter((pl.col("group") == TEST) & (pl.col("bucket") != ACHIEVED)).height
    return ScoringOutcome(rows.height, counts, audience)


NIGHT_VALUE_COLUMNS = ("predicted_value", "value_tier")
_NO_VALUES = pl.DataFrame(schema={"user_id": pl.String, "window_day": pl.Int32, "value": pl.Float64})


SCORING_BATCH_USERS = 200_000


def _value_model(con: duckdb.DuckDBPyConnection, goal: GoalDefinition):
    """The value goal's stored value model, or None (not a value goal, or none stored)."""
    if not goal.value_property:
        return None
    from segment_pipeline.goals.value_setup import load_value_model

    loaded = load_value_model(con, goal.name)
    return None if loaded is None else loaded[0]


def _night_values(night: NightInputs, scored: pl.DataFrame, predicted: np.ndarray | None) -> pl.DataFrame:
    """``user_id, predicted_value, value_tier``: open users get the value model's expected
    value of what is left of the window and a tier by rank among them; users who achieved
    get the value they realized in the window so far (a fact, like their score 1.0) and no
    tier. Empty (so NULL columns) for goals without valueProperty."""
    empty = pl.DataFrame(schema={"user_id": pl.String, "predicted_value": pl.Float64, "value_tier": pl.String})
    if predicted is None:
        return empty

    open_rows = pl.DataFrame(
        {
            "user_id": scored.get_column("user_id"),
            "predicted_value": predicted,
            "value_tier": value_tiers(predicted, scored.get_column("user_id")),
        },
        schema=empty.schema,
    )
    realized = night.realized if night.realized is not None else _NO_VALUES
    done = (
        night.achieved.select("user_id")
        .join(
            realized.group_by("user_id").agg(pl.col("value").sum().alias("predicted_value")), on="user_id", how="left"
        )
        .with_columns(
            pl.col("predicted_value").fill_null(0.0).cast(pl.Float64), pl.lit(None, dtype=pl.String).alias("value_tier")
        )
    )
    return pl.concat([open_rows, done.select(empty.columns)])
