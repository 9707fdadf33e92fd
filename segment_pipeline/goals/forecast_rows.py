"""The nightly ``goal_forecasts`` rows: the creation forecast, with actuals for the days that have passed."""

from __future__ import annotations

import duckdb

from segment_pipeline.goals.outcomes import NightInputs


def replace_forecast_rows(con: duckdb.DuckDBPyConnection, night: NightInputs) -> tuple | None:
    """Replace ``goal_forecasts`` of the night; returns the latest day with an actual
    (``predicted_cumulative, predicted_low, predicted_high, actual_cumulative``), None before the window opens."""
    goal, as_of = night.goal, night.as_of
    con.execute("DELETE FROM analytics.goal_forecasts WHERE goal_name = ? AND as_of_date = ?", [goal.name, as_of])
    con.register("_achieved", night.achieved)
    try:
        con.execute(
            """INSERT INTO analytics.goal_forecasts (goal_name, as_of_date, day, predicted_cumulative, predicted_low,
                                                     predicted_high, actual_cumulative)
               SELECT f.goal_name, ?, f.day, f.predicted_cumulative, f.predicted_low, f.predicted_high,
                      CASE WHEN f.day <= ? THEN (SELECT count(*) FROM _achieved a
                                                 WHERE a.window_day <= datediff('day', ?, f.day) + 1) END
               FROM pipeline_state.goal_creation_forecasts f WHERE f.goal_name = ? ORDER BY f.day""",
            [as_of, as_of, goal.created_on, goal.name],
        )
    finally:
        con.unregister("_achieved")
    if night.realized is not None:
        _value_columns(con, night)
    return con.execute(
        """SELECT predicted_cumulative, predicted_low, predicted_high, actual_cumulative
           FROM analytics.goal_forecasts WHERE goal_name = ? AND as_of_date = ? AND actual_cumulative IS NOT NULL
           ORDER BY day DESC LIMIT 1""",
        [goal.name, as_of],
    ).fetchone()


def _value_columns(con: duckdb.DuckDBPyConnection, night: NightInputs) -> None:
    """Tonight's value columns: the creation value forecast, and the target group's realized
    value by each day that has passed."""
    goal, as_of = night.goal, night.as_of
    con.register("_realized_value", night.realized)
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
