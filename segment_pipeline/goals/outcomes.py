"""Outcomes of a goal's events: who achieved when, how achievement spreads over a window,
and whether the history is rich enough to train a model (``insufficient_history``).

Achieving means one event matching the goal (``goals/matching.py``) inside a window
``[start 00:00, end + 1 00:00)``; only a user's first such event counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import polars as pl

from segment_pipeline.config.goals import GoalDefinition
from segment_pipeline.config.segments import ALL_USERS, SegmentConfig
from segment_pipeline.engines import scratch
from segment_pipeline.goals import feature_sql as sql
from segment_pipeline.goals import goal_rollups
from segment_pipeline.goals.feature_spec import ID_COLUMNS, TrainingSet
from segment_pipeline.goals.matching import SqlParams, event_types_condition, goal_event_condition, goal_value_sql
from segment_pipeline.ingest.state import first_event_day
from segment_pipeline.rules.compiler import read_profile_columns
from segment_pipeline.rules.dialect import DUCKDB
from segment_pipeline.storage.warehouse import midnight

MIN_OUTCOMES = 20  # achievers and non-achievers a model needs (full-length windows, all anchors)
MAX_ANCHOR_STEP_WEEKS = 4  # 91-day benchmark window: XGBoost AUC 0.776 with 6-week steps, 0.780 with 4
MIN_ANCHORS = 2  # the latest anchor is the hold-out; at least one more to train on

Users = str | Sequence[str] | pl.Series | pl.DataFrame


def achievers_by_day(con, goal: GoalDefinition, users: Users | None, start: date, end: date) -> pl.DataFrame:
    """Each user's first goal event in ``[start 00:00, end+1 00:00)`` (``users`` None: anyone):
    ``user_id, achieved_at, achieved_on, window_day`` (1 = ``start``), sorted by user."""
    params = SqlParams()
    types, is_goal = event_types_condition(goal.events, params), goal_event_condition(goal.events, params)
    lower = params.bind(midnight(start), "TIMESTAMP")
    upper = params.bind(midnight(end + timedelta(days=1)), "TIMESTAMP")
    with scratch.temp_tables(con):
        restricted = scratch.register_users(con, users)
        only = "AND user_id IN (SELECT user_id FROM _gf_users)" if restricted else ""
        if goal_rollups.available(con):
            # The goal's daily rollup: its first event of each day, so no scan of the window's events.
            frame = con.execute(
                f"""SELECT user_id, min(first_goal_ts) AS achieved_at FROM {goal_rollups.ensure(con, goal.events)}
                    WHERE day >= ? AND day <= ? {only} GROUP BY user_id ORDER BY user_id""",
                [start, end],
            ).pl()
        else:
            frame = con.execute(
                f"""SELECT user_id, min(ts) AS achieved_at FROM {sql.EVENTS}
                    WHERE {types} AND ts >= {lower} AND ts < {upper} AND {is_goal} {only}
                    GROUP BY user_id ORDER BY user_id""",
                params.values,
            ).pl()
    return frame.with_columns(pl.col("achieved_at").dt.date().alias("achieved_on")).with_columns(
        ((pl.col("achieved_on") - pl.lit(start)).dt.total_days() + 1).cast(pl.Int32).alias("window_day")
    )


def realized_by_day(
    con: duckdb.DuckDBPyConnection, goal: GoalDefinition, users: pl.Series, start: date, end: date
) -> pl.DataFrame:
    """``user_id, window_day, value``: value of the users' goal events per day of ``[start, end]``."""
    params = SqlParams()
    types, is_goal, value = goal_value_sql(goal, params)
    lower, upper = (
        params.bind(midnight(start), "TIMESTAMP"),
        params.bind(midnight(end + timedelta(days=1)), "TIMESTAMP"),
    )
    con.register("_value_users", pl.DataFrame({"user_id": users.cast(pl.String)}))
    try:
        return con.execute(
            f"""SELECT user_id, CAST(datediff('day', {params.bind(start, "DATE")}, CAST(ts AS DATE)) + 1 AS INTEGER) AS window_day,
                       coalesce({DUCKDB.stable_sum("v")}, 0) AS value
                FROM (SELECT user_id, ts, {value} AS v FROM {sql.EVENTS}
                      WHERE {types} AND ts >= {lower} AND ts < {upper} AND {is_goal}
                        AND user_id IN (SELECT user_id FROM _value_users))
                GROUP BY ALL ORDER BY user_id, window_day""",
            params.values,
        ).pl()
    finally:
        con.unregister("_value_users")


@dataclass(frozen=True)
class NightInputs:
    """What one goal's night reads once and hands to each of its steps."""

    goal: GoalDefinition  # as frozen
    as_of: date
    group: pl.DataFrame  # the frozen target group: user_id, group
    achieved: pl.DataFrame  # its achievers in the window up to the end of as_of: user_id, window_day
    realized: pl.DataFrame | None  # value goals: user_id, window_day, value of the group's goal events so far
    stored: dict | None  # the model the goal scores with (store.stored_model)
    days_left: int  # whole days of the window after as_of: the horizon of tonight's scores


def load_night(
    con, goal: GoalDefinition, group: pl.DataFrame, stored: dict | None, as_of: date, *, days_left: int | None = None
) -> NightInputs:
    """The target group's achievers (and, for a value goal, the value it realized) in the window
    up to the end of ``as_of``: read once, for the forecast, the uplift and the buckets."""
    last = min(as_of, goal.end_date)
    users = group.get_column("user_id")
    started = last >= goal.created_on
    realized = None
    if goal.value_property:
        realized = (
            realized_by_day(con, goal, users, goal.created_on, last)
            if started
            else pl.DataFrame(schema={"user_id": pl.String, "window_day": pl.Int32, "value": pl.Float64})
        )
    if started:
        achieved = achievers_by_day(con, goal, users, goal.created_on, last).select("user_id", "window_day")
    else:
        achieved = pl.DataFrame(schema={"user_id": pl.String, "window_day": pl.Int32})
    days_left = goal.days_left_after(as_of) if days_left is None else days_left
    return NightInputs(goal, as_of, group, achieved, realized, stored, days_left)


def historical_timing_curve(
    con, goal: GoalDefinition, anchors: Sequence[date], segments: SegmentConfig | None = None
) -> pl.DataFrame:
    """When achievers achieve: for windows ``[A, A + length)`` at past anchors, pooled, the
    share of achievers who had achieved by the end of day k (``day`` 1..length).

    With ``segments``, only the goal segment's members as of A-1 count (the population the
    model learns on); without, every user. No achievers at all: ``share`` is ``day/length``
    (an even pace), and ``achievers`` is 0.
    """
    length = goal.length_days
    days = pl.DataFrame({"day": range(1, length + 1)}, schema={"day": pl.Int32})
    anchors = sorted(set(anchors))
    counts = pl.DataFrame(schema={"day": pl.Int32, "n": pl.Int64})
    if anchors:
        counts = _timing_counts(con, goal, anchors, segments)
    curve = days.join(counts, on="day", how="left").with_columns(pl.col("n").fill_null(0)).sort("day")
    curve = curve.with_columns(pl.col("n").cum_sum().cast(pl.Int64).alias("achievers")).drop("n")
    total = int(curve.select(pl.col("achievers").max().fill_null(0)).item())
    share = pl.col("achievers") / total if total else pl.col("day") / length
    return curve.with_columns(share.cast(pl.Float64).alias("share"))


def _timing_counts(con, goal: GoalDefinition, anchors: list[date], segments: SegmentConfig | None) -> pl.DataFrame:
    params = SqlParams()
    types, is_goal = event_types_condition(goal.events, params), goal_event_condition(goal.events, params)
    first = params.bind(midnight(anchors[0]), "TIMESTAMP")
    last = params.bind(midnight(anchors[-1] + timedelta(days=goal.length_days)), "TIMESTAMP")
    with scratch.temp_tables(con):
        member_join = ""
        if segments is not None:
            population = None if goal.segment == ALL_USERS else segments.by_name[goal.segment]
            sql.load_population(con, anchors, goal.segment, population, read_profile_columns(con))
            member_join = (
                f"JOIN _gf_members m ON m.anchor = a.anchor AND m.user_id = e.user_id "
                f"AND m.segment_name = {params.bind(sql.POPULATION, 'VARCHAR')}"
            )
        con.execute("CREATE OR REPLACE TEMP TABLE _gf_anchors (anchor DATE, anchor_ts TIMESTAMP)")
        con.executemany("INSERT INTO _gf_anchors VALUES (?, ?)", [(a, midnight(a)) for a in anchors])
        return con.execute(
            f"""WITH e AS (SELECT user_id, ts FROM {sql.EVENTS} WHERE {types} AND ts >= {first} AND ts < {last} AND {is_goal}),
                firsts AS (
                    SELECT a.anchor, a.anchor_ts, e.user_id, min(e.ts) AS t
                    FROM e JOIN _gf_anchors a ON e.ts >= a.anchor_ts
                                             AND e.ts < a.anchor_ts + INTERVAL ({int(goal.length_days)}) DAY
                    {member_join}
                    GROUP BY ALL)
                SELECT CAST(floor({sql.days_between_sql("anchor_ts", "t")}) AS INTEGER) + 1 AS day, count(*) AS n
                FROM firsts GROUP BY 1""",
            params.values,
        ).pl()


def anchor_step(length_days: int) -> int:
    """Days between anchors: about half the goal length, in whole weeks, so every anchor
    falls on the same weekday and labels see the same weekly pattern; at most
    ``MAX_ANCHOR_STEP_WEEKS``, so a long window's anchors stay close to createdOn (recent
    behaviour) and need less history."""
    return 7 * max(1, min(MAX_ANCHOR_STEP_WEEKS, round(length_days / 14)))


def history_needed(lookback_days: int, length_days: int) -> int:
    """Days of events before createdOn that give ``MIN_ANCHORS`` anchors: a full lookback
    before the earliest, and a full window after the latest."""
    return lookback_days + length_days + (MIN_ANCHORS - 1) * anchor_step(length_days)


def history_problem(
    con, goal: GoalDefinition, training_set: TrainingSet | None, detail: str | None = None
) -> str | None:
    """The ``insufficient_history`` message, or None when the history can train a model.

    A model needs ``MIN_ANCHORS`` anchors (a time-based hold-out), and ``MIN_OUTCOMES``
    achievers and non-achievers over them (full-length windows). The message says what the
    goal has and needs (anchors, achievers, days of history) and which change would help:
    a shorter lookbackDays (applied while the goal has no model), or, as a new goal since
    the target group is frozen, a shorter window, another event or a later createdOn.
    ``detail`` is the trainer's own reason, when the counts looked sufficient."""
    first = first_event_day(con)
    need_days = history_needed(goal.lookback_days, goal.length_days)
    if first is None:
        return (
            f"goal '{goal.name}' cannot train a model yet: the event snapshot is empty; it needs {need_days} days "
            f"of events before createdOn {goal.created_on}"
        )
    days = max((goal.created_on - first).days, 0)
    anchors = len(training_set.anchors) if training_set is not None else 0
    stats = training_set.anchor_stats if training_set is not None else None
    population = int(stats.get_column("population").sum()) if stats is not None else 0
    achievers = int(stats.get_column("achievers").sum()) if stats is not None else 0
    enough = anchors >= MIN_ANCHORS and achievers >= MIN_OUTCOMES and population - achievers >= MIN_OUTCOMES
    if enough and detail is None:
        return None
    if training_set is not None and anchors and population == 0:
        return (
            f"goal '{goal.name}': segment '{goal.segment}' had no members on the eve of any of the "
            f"{anchors} anchors ({', '.join(map(str, training_set.anchors))}); there is nothing to learn from. "
            "Fix: target a segment that existed before createdOn"
        )
    have = (
        f"goal '{goal.name}' cannot train a model yet: it has {anchors} anchor{'s' if anchors != 1 else ''} "
        f"(needs {MIN_ANCHORS}), {achievers:,} achievers and {population - achievers:,} non-achievers of "
        f"{goal.describe_events()} in full-length windows (needs {MIN_OUTCOMES} of each), and {days} days of "
        f"events before createdOn {goal.created_on} (events start on {first}; needs {need_days} = lookbackDays "
        f"{goal.lookback_days} + the {goal.length_days}-day window + {anchor_step(goal.length_days)} days between "
        f"{MIN_ANCHORS} anchors)"
    )
    if detail:
        have += f"; {detail}"
    return f"{have}. What would help: {'; '.join(_fixes(con, goal, training_set, first, days, population))}"


def _fixes(
    con, goal: GoalDefinition, training_set: TrainingSet | None, first: date, days: int, population: int
) -> list[str]:
    fixes = []
    room = days - goal.length_days - (MIN_ANCHORS - 1) * anchor_step(goal.length_days)
    if days < history_needed(goal.lookback_days, goal.length_days) and room >= 1:
        fixes.append(f"lookbackDays {room} or less (applied now: the goal has no model yet)")
    new_goal = []
    window = next(
        (w for w in range(goal.length_days - 1, 0, -1) if history_needed(goal.lookback_days, w) <= days), None
    )
    if window and days < history_needed(goal.lookback_days, goal.length_days):
        new_goal.append(f"a window of {window} days or less")
    alternatives = (
        _event_types_with_history(con, goal, training_set, population)
        if training_set is not None and training_set.anchors and population
        else []
    )
    if alternatives:
        new_goal.append(
            "another event (with enough history: " + ", ".join(f"{n} ({k:,})" for n, k in alternatives) + ")"
        )
    else:
        new_goal.append("another event that this segment does more often")
    later = first + timedelta(days=history_needed(goal.lookback_days, goal.length_days))
    new_goal.append(f"a createdOn on or after {max(later, goal.created_on + timedelta(days=1))}")
    fixes.append("as a new goal (this one's target group is frozen): " + ", or ".join(new_goal))
    return fixes


def _event_types_with_history(
    con, goal: GoalDefinition, training_set: TrainingSet, population: int, limit: int = 5
) -> list[tuple[str, int]]:
    """Event types that at least ``MIN_OUTCOMES`` sampled users did, and as many did not, in the
    same full-length windows: what a goal on this segment could use instead."""
    pairs = training_set.frame.select(*ID_COLUMNS).unique()
    anchors = list(training_set.anchors)
    view = "_gf_history_pairs"
    con.register(view, pairs)
    try:
        rows = con.execute(
            f"""WITH p AS (SELECT anchor, user_id, CAST(anchor AS TIMESTAMP) AS anchor_ts FROM {view}),
                did AS (
                    SELECT DISTINCT p.anchor, p.user_id, e.event_name
                    FROM {sql.EVENTS} e JOIN p ON e.user_id = p.user_id AND e.ts >= p.anchor_ts
                                             AND e.ts < p.anchor_ts + INTERVAL ({int(goal.length_days)}) DAY
                    WHERE e.ts >= $first AND e.ts < $last)
                SELECT event_name, count(*) AS n FROM did GROUP BY 1
                HAVING count(*) >= $need AND $population - count(*) >= $need
                ORDER BY n DESC, event_name LIMIT {int(limit)}""",
            {
                "first": midnight(min(anchors)),
                "last": midnight(max(anchors) + timedelta(days=goal.length_days)),
                "need": MIN_OUTCOMES,
                "population": population,
            },
        ).fetchall()
    finally:
        con.unregister(view)
    return [(name, int(n)) for name, n in rows]
