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
event in the lookback are censored at ``L`` days; counts default to 0.

Lifetime features see all history before the anchor, whatever ``L``: in sparse data
(a purchase every few months) the lookback misses most of the signal. Of all events:
``life_events``, ``life_active_days``, ``life_days_since_last_event`` and the BG/NBD
summary ``all_x`` (repeat active days), ``all_t_x`` (first to last active day), ``all_T``
(first active day to the anchor). Of the goal's events: ``goal_life_events``,
``goal_life_days``, ``goal_days_since_first``, ``goal_days_since_last_life``, their
BG/NBD summary ``bgnbd_x``, ``bgnbd_t_x``, ``bgnbd_T`` (``T`` from the first event of any
kind for users who never did a goal event), the inter-purchase timing
``goal_mean_gap_days`` (t_x / x) and ``goal_recency_ratio`` (days since the last goal day
over that gap), and per numeric property of the goal events (the ``MAX_VALUE_PROPERTIES``
commonest, e.g. spend, quantity) ``goal_value_sum:<p>``, ``goal_value_mean:<p>`` and
``goal_value_last:<p>``. Times with no event are censored at the history's span.

Profile columns, the inter-purchase timing and value means/last values can be empty:
xgboost treats them as missing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, timedelta

import polars as pl

from segment_pipeline.config.goals import GoalDefinition
from segment_pipeline.config.segments import ALL_USERS, SegmentConfig
from segment_pipeline.engines import Engine, current_engine, scratch
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
from segment_pipeline.goals.outcomes import (
    MIN_ANCHORS,
    MIN_OUTCOMES,
    achievers_by_day,
    anchor_step,
    historical_timing_curve,
    history_problem,
)
from segment_pipeline.ingest.state import first_event_day
from segment_pipeline.rules.compiler import read_profile_columns
from segment_pipeline.settings import training_users_per_anchor

__all__ = [
    "MIN_ANCHORS",
    "MIN_OUTCOMES",
    "FeatureSpec",
    "TrainingSet",
    "achievers_by_day",
    "anchor_step",
    "build_scoring_set",
    "build_training_set",
    "choose_anchors",
    "default_horizons",
    "first_event_day",
    "historical_timing_curve",
    "history_problem",
    "left_out_profile_columns",
]

HORIZON_FRACTIONS = (1.0, 0.75, 0.5, 0.25)
MAX_EVENT_TYPES = 30
MAX_CATEGORIES = 20  # one-hot columns per text profile column
MAX_CATEGORY_VALUES = 50  # more distinct values than this: not a category (an id, free text)
MAX_VALUE_PROPERTIES = 3  # numeric goal-event properties summed, averaged and carried (spend, quantity...)
MAX_ROWS = 2_000_000  # above this, each (anchor, user) gets one horizon instead of all

Users = str | Sequence[str] | pl.Series | pl.DataFrame


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
    max_users_per_anchor: int | None = None,
    engine: Engine | None = None,
) -> TrainingSet:
    """Samples of the goal segment's members at each anchor (members as of A-1).

    ``spec`` fixes the columns (e.g. to rebuild a set comparable with an earlier one);
    by default it is derived from the data before the anchors. Every (anchor, user) gets
    a row per horizon, unless that makes more than ``max_rows`` rows: then it gets one
    horizon, chosen by a stable hash of the pair (``metadata["horizon_sampling"]``).
    Profile columns named like a goal event property, or in ``exclude_profile_columns``,
    are left out (``left_out_profile_columns``, ``metadata["profile_columns_left_out"]``).
    Above ``max_users_per_anchor`` users (default: SEGMENT_PIPELINE_TRAINING_USERS_PER_ANCHOR)
    an anchor is sampled (``feature_sql.sample_population``, ``metadata["sampled_anchors"]``);
    ``anchor_stats`` always counts the whole population.

    The feature SQL runs on ``engine`` (default: the one ``engines.using`` set, else DuckDB).
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
    left_out = left_out_profile_columns(goal, profile_columns, exclude_profile_columns)
    flag_segments = spec.segment_models if spec else segments.past
    if goal.segment != ALL_USERS and goal.segment not in segments.by_name:
        raise ValueError(f"goal '{goal.name}': segment '{goal.segment}' is not defined")
    population = None if goal.segment == ALL_USERS else segments.by_name[goal.segment]
    goal_events = spec.goal_event_models if spec else goal.events
    lookback = spec.lookback_days if spec else goal.lookback_days
    engine = engine or current_engine()
    with scratch.temp_tables(con, engine):
        sql.load_population(con, anchors, goal.segment, population, profile_columns, engine)
        rows = sql.make_population(
            con,
            "SELECT anchor, user_id FROM _gf_members WHERE segment_name = $pop",
            lookback,
            len(horizons),
            {"pop": sql.POPULATION},
            engine,
        )
        if anchors:
            sql.load_labels(con, goal.events, anchors, length, engine)
        else:
            sql.empty_daily(con, engine)
        stats = sql.anchor_stats(con, anchors, length, engine)
        cap = training_users_per_anchor() if max_users_per_anchor is None else max_users_per_anchor
        sampled = sql.sample_population(con, length, cap, engine) if anchors else {}
        if sampled:
            rows = sql.count_rows(con, engine, "_gf_pop")
        sql.load_flags(con, anchors, flag_segments, profile_columns, engine)
        timings["population_s"] = _lap(clock_start)
        if spec is not None:
            value_properties = list(spec.value_properties)
        elif anchors:
            # On DuckDB whatever the engine: a bounded sample (the first goal events in the
            # snapshot's order, which Spark's Parquet copy does not keep) that picks columns.
            value_properties = sql.numeric_goal_properties(con, goal.events, max(anchors), MAX_VALUE_PROPERTIES)
            if goal.value_property and goal.value_property not in value_properties:
                # A value goal's monetary features must be of its own property, however rare.
                value_properties = [*value_properties[: MAX_VALUE_PROPERTIES - 1], goal.value_property]
        else:
            value_properties = []
        if anchors:
            sql.load_daily(con, goal_events, anchors, lookback, value_properties, engine)
        timings["events_s"] = round(_lap(clock_start) - timings["population_s"], 3)
        spec_derived = spec is None
        if spec is None:
            spec = _derive_spec(
                con, goal, segments, profile_columns, left_out, max_event_types, value_properties, engine
            )
        frame = _features(con, spec, profile_columns, rows, with_labels=True, engine=engine)
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
    frame = frame.select(*ID_COLUMNS, LABEL, *spec.feature_columns)
    timings["total_s"] = _lap(clock_start)
    timings["features_s"] = round(timings["total_s"] - timings["population_s"] - timings["events_s"], 3)
    metadata = {
        "goal_name": goal.name,
        "anchors": [a.isoformat() for a in anchors],
        "horizons": horizons,
        "horizon_sampling": sampling,
        "pairs": pairs,
        "rows": frame.height,
        "positives": int(frame.get_column(LABEL).sum() or 0),
        "features": len(spec.feature_columns),
        "profile_columns_left_out": left_out if spec_derived else {},
        "sampled_anchors": sampled,
        "timings": timings,
    }
    return TrainingSet(frame, list(spec.feature_columns), spec, anchors, horizons, stats, metadata)


def build_scoring_set(
    con,
    goal: GoalDefinition,
    users: Users,
    as_of: date,
    *,
    spec: FeatureSpec,
    horizon_days: int | None = None,
    engine: Engine | None = None,
) -> pl.DataFrame:
    """Features of ``users`` as of ``as_of`` with the training ``spec``'s columns: anchor
    ``as_of + 1`` (events before it), ``horizon_days`` = days of the window left after ``as_of``
    (given by a night that knows it already).

    Columns: ``anchor``, ``user_id`` and ``spec.feature_columns``; one row per user, sorted.
    """
    horizon = goal.days_left_after(as_of) if horizon_days is None else horizon_days
    if horizon < 1:
        raise ValueError(f"goal '{goal.name}' ended on {goal.end_date}; nothing is left of its window after {as_of}")
    anchor = as_of + timedelta(days=1)
    # What the spec asks for, taken up front: the SQL steps below then run in one stretch.
    segment_models, goal_event_models = spec.segment_models, spec.goal_event_models
    profile_columns = read_profile_columns(con)
    engine = engine or current_engine()
    with scratch.temp_tables(con, engine):
        scratch.register_users(con, users, engine)
        rows = sql.make_population(
            con,
            "SELECT CAST($anchor AS DATE) AS anchor, user_id FROM _gf_users",
            spec.lookback_days,
            1,
            {"anchor": anchor},
            engine,
        )
        sql.load_flags(con, [anchor], segment_models, profile_columns, engine)
        sql.load_daily(con, goal_event_models, [anchor], spec.lookback_days, spec.value_properties, engine)
        frame = _features(con, spec, profile_columns, rows, with_labels=False, engine=engine)
    frame = frame.with_columns(pl.lit(float(horizon), dtype=pl.Float32).alias(HORIZON))
    return frame.select(*ID_COLUMNS, *spec.feature_columns)


def _lap(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def left_out_profile_columns(
    goal: GoalDefinition, profile_columns: dict[str, str] | None, exclude: Sequence[str] = ()
) -> dict[str, str]:
    """Profile columns kept out of the features, with the reason.

    Profiles hold the *current* state, later than every anchor. A property that the goal's
    own events carry (``plan`` for ``subscription_renewed {plan: premium}``) is usually the
    state those events change, so its current value would reveal the label: it is left out.
    """
    goal_keys = {key.casefold() for event in goal.events for key in (event.event_properties or {})}
    reasons = {}
    for column in profile_columns or {}:
        if column in exclude:
            reasons[column] = "excluded by the caller"
        elif column.casefold() in goal_keys:
            reasons[column] = "a property of the goal's events: its current value would leak the outcome"
    return reasons


def _derive_spec(
    con, goal, segments, profile_columns, left_out, max_event_types, value_properties, engine: Engine
) -> FeatureSpec:
    profile = []
    for column, column_type in (profile_columns or {}).items():
        kind = profile_kind(column_type)
        if column in left_out or kind is None:
            continue
        categories: list[str] = []
        if kind == "category":
            categories = sql.profile_categories(con, column, MAX_CATEGORY_VALUES, MAX_CATEGORIES, engine) or []
            if not categories:
                continue
        profile.append((column, kind, categories))
    return make_spec(
        goal.name,
        goal.events,
        goal.lookback_days,
        sql.top_event_types(con, max_event_types, engine),
        segments.past,
        profile,
        value_properties,
    )


def _features(
    con, spec: FeatureSpec, profile_columns: dict[str, str] | None, rows: int, *, with_labels: bool, engine: Engine
) -> pl.DataFrame:
    """The fixed features (wide) beside the open-ended ones (long, pivoted by position);
    one row per ``_gf_pop`` row, in its order."""
    wide = sql.wide_features(con, spec, set(profile_columns or {}), with_labels, engine)
    return pl.concat([wide, sql.long_features(con, spec, rows, engine)], how="horizontal")
