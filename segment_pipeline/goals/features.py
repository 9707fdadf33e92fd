"""Point-in-time training and scoring sets for a goal's model.

A training sample is a user of the goal's segment at an *anchor* day A in the past:
its features see only events before A 00:00 (and segment flags as of A-1), its label
says whether a goal event happened in ``[A, A + horizon_days)``. Anchors are chosen so
that every label window ends by createdOn: the model trains the day before the goal
starts, on outcomes already complete.

The nightly score is the probability of achieving the goal in what is *left* of the
window, which shrinks day by day. So ``horizon_days`` is a feature: each anchor yields
samples at the full goal length and at 3/4, 1/2 and 1/4 of it, labelled over
``[A, A + horizon_days)``; scoring as of day D uses the anchor D+1 and the days left.

Features (``FeatureSpec`` fixes their columns at training; scoring reuses it):
``horizon_days``; ``days_since_last_event``, ``events_<L>d``, ``active_days_<L>d``,
``mean_gap_days``/``median_gap_days`` (between active days), ``tenure_days`` (since the
first event ever); ``goal_events_<w>d`` and ``days_since_goal_event``;
``events_<w>d:<type>`` for the commonest event types; ``segment:<name>`` (0/1) for
every past segment; ``profile:<column>`` (numbers, booleans as 0/1),
``profile:<column>_days`` (dates, days before the anchor, empty when not yet reached)
and ``profile:<column>=<value>`` (0/1, the commonest values of short text columns).
Windows ``w`` are 7, 30 and the lookback ``L`` (those shorter than it). Times with no
event in the lookback are censored at ``L`` days; counts default to 0. Only profile
columns can be empty (no profile): xgboost treats them as missing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, timedelta

import polars as pl

from segment_pipeline.config.goals import GoalDefinition
from segment_pipeline.config.segments import ALL_USERS, SegmentConfig
from segment_pipeline.goals import feature_sql as sql
from segment_pipeline.goals.feature_spec import (
    HORIZON,
    ID_COLUMNS,
    LABEL,
    FeatureSpec,
    TrainingSet,
    make_spec,
    profile_kind,
)
from segment_pipeline.goals.matching import SqlParams, event_types_condition, goal_event_condition
from segment_pipeline.rules.compiler import read_profile_columns

HORIZON_FRACTIONS = (1.0, 0.75, 0.5, 0.25)
MIN_OUTCOMES = 20  # achievers and non-achievers a model needs (full-length windows, all anchors)
MAX_EVENT_TYPES = 30
MAX_CATEGORIES = 20  # one-hot columns per text profile column
MAX_CATEGORY_VALUES = 50  # more distinct values than this: not a category (an id, free text)
MAX_ROWS = 2_000_000  # above this, each (anchor, user) gets one horizon instead of all

Users = str | Sequence[str] | pl.Series | pl.DataFrame


def first_event_day(con) -> date | None:
    """The day of the snapshot's first event: where history starts."""
    row = con.execute(f"SELECT CAST(min(ts) AS DATE) FROM {sql.EVENTS}").fetchone()
    return row[0] if row else None


def anchor_step(length_days: int) -> int:
    """Days between anchors: about half the goal length, in whole weeks, so every anchor
    falls on the same weekday and labels see the same weekly pattern."""
    return 7 * max(1, round(length_days / 14))


def choose_anchors(
    history_start: date,
    created_on: date,
    length_days: int,
    lookback_days: int,
    max_anchors: int = 6,
    *,
    history_end: date | None = None,
) -> list[date]:
    """Anchors A with a full lookback (``A - lookback_days >= history_start``) and a label
    window complete before the goal (``A + length_days <= created_on``), from the latest
    back by ``anchor_step``; ascending. Empty when history is too short.

    ``history_end`` (the last day loaded) also keeps label windows inside the data, for a
    training run before createdOn's eve.
    """
    horizon_end = created_on if history_end is None else min(created_on, history_end + timedelta(days=1))
    latest = horizon_end - timedelta(days=length_days)
    earliest = history_start + timedelta(days=lookback_days)
    step = timedelta(days=anchor_step(length_days))
    return sorted(a for a in (latest - k * step for k in range(max_anchors)) if a >= earliest)


def default_horizons(length_days: int) -> list[int]:
    """The goal length and 3/4, 1/2, 1/4 of it (at least a day), longest first, no repeats."""
    return sorted({max(1, int(length_days * f + 0.5)) for f in HORIZON_FRACTIONS}, reverse=True)


def build_training_set(
    con,
    goal: GoalDefinition,
    segments: SegmentConfig,
    anchors: Sequence[date],
    *,
    horizons: Sequence[int] | None = None,
    spec: FeatureSpec | None = None,
    exclude_profile_columns: Sequence[str] = (),
    max_rows: int = MAX_ROWS,
    max_event_types: int = MAX_EVENT_TYPES,
) -> TrainingSet:
    """Samples of the goal segment's members at each anchor (members as of A-1).

    ``spec`` fixes the columns (e.g. to rebuild a set comparable with an earlier one);
    by default it is derived from the data before the anchors. Every (anchor, user) gets
    a row per horizon, unless that makes more than ``max_rows`` rows: then it gets one
    horizon, chosen by a stable hash of the pair (``metadata["horizon_sampling"]``).
    """
    anchors = sorted(set(anchors))
    length = goal.length_days
    late = [a for a in anchors if a + timedelta(days=length) > goal.created_on]
    if late:
        raise ValueError(
            f"goal '{goal.name}': the label window of anchor(s) {', '.join(map(str, late))} "
            f"would end after createdOn {goal.created_on}; anchors must be <= "
            f"{goal.created_on - timedelta(days=length)}"
        )
    horizons = sorted(set(horizons or default_horizons(length)), reverse=True)
    if horizons[0] > length or horizons[-1] < 1:
        raise ValueError(f"goal '{goal.name}': horizons must be within 1..{length} days, got {horizons}")
    timings: dict[str, float] = {}
    clock_start = time.perf_counter()
    profile_columns = read_profile_columns(con)
    flag_segments = spec.segment_models if spec else segments.past
    if goal.segment != ALL_USERS and goal.segment not in segments.by_name:
        raise ValueError(f"goal '{goal.name}': segment '{goal.segment}' is not defined")
    population = None if goal.segment == ALL_USERS else segments.by_name[goal.segment]
    goal_events = spec.goal_event_models if spec else goal.events
    lookback = spec.lookback_days if spec else goal.lookback_days
    with sql.temp_tables(con):
        sql.load_population(con, anchors, goal.segment, population, profile_columns)
        rows = sql.make_population(
            con,
            "SELECT anchor, user_id FROM _gf_members WHERE segment_name = $pop",
            lookback,
            len(horizons),
            {"pop": sql.POPULATION},
        )
        sql.load_flags(con, anchors, flag_segments, profile_columns)
        timings["population_s"] = _lap(clock_start)
        if anchors:
            sql.load_daily(con, goal_events, anchors, lookback)
            sql.load_labels(con, goal.events, anchors, length)
        else:
            sql.empty_daily(con)
        timings["events_s"] = _lap(clock_start) - timings["population_s"]
        if spec is None:
            spec = _derive_spec(con, goal, segments, profile_columns, exclude_profile_columns, max_event_types)
        frame = _features(con, spec, profile_columns, rows, with_labels=True)
    pairs = frame.height
    sampling = "all" if pairs * len(horizons) <= max_rows else "one per anchor and user"
    if sampling == "all":
        frame = frame.join(pl.DataFrame({HORIZON: horizons}, schema={HORIZON: pl.Int32}), how="cross")
    else:
        frame = frame.with_columns(
            pl.col("slot").replace_strict(dict(enumerate(horizons)), return_dtype=pl.Int32).alias(HORIZON)
        )
    frame = frame.with_columns(
        (pl.col("achieved_day") < pl.col(HORIZON)).fill_null(False).cast(pl.Int8).alias(LABEL),
        pl.col(HORIZON).cast(pl.Float32),
    )
    stats = _anchor_stats(frame, anchors, length)
    frame = frame.select(*ID_COLUMNS, LABEL, *spec.feature_columns)
    timings["total_s"] = _lap(clock_start)
    metadata = {
        "goal_name": goal.name,
        "anchors": [a.isoformat() for a in anchors],
        "horizons": horizons,
        "horizon_sampling": sampling,
        "pairs": pairs,
        "rows": frame.height,
        "positives": int(frame.get_column(LABEL).sum() or 0),
        "features": len(spec.feature_columns),
        "timings": timings,
    }
    return TrainingSet(frame, list(spec.feature_columns), spec, anchors, horizons, stats, metadata)


def build_scoring_set(con, goal: GoalDefinition, users: Users, as_of: date, *, spec: FeatureSpec) -> pl.DataFrame:
    """Features of ``users`` as of ``as_of`` with the training ``spec``'s columns: anchor
    ``as_of + 1`` (events before it), ``horizon_days`` = days of the window left after ``as_of``.

    Columns: ``anchor``, ``user_id`` and ``spec.feature_columns``; one row per user, sorted.
    """
    horizon = goal.days_left_after(as_of)
    if horizon < 1:
        raise ValueError(f"goal '{goal.name}' ended on {goal.end_date}; nothing is left of its window after {as_of}")
    anchor = as_of + timedelta(days=1)
    profile_columns = read_profile_columns(con)
    with sql.temp_tables(con):
        sql.register_users(con, users)
        rows = sql.make_population(
            con,
            "SELECT CAST($anchor AS DATE) AS anchor, user_id FROM _gf_users",
            spec.lookback_days,
            1,
            {"anchor": anchor},
        )
        sql.load_flags(con, [anchor], spec.segment_models, profile_columns)
        sql.load_daily(con, spec.goal_event_models, [anchor], spec.lookback_days)
        frame = _features(con, spec, profile_columns, rows, with_labels=False)
    frame = frame.with_columns(pl.lit(float(horizon), dtype=pl.Float32).alias(HORIZON))
    return frame.select(*ID_COLUMNS, *spec.feature_columns)


def _lap(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def _derive_spec(con, goal, segments, profile_columns, exclude, max_event_types) -> FeatureSpec:
    profile = []
    for column, column_type in (profile_columns or {}).items():
        kind = profile_kind(column_type)
        if column in exclude or kind is None:
            continue
        categories: list[str] = []
        if kind == "category":
            categories = sql.profile_categories(con, column, MAX_CATEGORY_VALUES, MAX_CATEGORIES) or []
            if not categories:
                continue
        profile.append((column, kind, categories))
    return make_spec(
        goal.name, goal.events, goal.lookback_days, sql.top_event_types(con, max_event_types), segments.past, profile
    )


def _features(
    con, spec: FeatureSpec, profile_columns: dict[str, str] | None, rows: int, *, with_labels: bool
) -> pl.DataFrame:
    """The fixed features (wide) beside the open-ended ones (long, pivoted by position);
    one row per ``_gf_pop`` row, in its order."""
    wide = sql.wide_features(con, spec, set(profile_columns or {}), with_labels)
    return pl.concat([wide, sql.long_features(con, spec, rows)], how="horizontal")


def _anchor_stats(frame: pl.DataFrame, anchors: list[date], length: int) -> pl.DataFrame:
    """Population and full-length achievers per anchor (anchors without members count 0)."""
    pairs = (
        frame.unique(subset=list(ID_COLUMNS))
        .group_by("anchor")
        .agg(
            pl.len().alias("population"),
            (pl.col("achieved_day") < length).fill_null(False).sum().alias("achievers"),
        )
    )
    base = pl.DataFrame({"anchor": anchors}, schema={"anchor": pl.Date})
    return (
        base.join(pairs, on="anchor", how="left")
        .with_columns(pl.col("population").fill_null(0).cast(pl.Int64), pl.col("achievers").fill_null(0).cast(pl.Int64))
        .sort("anchor")
    )


def achievers_by_day(con, goal: GoalDefinition, users: Users | None, start: date, end: date) -> pl.DataFrame:
    """Each user's first goal event in ``[start 00:00, end+1 00:00)`` (``users`` None: anyone):
    ``user_id, achieved_at, achieved_on, window_day`` (1 = ``start``), sorted by user."""
    params = SqlParams()
    types, is_goal = event_types_condition(goal.events, params), goal_event_condition(goal.events, params)
    lower = params.bind(sql.midnight(start), "TIMESTAMP")
    upper = params.bind(sql.midnight(end + timedelta(days=1)), "TIMESTAMP")
    with sql.temp_tables(con):
        restricted = sql.register_users(con, users)
        only = "AND user_id IN (SELECT user_id FROM _gf_users)" if restricted else ""
        frame = con.execute(
            f"""SELECT user_id, min(ts) AS achieved_at FROM {sql.EVENTS}
                WHERE {types} AND ts >= {lower} AND ts < {upper} AND {is_goal} {only}
                GROUP BY user_id ORDER BY user_id""",
            params.values,
        ).pl()
    return frame.with_columns(pl.col("achieved_at").dt.date().alias("achieved_on")).with_columns(
        ((pl.col("achieved_on") - pl.lit(start)).dt.total_days() + 1).cast(pl.Int32).alias("window_day")
    )


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
    total = int(curve.get_column("achievers").max() or 0)
    share = pl.col("achievers") / total if total else pl.col("day") / length
    return curve.with_columns(share.cast(pl.Float64).alias("share"))


def _timing_counts(con, goal: GoalDefinition, anchors: list[date], segments: SegmentConfig | None) -> pl.DataFrame:
    params = SqlParams()
    types, is_goal = event_types_condition(goal.events, params), goal_event_condition(goal.events, params)
    first = params.bind(sql.midnight(anchors[0]), "TIMESTAMP")
    last = params.bind(sql.midnight(anchors[-1] + timedelta(days=goal.length_days)), "TIMESTAMP")
    with sql.temp_tables(con):
        member_join = ""
        if segments is not None:
            population = None if goal.segment == ALL_USERS else segments.by_name[goal.segment]
            sql.load_population(con, anchors, goal.segment, population, read_profile_columns(con))
            member_join = (
                f"JOIN _gf_members m ON m.anchor = a.anchor AND m.user_id = e.user_id "
                f"AND m.segment_name = {params.bind(sql.POPULATION, 'VARCHAR')}"
            )
        con.execute("CREATE OR REPLACE TEMP TABLE _gf_anchors (anchor DATE, anchor_ts TIMESTAMP)")
        con.executemany("INSERT INTO _gf_anchors VALUES (?, ?)", [(a, sql.midnight(a)) for a in anchors])
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


def history_problem(con, goal: GoalDefinition, training_set: TrainingSet) -> str | None:
    """The ``insufficient_history`` message, or None when the history can train a model:
    at least ``MIN_OUTCOMES`` achievers and non-achievers over the anchors (full-length
    windows) and ``lookbackDays + length`` days of events before createdOn."""
    need = goal.lookback_days + goal.length_days
    first = first_event_day(con)
    if first is None:
        return f"goal '{goal.name}': the event snapshot is empty; a model needs {need} days of events before createdOn"
    history = (goal.created_on - first).days
    if history < need or not training_set.anchors:
        room = history - goal.length_days
        fix = (f"lower lookbackDays to at most {room}, or " if room >= 1 else "") + "create the goal later"
        return (
            f"goal '{goal.name}': events start on {first}, {max(history, 0)} days before createdOn "
            f"{goal.created_on}, but a model needs lookbackDays {goal.lookback_days} + the goal's "
            f"{goal.length_days} days = {need} days of history. Fix: {fix}"
        )
    stats = training_set.anchor_stats
    population = int(stats.get_column("population").sum())
    achievers = int(stats.get_column("achievers").sum())
    anchors = len(training_set.anchors)
    where = f"across {anchors} anchor{'s' if anchors != 1 else ''}"
    if population == 0:
        return (
            f"goal '{goal.name}': segment '{goal.segment}' had no members on the eve of any of the "
            f"{anchors} anchors ({', '.join(map(str, training_set.anchors))}); there is nothing to learn from. "
            "Fix: target a segment that existed before createdOn"
        )
    if achievers >= MIN_OUTCOMES and population - achievers >= MIN_OUTCOMES:
        return None
    if achievers < MIN_OUTCOMES:
        problem = f"only {achievers:,} users achieved {goal.describe_events()} {where} (need {MIN_OUTCOMES})"
    else:
        problem = (
            f"only {population - achievers:,} of {population:,} users did not achieve "
            f"{goal.describe_events()} {where} (need {MIN_OUTCOMES} of each outcome)"
        )
    alternatives = _event_types_with_history(con, goal, training_set, population)
    if alternatives:
        hint = "Event types with enough history: " + ", ".join(f"{name} ({n:,})" for name, n in alternatives)
    else:
        hint = "No event type has enough history in this segment"
    return (
        f"goal '{goal.name}': {problem}. {hint}. Fix: choose goal events that this segment does often enough, "
        "target a larger segment, or wait for more history"
    )


def _event_types_with_history(
    con, goal: GoalDefinition, training_set: TrainingSet, population: int, limit: int = 5
) -> list[tuple[str, int]]:
    """Event types that at least ``MIN_OUTCOMES`` sampled users did, and as many did not, in the
    same full-length windows: what a goal on this segment could use instead."""
    pairs = training_set.frame.select(*ID_COLUMNS).unique()
    anchors = [a for a in training_set.anchors]
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
                "first": sql.midnight(min(anchors)),
                "last": sql.midnight(max(anchors) + timedelta(days=goal.length_days)),
                "need": MIN_OUTCOMES,
                "population": population,
            },
        ).fetchall()
    finally:
        con.unregister(view)
    return [(name, int(n)) for name, n in rows]
