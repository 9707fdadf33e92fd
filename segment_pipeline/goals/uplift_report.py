"""Nightly test-vs-control uplift of a goal: overall and by the bucket each user had at creation.

Buckets are the ones frozen at creation (pre-treatment): tonight's buckets depend on
what the campaign already did, so comparing arms within them would be biased.
Achievement counts the window up to the end of the night's day (the whole window
once the goal has ended), so an ended goal's final figures stay in the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from segment_pipeline.goals.outcomes import NightInputs
from segment_pipeline.stats.uplift import TABLE_COLUMNS, UpliftResult, two_arm_uplift
from segment_pipeline.stats.value import VALUE_COLUMNS, ValueUplift, value_uplift
from segment_pipeline.storage.tables import column_ddl

ALL = "all"
GOAL_UPLIFT_DDL = column_ddl("goal_uplift")


@dataclass(frozen=True)
class BucketUplift:
    bucket: str
    result: UpliftResult
    value: ValueUplift | None = None  # value goals only


def replace_uplift(con: duckdb.DuckDBPyConnection, night: NightInputs) -> list[BucketUplift]:
    """Compute and store the goal's ``goal_uplift`` rows of the night."""
    con.execute(f"CREATE TABLE IF NOT EXISTS analytics.goal_uplift ({GOAL_UPLIFT_DDL})")
    for column in VALUE_COLUMNS:  # value goals' columns, added to warehouses made before them
        con.execute(f'ALTER TABLE analytics.goal_uplift ADD COLUMN IF NOT EXISTS "{column}" DOUBLE')
    goal, as_of = night.goal, night.as_of
    achieved = night.achieved.select("user_id")
    con.register("_uplift_achieved", achieved)
    counts = con.execute(
        """WITH users AS (
               SELECT t.user_id, t."group", coalesce(s.bucket, 'unscored') AS bucket,
                      a.user_id IS NOT NULL AS achieved
               FROM analytics.target_groups t
               LEFT JOIN pipeline_state.goal_creation_scores s USING (goal_name, user_id)
               LEFT JOIN _uplift_achieved a USING (user_id)
               WHERE t.goal_name = ?)
           SELECT bucket, "group", count(*), count(*) FILTER (WHERE achieved) FROM (
               SELECT bucket, "group", achieved FROM users
               UNION ALL SELECT ?, "group", achieved FROM users)
           GROUP BY ALL""",
        [goal.name, ALL],
    ).fetchall()
    con.unregister("_uplift_achieved")
    arms: dict[str, dict[str, tuple[int, int]]] = {}
    for bucket, arm, users, achievers in counts:
        arms.setdefault(bucket, {})[arm] = (users, achievers)
    values = _value_uplifts(con, night)
    results = []
    for bucket in sorted(arms, key=lambda b: (b != ALL, b)):
        test_users, test_achievers = arms[bucket].get("test", (0, 0))
        control_users, control_achievers = arms[bucket].get("control", (0, 0))
        result = two_arm_uplift(
            test_users,
            test_achievers,
            control_users,
            control_achievers,
            control_percent=goal.control_group_percent,
            objective=goal.objective,
        )
        results.append(BucketUplift(bucket, result, values.get(bucket)))
    con.execute("DELETE FROM analytics.goal_uplift WHERE goal_name = ? AND as_of_date = ?", [goal.name, as_of])
    columns = ("goal_name", "as_of_date", "bucket", *TABLE_COLUMNS, *VALUE_COLUMNS)
    con.executemany(
        f"INSERT INTO analytics.goal_uplift ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
        [
            [
                goal.name,
                as_of,
                r.bucket,
                *r.result.table_row().values(),
                *(r.value.table_row().values() if r.value else [None] * len(VALUE_COLUMNS)),
            ]
            for r in results
        ],
    )
    return results


def _value_uplifts(con: duckdb.DuckDBPyConnection, night: NightInputs) -> dict[str, ValueUplift]:
    """Per bucket (and ``all``): each arm's value per user over the window up to ``as_of``, Welch interval."""
    goal, realized = night.goal, night.realized
    if realized is None or night.as_of < goal.created_on:
        return {}
    per_user = realized.group_by("user_id").agg(pl.col("value").sum())
    con.register("_uplift_value", per_user)
    try:
        frame = con.execute(
            """SELECT coalesce(s.bucket, 'unscored') AS bucket, t."group", coalesce(v.value, 0) AS value
               FROM analytics.target_groups t
               LEFT JOIN pipeline_state.goal_creation_scores s USING (goal_name, user_id)
               LEFT JOIN _uplift_value v USING (user_id)
               WHERE t.goal_name = ?""",
            [goal.name],
        ).pl()
    finally:
        con.unregister("_uplift_value")
    out = {}
    for bucket, part in [(ALL, frame), *frame.partition_by("bucket", as_dict=True).items()]:
        name = bucket if isinstance(bucket, str) else bucket[0]
        test = part.filter(pl.col("group") == "test")["value"].to_numpy()
        control = part.filter(pl.col("group") == "control")["value"].to_numpy()
        out[name] = value_uplift(test, control)
    return out
