"""The SQL of goal features: point-in-time temp tables, aggregated in long format.

Every builder works on ``_gf_pop``: one row (``row_id``) per anchor and user to describe.
Features read only events with ``anchor - lookback <= ts < anchor`` and segment flags
as of the day before the anchor, so nothing at or after the anchor can leak in.

The events are read once, whatever the number of anchors: ``_gf_utd`` holds per user
(an integer ``uid``), day and event type the events, the goal events and the last time
of each, over the union of the lookback windows. Anchors fall at 00:00, so a window of
whole days before an anchor is a range of those days; every feature is an aggregate
of ``_gf_utd`` joined to ``_gf_pop`` on ``uid`` and that range.

The temp tables live on an engine (``engines``): DuckDB temp tables on the warehouse
connection, or Spark temp views with ``SEGMENT_PIPELINE_ENGINE=spark``. The SQL is DuckDB
SQL; the few spellings Spark lacks come from the engine's dialect (``rules/dialect.py``).
Stateful inputs (the rollups, stored memberships) are kept up to date in DuckDB first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from segment_pipeline.config.goals import GoalEvent
from segment_pipeline.config.segments import ALL_USERS, SegmentDefinition
from segment_pipeline.engines.base import Engine
from segment_pipeline.engines.duckdb_engine import DUCKDB_ENGINE
from segment_pipeline.goals import goal_rollups
from segment_pipeline.goals.feature_spec import FeatureSpec
from segment_pipeline.goals.matching import SqlParams, event_types_condition, goal_event_condition
from segment_pipeline.ingest import state
from segment_pipeline.rules.compiler import compile_anchored_segment_chunks, compile_past_segments, window_end
from segment_pipeline.rules.dialect import DUCKDB, DuckDBDialect
from segment_pipeline.segments import history
from segment_pipeline.storage.warehouse import midnight, quote_ident, scalar

EVENTS = "analytics.event_snapshots"
PROFILES = "analytics.profiles"
POPULATION = "\x00population"  # the goal segment's name in _gf_members; no config name can hold NUL
DAY_US = 86_400_000_000


def days_between_sql(earlier: str, later: str, dialect: DuckDBDialect = DUCKDB) -> str:
    """Fractional days from one TIMESTAMP expression to another (divided as DOUBLE: Spark
    would divide by a decimal literal in DECIMAL)."""
    return f"(date_diff('microsecond', {earlier}, {later}) / {dialect.double(f'{DAY_US}.0')})"


def _arrow_frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def load_population(
    con: duckdb.DuckDBPyConnection,
    anchors: Sequence[date],
    segment_name: str,
    segment: SegmentDefinition | None,
    profile_columns: dict[str, str] | None,
    engine: Engine = DUCKDB_ENGINE,
) -> None:
    """``_gf_members`` rows named ``POPULATION``: the goal segment's members (``segment``, or
    All Users when it is None) as of each anchor's eve.

    A day whose memberships of the same definition are stored is read from them; All Users
    comes from ``pipeline_state.users`` when it covers the snapshot; the rest is evaluated."""
    _create_members(con, engine)
    if segment is None and segment_name != ALL_USERS:
        return
    eves = {anchor: anchor - timedelta(days=1) for anchor in anchors}
    stored = {} if segment is None else history.stored_memberships(con, list(eves.values()), [segment])
    all_users_from_state = segment is None and state.is_current(con)
    for anchor, eve in eves.items():
        if eve in stored:
            engine.from_warehouse(
                con,
                "_gf_members",
                """SELECT CAST(? AS DATE), ?, user_id FROM analytics.segment_memberships
                   WHERE as_of_date = ? AND segment_name = ?""",
                [anchor, POPULATION, eve, segment_name],
                append=True,
            )
            continue
        if all_users_from_state:
            users = f"SELECT user_id FROM {state.USERS} WHERE first_ts < ?"
            if profile_columns is not None:
                users += f" UNION SELECT user_id FROM {PROFILES}"
            engine.from_warehouse(
                con,
                "_gf_members",
                f"SELECT CAST(? AS DATE), ?, user_id FROM ({users})",
                [anchor, POPULATION, window_end(eve)],
                append=True,
            )
            continue
        query = compile_past_segments(
            [] if segment is None else [segment.model_copy(update={"name": POPULATION})],
            as_of=eve,
            profile_columns=profile_columns,
            include_all_users=segment is None,
            dialect=engine.dialect,
        )
        engine.append(
            con,
            "_gf_members",
            f"""SELECT CAST($gf_anchor AS DATE), $gf_pop, user_id FROM ({query.sql})""",
            query.params | {"gf_anchor": anchor, "gf_pop": POPULATION},
        )


def load_flags(
    con: duckdb.DuckDBPyConnection,
    anchors: Sequence[date],
    segments: Sequence[SegmentDefinition],
    profile_columns: dict[str, str] | None,
    engine: Engine = DUCKDB_ENGINE,
) -> None:
    """``_gf_members`` rows of every past segment in ``segments`` as of each anchor's eve,
    for the users of ``_gf_pop`` only.

    Memberships the segments step stored for that day with the same definition are read
    (tonight's, when scoring); other segments are evaluated for the population's users only:
    a user's membership depends on their own events and profile, so the compiler reads just
    those (``_gf_pop_events``), in one scan per chunk for all anchors that need them."""
    _create_members(con, engine, replace=False)
    if not segments:
        return
    eves = {anchor: anchor - timedelta(days=1) for anchor in anchors}
    stored = history.stored_memberships(con, list(eves.values()), segments)
    engine.view(con, "_gf_pop_events", f"SELECT * FROM {EVENTS} WHERE user_id IN (SELECT user_id FROM _gf_uids)")
    for anchor, eve in eves.items():
        read = stored.get(eve, [])
        if read:
            if engine is DUCKDB_ENGINE:
                con.execute(
                    """INSERT INTO _gf_members SELECT CAST(? AS DATE), segment_name, user_id
                       FROM analytics.segment_memberships
                       WHERE as_of_date = ? AND segment_name IN (SELECT unnest(CAST(? AS VARCHAR[])))
                         AND user_id IN (SELECT user_id FROM _gf_uids)""",
                    [anchor, eve, read],
                )
            else:
                # The stored day is in DuckDB, the population on the engine: all of the day's
                # members of those segments go over, the join to the population happens there.
                engine.from_warehouse(
                    con,
                    "_gf_flag_rows",
                    """SELECT CAST(? AS DATE) AS anchor, segment_name, user_id FROM analytics.segment_memberships
                       WHERE as_of_date = ? AND segment_name IN (SELECT unnest(CAST(? AS VARCHAR[])))""",
                    [anchor, eve, read],
                )
                engine.append(
                    con,
                    "_gf_members",
                    "SELECT anchor, segment_name, user_id FROM _gf_flag_rows"
                    " WHERE user_id IN (SELECT user_id FROM _gf_uids)",
                )
                engine.drop(con, "_gf_flag_rows")
    # Anchors that need the same segments evaluated share one scan (usually all of them do).
    evaluate: dict[tuple[str, ...], list[date]] = {}
    for anchor, eve in eves.items():
        read = set(stored.get(eve, []))
        rest = tuple(s.name for s in segments if s.name not in read)
        if rest:
            evaluate.setdefault(rest, []).append(anchor)
    for names, group in evaluate.items():
        engine.upload(
            con,
            "_gf_flag_anchors",
            pa.table({"anchor": pa.array(group, pa.date32())}),
        )
        queries = compile_anchored_segment_chunks(
            [s for s in segments if s.name in names],
            as_of_days=[eves[a] for a in group],
            anchors="_gf_flag_anchors",
            profile_columns=profile_columns,
            events="_gf_pop_events",
            dialect=engine.dialect,
        )
        for query in queries:
            engine.append(con, "_gf_members", f"SELECT anchor, segment_name, user_id FROM ({query.sql})", query.params)
        engine.drop(con, "_gf_flag_anchors")


def _create_members(con: duckdb.DuckDBPyConnection, engine: Engine, *, replace: bool = True) -> None:
    engine.create(con, "_gf_members", "anchor DATE, segment_name VARCHAR, user_id VARCHAR", replace=replace)


def make_population(
    con: duckdb.DuckDBPyConnection,
    source_sql: str,
    lookback_days: int,
    slots: int,
    params: dict | None = None,
    engine: Engine = DUCKDB_ENGINE,
) -> int:
    """``_gf_pop`` from a query of ``(anchor, user_id)``, sorted, with ``row_id`` (0-based, the
    row of the feature frame), ``uid`` (an integer per user) and ``slot``, a stable hash of
    the pair in ``0..slots-1`` (to give each sample one of several horizons). Returns its size."""
    dialect = engine.dialect
    engine.materialize(
        con,
        "_gf_pop",
        f"""SELECT anchor, user_id,
                   CAST(row_number() OVER (ORDER BY anchor, user_id) - 1 AS BIGINT) AS row_id,
                   CAST(dense_rank() OVER (ORDER BY user_id) AS INTEGER) AS uid,
                   CAST(anchor AS TIMESTAMP) AS anchor_ts,
                   CAST({dialect.days_before("anchor", int(lookback_days))} AS DATE) AS start_day,
                   CAST({dialect.hash32("user_id || '|' || CAST(anchor AS VARCHAR)")}
                        % {max(1, int(slots))} AS INTEGER) AS slot
            FROM (SELECT DISTINCT anchor, user_id FROM ({source_sql}) WHERE user_id IS NOT NULL)
            ORDER BY row_id""",
        params or {},
    )
    engine.materialize(con, "_gf_uids", "SELECT DISTINCT user_id, uid FROM _gf_pop")
    return count_rows(con, engine, "_gf_pop")


def count_rows(con: duckdb.DuckDBPyConnection, engine: Engine, table: str) -> int:
    if engine is DUCKDB_ENGINE:
        return scalar(con, f"SELECT count(*) FROM {table}")
    return int(engine.query(con, f"SELECT count(*) AS n FROM {table}").column("n")[0].as_py())


def load_daily(
    con: duckdb.DuckDBPyConnection,
    goal_events: Sequence[GoalEvent],
    anchors: Sequence[date],
    lookback_days: int,
    value_properties: Sequence[str] = (),
    engine: Engine = DUCKDB_ENGINE,
) -> None:
    """``_gf_utd`` (per uid, day, event type: events, goal events, last times) over the union
    of the lookback windows; ``_gf_ud`` (per uid and day, with the previous active day);
    ``_gf_first`` (each user's first event before the last anchor, for tenure) from
    ``_gf_life`` (``load_lifetime``).

    When the load's summaries cover the snapshot, everything comes from the daily rollups
    (``pipeline_state.daily_rollups`` and the goal's ``goal_rollups``), not the events: the
    same values, since anchors fall at 00:00 and every window is a range of whole days."""
    if goal_rollups.available(con):
        _load_daily_from_rollups(con, goal_events, anchors, lookback_days, value_properties, engine)
        return
    params = SqlParams()
    is_goal = goal_event_condition(goal_events, params, engine.dialect)
    earliest = params.bind(midnight(min(anchors)) - timedelta(days=lookback_days), "TIMESTAMP")
    latest = params.bind(midnight(max(anchors)), "TIMESTAMP")
    engine.materialize(
        con,
        "_gf_utd",
        f"""SELECT u.uid, CAST(e.ts AS DATE) AS day, e.event_name,
                   count(*) AS n, count(*) FILTER (WHERE e.is_goal) AS n_goal,
                   max(e.ts) AS last_ts, max(e.ts) FILTER (WHERE e.is_goal) AS last_goal_ts
            FROM (SELECT user_id, event_name, ts, {is_goal} AS is_goal FROM {EVENTS}
                  WHERE ts >= {earliest} AND ts < {latest}) e
            JOIN _gf_uids u ON u.user_id = e.user_id
            GROUP BY ALL""",
        params.values,
    )
    engine.materialize(
        con,
        "_gf_ud",
        """SELECT uid, day, n, n_goal, last_ts, last_goal_ts,
                  lag(day) OVER (PARTITION BY uid ORDER BY day) AS prev_day
           FROM (SELECT uid, day, sum(n) AS n, sum(n_goal) AS n_goal, max(last_ts) AS last_ts,
                        max(last_goal_ts) AS last_goal_ts
                 FROM _gf_utd GROUP BY uid, day)""",
    )
    load_lifetime(con, goal_events, anchors, value_properties, engine)
    engine.materialize(con, "_gf_first", "SELECT uid, min(first_ts) AS first_ts FROM _gf_life GROUP BY uid")


def _load_daily_from_rollups(
    con: duckdb.DuckDBPyConnection,
    goal_events: Sequence[GoalEvent],
    anchors: Sequence[date],
    lookback_days: int,
    value_properties: Sequence[str],
    engine: Engine,
) -> None:
    goal_days = goal_rollups.ensure(con, goal_events, value_properties)
    earliest, latest = min(anchors) - timedelta(days=lookback_days), max(anchors)
    days = {"earliest": earliest, "latest": latest}
    engine.materialize(
        con,
        "_gf_utd",
        f"""SELECT u.uid, r.day, r.event_name, r.events AS n, r.last_ts
            FROM {state.ROLLUPS} r JOIN _gf_uids u ON u.user_id = r.user_id
            WHERE r.day >= $earliest AND r.day < $latest""",
        days,
    )
    values = "".join(
        f", g.vs{i}, coalesce(g.vc{i}, 0) AS vc{i}, g.vl{i}, g.vt{i}" for i in range(len(value_properties))
    )
    engine.materialize(
        con,
        "_gf_life",
        f"""SELECT d.uid, d.day, d.n, coalesce(g.n_goal, 0) AS n_goal, d.first_ts, d.last_ts, g.last_goal_ts{values}
            FROM (SELECT u.uid, r.day, sum(r.events) AS n, min(r.first_ts) AS first_ts, max(r.last_ts) AS last_ts
                  FROM {state.ROLLUPS} r JOIN _gf_uids u ON u.user_id = r.user_id
                  WHERE r.day < $latest GROUP BY u.uid, r.day) d
            LEFT JOIN (SELECT u.uid, g.* FROM {goal_days} g JOIN _gf_uids u ON u.user_id = g.user_id
                       WHERE g.day < $latest) g ON g.uid = d.uid AND g.day = d.day""",
        {"latest": latest},
    )
    # The window's days are a part of the lifetime's (the same per-day sums): the lag sees only them.
    engine.materialize(
        con,
        "_gf_ud",
        """SELECT uid, day, n, n_goal, last_ts, last_goal_ts,
                  lag(day) OVER (PARTITION BY uid ORDER BY day) AS prev_day
           FROM _gf_life WHERE day >= $earliest""",
        {"earliest": earliest},
    )
    engine.materialize(con, "_gf_first", "SELECT uid, min(first_ts) AS first_ts FROM _gf_life GROUP BY uid")


def load_lifetime(
    con: duckdb.DuckDBPyConnection,
    goal_events: Sequence[GoalEvent],
    anchors: Sequence[date],
    value_properties: Sequence[str] = (),
    engine: Engine = DUCKDB_ENGINE,
) -> None:
    """``_gf_life``: per uid and day, all events before the last anchor (one scan of the
    whole history), with the goal events' counts, last time and, per numeric property of
    theirs, sum, count and last value. Lifetime features aggregate it per anchor."""
    params, dialect = SqlParams(), engine.dialect
    is_goal = goal_event_condition(goal_events, params, dialect)
    latest = params.bind(midnight(max(anchors)), "TIMESTAMP")
    values = goal_rollups.value_columns(value_properties, params, dialect)
    aggregates = goal_rollups.value_aggregates(
        len(value_properties), alias="e.", goal_only="e.is_goal", dialect=dialect
    )
    engine.materialize(
        con,
        "_gf_life",
        f"""SELECT u.uid, CAST(e.ts AS DATE) AS day, count(*) AS n, count(*) FILTER (WHERE e.is_goal) AS n_goal,
                   min(e.ts) AS first_ts, max(e.ts) AS last_ts, max(e.ts) FILTER (WHERE e.is_goal) AS last_goal_ts
                   {aggregates}
            FROM (SELECT user_id, ts, {is_goal} AS is_goal {values} FROM {EVENTS}
                  WHERE ts < {latest} AND user_id IN (SELECT user_id FROM _gf_uids)) e
            JOIN _gf_uids u ON u.user_id = e.user_id
            GROUP BY ALL""",
        params.values,
    )


def numeric_goal_properties(
    con: duckdb.DuckDBPyConnection, goal_events: Sequence[GoalEvent], before: date, limit: int, sample: int = 100_000
) -> list[str]:
    """The goal events' properties that hold numbers (in most of a sample of them), commonest first."""
    params = SqlParams()
    types, is_goal = event_types_condition(goal_events, params), goal_event_condition(goal_events, params)
    rows = con.execute(
        f"""WITH e AS (SELECT properties FROM {EVENTS}
                       WHERE {types} AND ts < {params.bind(midnight(before), "TIMESTAMP")} AND {is_goal} LIMIT {int(sample)}),
                 keyed AS (SELECT properties, unnest(json_keys(properties)) AS key FROM e),
                 kv AS (SELECT key, json_type(properties, '/' || replace(replace(key, '~', '~0'), '/', '~1')) AS kind
                        FROM keyed)
            SELECT key FROM kv GROUP BY key
            HAVING count(*) FILTER (WHERE kind IN ('BIGINT', 'UBIGINT', 'DOUBLE')) * 2 > count(*)
            ORDER BY count(*) DESC, key LIMIT {int(limit)}""",
        params.values,
    ).fetchall()
    return [r[0] for r in rows]


def empty_daily(con: duckdb.DuckDBPyConnection, engine: Engine = DUCKDB_ENGINE) -> None:
    """The tables of ``load_daily`` and ``load_labels``, empty (no anchors)."""
    engine.create(
        con,
        "_gf_utd",
        """uid INTEGER, day DATE, event_name VARCHAR, n BIGINT,
                   n_goal BIGINT, last_ts TIMESTAMP, last_goal_ts TIMESTAMP""",
    )
    engine.create(
        con,
        "_gf_ud",
        """uid INTEGER, day DATE, n BIGINT, n_goal BIGINT,
                   last_ts TIMESTAMP, last_goal_ts TIMESTAMP, prev_day DATE""",
    )
    engine.create(con, "_gf_first", "uid INTEGER, first_ts TIMESTAMP")
    engine.create(
        con,
        "_gf_life",
        """uid INTEGER, day DATE, n BIGINT, n_goal BIGINT,
                   first_ts TIMESTAMP, last_ts TIMESTAMP, last_goal_ts TIMESTAMP""",
    )
    engine.create(con, "_gf_labels", "row_id BIGINT, achieved_day INTEGER")


def load_labels(
    con: duckdb.DuckDBPyConnection,
    goal_events: Sequence[GoalEvent],
    anchors: Sequence[date],
    length_days: int,
    engine: Engine = DUCKDB_ENGINE,
) -> None:
    """``_gf_labels(row_id, achieved_day)``: the 0-based day of the window
    ``[anchor, anchor + length_days)`` with the user's first goal event (achievers only)."""
    if goal_rollups.available(con):
        # Windows start at 00:00: the first goal event at or after the anchor is in the goal
        # rollup's first row on or after the anchor's day.
        dialect = engine.dialect
        engine.materialize(
            con,
            "_gf_labels",
            f"""SELECT p.row_id,
                       CAST(floor({days_between_sql("p.anchor_ts", "min(g.first_goal_ts)", dialect)}) AS INTEGER) AS achieved_day
                FROM {goal_rollups.ensure(con, goal_events)} g
                JOIN _gf_pop p ON g.user_id = p.user_id AND g.day >= p.anchor
                              AND g.day < {dialect.days_after("p.anchor", int(length_days))}
                WHERE g.day >= $first AND g.day < $last
                GROUP BY p.row_id, p.anchor_ts""",
            {"first": min(anchors), "last": max(anchors) + timedelta(days=length_days)},
        )
        return
    params = SqlParams()
    types = event_types_condition(goal_events, params)
    is_goal = goal_event_condition(goal_events, params, engine.dialect)
    first = params.bind(midnight(min(anchors)), "TIMESTAMP")
    last = params.bind(midnight(max(anchors)) + timedelta(days=length_days), "TIMESTAMP")
    # INTERVAL 'n' DAY: DuckDB's other spelling, INTERVAL (n) DAY, has no Spark twin.
    engine.materialize(
        con,
        "_gf_labels",
        f"""SELECT p.row_id, CAST(floor({days_between_sql("p.anchor_ts", "min(e.ts)", engine.dialect)}) AS INTEGER) AS achieved_day
            FROM (SELECT user_id, ts FROM {EVENTS} WHERE {types} AND ts >= {first} AND ts < {last} AND {is_goal}) e
            JOIN _gf_pop p ON e.user_id = p.user_id AND e.ts >= p.anchor_ts
                          AND e.ts < p.anchor_ts + INTERVAL '{int(length_days)}' DAY
            GROUP BY p.row_id, p.anchor_ts""",
        params.values,
    )


def anchor_stats(
    con: duckdb.DuckDBPyConnection, anchors: Sequence[date], length_days: int, engine: Engine = DUCKDB_ENGINE
) -> pl.DataFrame:
    """Per anchor, the population of ``_gf_pop`` and its full-length achievers (``_gf_labels``);
    anchors without members count 0."""
    counted = _arrow_frame(
        engine.query(
            con,
            f"""SELECT p.anchor, count(*) AS population,
                   count(*) FILTER (WHERE l.achieved_day < {int(length_days)}) AS achievers
            FROM _gf_pop p LEFT JOIN _gf_labels l ON l.row_id = p.row_id GROUP BY p.anchor""",
        )
    )
    base = pl.DataFrame({"anchor": list(anchors)}, schema={"anchor": pl.Date})
    return (
        base.join(counted.with_columns(pl.col("anchor").cast(pl.Date)), on="anchor", how="left")
        .with_columns(pl.col("population").fill_null(0).cast(pl.Int64), pl.col("achievers").fill_null(0).cast(pl.Int64))
        .sort("anchor")
    )


def sample_population(
    con: duckdb.DuckDBPyConnection, length_days: int, cap: int, engine: Engine = DUCKDB_ENGINE
) -> dict[str, dict[str, int]]:
    """Keep at most ``cap`` users per anchor in ``_gf_pop`` (after ``load_labels``), by a stable hash.

    Training anchors keep every achiever (a goal event in the full-length window) up to half
    the cap and fill the rest with non-achievers: the rare class carries the signal. The
    latest anchor (the hold-out: calibration, thresholds, metrics) is sampled uniformly, so
    its base rate, which calibration learns, stays the population's. Returns, per sampled
    anchor, its population, achievers and kept users; ``_gf_pop`` and ``_gf_labels`` are rebuilt."""
    achiever = f"(l.achieved_day IS NOT NULL AND l.achieved_day < {int(length_days)})"
    key = engine.dialect.hash32("p.user_id || '|sample|' || CAST(p.anchor AS VARCHAR)")
    half = cap // 2
    # count(CASE ...) OVER, not count(*) FILTER (...) OVER: Spark has no FILTER on a window.
    engine.materialize(
        con,
        "_gf_sampled",
        f"""WITH keyed AS (
                SELECT p.row_id, p.anchor, p.user_id, {achiever} AS achiever, {key} AS h,
                       p.anchor = (SELECT max(anchor) FROM _gf_pop) AS holdout
                FROM _gf_pop p LEFT JOIN _gf_labels l ON l.row_id = p.row_id
            ), ranked AS (
                SELECT *, count(*) OVER (PARTITION BY anchor) AS population,
                       count(CASE WHEN achiever THEN 1 END) OVER (PARTITION BY anchor) AS achievers,
                       row_number() OVER (PARTITION BY anchor ORDER BY h, user_id) AS k_any,
                       row_number() OVER (PARTITION BY anchor, achiever ORDER BY h, user_id) AS k_class
                FROM keyed
            )
            SELECT *, population <= {int(cap)}
                      OR (holdout AND k_any <= {int(cap)})
                      OR (NOT holdout AND achiever AND k_class <= {half})
                      OR (NOT holdout AND NOT achiever AND k_class <= {int(cap)} - least(achievers, {half})) AS kept
            FROM ranked""",
    )
    counted = engine.query(
        con,
        """SELECT anchor, any_value(population) AS population, any_value(achievers) AS achievers,
                  count(*) FILTER (WHERE kept) AS kept
           FROM _gf_sampled GROUP BY anchor HAVING any_value(population) > $cap ORDER BY anchor""",
        {"cap": cap},
    ).to_pylist()
    summary = {
        str(row["anchor"]): {"population": row["population"], "achievers": row["achievers"], "kept": row["kept"]}
        for row in counted
    }
    if summary:
        engine.materialize(con, "_gf_kept", "SELECT row_id FROM _gf_sampled WHERE kept")
        engine.materialize(
            con,
            "_gf_labels",
            """SELECT n.row_id, l.achieved_day
               FROM _gf_labels l JOIN _gf_pop o ON o.row_id = l.row_id
               JOIN (SELECT anchor, user_id, CAST(row_number() OVER (ORDER BY anchor, user_id) - 1 AS BIGINT) AS row_id
                     FROM _gf_pop WHERE row_id IN (SELECT row_id FROM _gf_kept)) n
                 ON n.anchor = o.anchor AND n.user_id = o.user_id""",
        )
        # The columns by name, not * EXCLUDE (row_id): Spark has no EXCLUDE.
        engine.materialize(
            con,
            "_gf_pop",
            """SELECT anchor, user_id, uid, anchor_ts, start_day, slot,
                      CAST(row_number() OVER (ORDER BY anchor, user_id) - 1 AS BIGINT) AS row_id
               FROM _gf_pop WHERE row_id IN (SELECT row_id FROM _gf_kept) ORDER BY row_id""",
        )
        engine.materialize(con, "_gf_uids", "SELECT DISTINCT user_id, uid FROM _gf_pop")
    engine.drop(con, "_gf_sampled")
    engine.drop(con, "_gf_kept")
    return summary


def top_event_types(con: duckdb.DuckDBPyConnection, limit: int, engine: Engine = DUCKDB_ENGINE) -> list[str]:
    """The commonest event types of the lookback windows (sorted by name): the counted ones."""
    rows = engine.query(
        con,
        """SELECT d.event_name FROM _gf_utd d JOIN _gf_pop p ON d.uid = p.uid AND d.day >= p.start_day AND d.day < p.anchor
           GROUP BY 1 ORDER BY sum(d.n) DESC, 1 LIMIT $limit""",
        {"limit": int(limit)},
    )
    return sorted(rows.column(0).to_pylist())


def profile_categories(
    con: duckdb.DuckDBPyConnection, column: str, max_distinct: int, limit: int, engine: Engine = DUCKDB_ENGINE
) -> list[str] | None:
    """The ``limit`` commonest values of a text profile column among the population; None when
    it has more than ``max_distinct`` values (an id or free text, not a category)."""
    col = quote_ident(column)
    rows = (
        engine.query(
            con,
            f"""SELECT {col}, count(*) FROM {PROFILES}
            WHERE {col} IS NOT NULL AND user_id IN (SELECT user_id FROM _gf_uids)
            GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $limit""",
            {"limit": int(max_distinct + 1)},
        )
        .column(0)
        .to_pylist()
    )
    if len(rows) > max_distinct:
        return None
    return rows[:limit]


def wide_features(
    con: duckdb.DuckDBPyConnection,
    spec: FeatureSpec,
    profile_columns: set[str],
    with_labels: bool,
    engine: Engine = DUCKDB_ENGINE,
) -> pl.DataFrame:
    """One row per ``_gf_pop`` row, in ``row_id`` order: ``anchor, user_id, slot``, the fixed
    behaviour and goal-event features, the profile features, and ``achieved_day`` if asked."""
    lookback, params, dialect = int(spec.lookback_days), SqlParams(), engine.dialect
    censored = f"{float(lookback)}"
    windows = [int(w) for w in spec.windows]
    gap = f"CAST({dialect.days_from('d.prev_day', 'd.day')} AS DOUBLE)"
    gap_inside = "FILTER (WHERE d.prev_day >= p.start_day)"
    goal_counts = "".join(
        f", sum(d.n_goal) FILTER (WHERE d.day >= {dialect.days_before('p.anchor', w)}) AS g{w}" for w in windows
    )
    base = [
        f"coalesce({days_between_sql('s.last_ts', 'p.anchor_ts', dialect)}, {censored})",
        "coalesce(s.events, 0)",
        "coalesce(s.active_days, 0)",
        f"coalesce(s.mean_gap, {censored})",
        f"coalesce(s.median_gap, {censored})",
        f"CASE WHEN f.first_ts < p.anchor_ts THEN {days_between_sql('f.first_ts', 'p.anchor_ts', dialect)} ELSE 0 END",
        *[f"coalesce(s.g{w}, 0)" for w in windows],
        f"coalesce({days_between_sql('s.last_goal_ts', 'p.anchor_ts', dialect)}, {censored})",
    ]
    fixed_names = spec.feature_columns[1 : 1 + len(base)]
    selects = [f"CAST({expr} AS FLOAT) AS {quote_ident(name)}" for expr, name in zip(base, fixed_names, strict=True)]
    life_cte, life_join = "", ""
    if spec.lifetime_names:
        anchors = engine.query(con, "SELECT DISTINCT anchor FROM _gf_pop ORDER BY 1").column(0).to_pylist()
        life_cte, exprs = _lifetime_sql(len(spec.value_properties), anchors, params, dialect)
        selects += [f"CAST({e} AS FLOAT) AS {quote_ident(n)}" for e, n in zip(exprs, spec.lifetime_names, strict=True)]
        life_join = "LEFT JOIN life lf ON lf.row_id = p.row_id CROSS JOIN (SELECT min(day) AS day FROM _gf_life) hs"
    for feature in spec.profile:
        col = f"pr.{quote_ident(feature.column)}"
        if feature.column not in profile_columns:  # dropped from the profiles since training
            exprs = ["CAST(NULL AS FLOAT)"] * len(feature.names)
        elif feature.kind == "category":
            exprs = [
                f"CAST({col} IS NOT DISTINCT FROM {params.bind(c, 'VARCHAR')} AS FLOAT)" for c in feature.categories
            ]
        elif feature.kind == "days_before":
            value = f"CAST({col} AS TIMESTAMP)"
            exprs = [
                f"CASE WHEN {value} < p.anchor_ts THEN CAST({days_between_sql(value, 'p.anchor_ts', dialect)} AS FLOAT) END"
            ]
        else:
            exprs = [f"CAST({col} AS FLOAT)"]
        selects += [f"{expr} AS {quote_ident(name)}" for expr, name in zip(exprs, feature.names, strict=True)]
    profile_join = f"LEFT JOIN {PROFILES} pr ON pr.user_id = p.user_id" if profile_columns and spec.profile else ""
    label, label_join = "", ""
    if with_labels:
        label, label_join = ", l.achieved_day", "LEFT JOIN _gf_labels l ON l.row_id = p.row_id"
    sql = f"""
        WITH stats AS (
            SELECT p.row_id, sum(d.n) AS events, count(*) AS active_days, max(d.last_ts) AS last_ts,
                   max(d.last_goal_ts) AS last_goal_ts,
                   avg({gap}) {gap_inside} AS mean_gap, {dialect.median(gap)} {gap_inside} AS median_gap{goal_counts}
            FROM _gf_pop p JOIN _gf_ud d ON d.uid = p.uid AND d.day >= p.start_day AND d.day < p.anchor
            GROUP BY p.row_id
        ){life_cte}
        SELECT p.anchor, p.user_id, p.slot{label}, {", ".join(selects)}
        FROM _gf_pop p
        LEFT JOIN stats s ON s.row_id = p.row_id
        LEFT JOIN _gf_first f ON f.uid = p.uid
        {life_join}
        {profile_join}
        {label_join}
        ORDER BY p.row_id"""
    return _arrow_frame(engine.query(con, sql, params.values))


def _lifetime_sql(
    value_count: int, anchors: Sequence[date], params: SqlParams, dialect: DuckDBDialect = DUCKDB
) -> tuple[str, list[str]]:
    """The ``life`` CTE (per ``_gf_pop`` row, aggregates of ``_gf_life`` before the anchor) and the
    expressions of ``LIFETIME_FEATURES`` then ``value_names``, in order.

    Each day is aggregated once into its stretch (``life_b``: stretch s holds the days from
    the (s-1)-th anchor up to the s-th, of ``anchors`` sorted), and an anchor's row combines
    the stretches before it: a few rows per user instead of every active day once per later
    anchor. Every aggregate combines exactly: sums and counts, min, max, and the last value by
    its time. Stretches are numbered by CASE on the anchors, so both joins are on the user.

    Times with no event are censored at the history's span before the anchor (``hs.day``:
    the population's first event day); mean gap, recency ratio and value mean/last are
    empty (NaN) when undefined."""
    bound = [params.bind(a, "DATE") for a in sorted(anchors)]
    stretch, position = "1", "1"  # no anchors: no rows either
    if bound:
        stretch = "CASE " + " ".join(f"WHEN d.day < {a} THEN {i}" for i, a in enumerate(bound, 1))
        stretch += f" ELSE {len(bound) + 1} END"
        position = "CASE " + " ".join(f"WHEN p.anchor = {a} THEN {i}" for i, a in enumerate(bound, 1)) + " END"

    def value_aggs(alias: str, *, with_time: bool) -> str:
        return "".join(
            f", {dialect.stable_sum(f'{alias}.vs{i}')} AS vs{i}, sum({alias}.vc{i}) AS vc{i},"
            f" {dialect.last_value(f'{alias}.vl{i}', f'{alias}.vt{i}')} AS vl{i}"
            + (f", max({alias}.vt{i}) FILTER (WHERE {alias}.vl{i} IS NOT NULL) AS vt{i}" if with_time else "")
            for i in range(value_count)
        )

    cte = f""",
        life_b AS (
            SELECT d.uid, {stretch} AS stretch, sum(d.n) AS events, count(*) AS active_days,
                   min(d.day) AS first_day, max(d.day) AS last_day, max(d.last_ts) AS last_ts,
                   sum(d.n_goal) AS goal_events, count(*) FILTER (WHERE d.n_goal > 0) AS goal_days,
                   min(d.day) FILTER (WHERE d.n_goal > 0) AS goal_first_day,
                   max(d.day) FILTER (WHERE d.n_goal > 0) AS goal_last_day,
                   max(d.last_goal_ts) AS goal_last_ts{value_aggs("d", with_time=True)}
            FROM _gf_life d
            GROUP BY ALL
        ),
        life AS (
            SELECT p.row_id, sum(b.events) AS events, sum(b.active_days) AS active_days,
                   min(b.first_day) AS first_day, max(b.last_day) AS last_day, max(b.last_ts) AS last_ts,
                   sum(b.goal_events) AS goal_events, sum(b.goal_days) AS goal_days,
                   min(b.goal_first_day) AS goal_first_day, max(b.goal_last_day) AS goal_last_day,
                   max(b.goal_last_ts) AS goal_last_ts{value_aggs("b", with_time=False)}
            FROM _gf_pop p JOIN life_b b ON b.uid = p.uid AND b.stretch <= {position}
            GROUP BY p.row_id
        )"""

    # DATE - DATE is a number of days in DuckDB and an interval in Spark: dialect.days_from.
    def days(earlier: str, later: str) -> str:
        return dialect.days_from(earlier, later)

    span = f"CAST(greatest({days('coalesce(hs.day, p.anchor)', 'p.anchor')}, 0) AS DOUBLE)"
    goal_x = "greatest(coalesce(lf.goal_days, 0) - 1, 0)"
    goal_t_x = f"coalesce({days('lf.goal_first_day', 'lf.goal_last_day')}, 0)"
    exprs = [
        "coalesce(lf.events, 0)",
        "coalesce(lf.active_days, 0)",
        f"coalesce({days_between_sql('lf.last_ts', 'p.anchor_ts', dialect)}, {span})",
        "greatest(coalesce(lf.active_days, 0) - 1, 0)",
        f"coalesce({days('lf.first_day', 'lf.last_day')}, 0)",
        f"coalesce({days('lf.first_day', 'p.anchor')}, 0)",
        "coalesce(lf.goal_events, 0)",
        "coalesce(lf.goal_days, 0)",
        f"coalesce(CAST({days('lf.goal_first_day', 'p.anchor')} AS DOUBLE), {span})",
        f"coalesce({days_between_sql('lf.goal_last_ts', 'p.anchor_ts', dialect)}, {span})",
        goal_x,
        goal_t_x,
        f"coalesce({days('lf.goal_first_day', 'p.anchor')}, {days('lf.first_day', 'p.anchor')}, 0)",
        f"CASE WHEN {goal_x} > 0 THEN {goal_t_x} / {goal_x} END",
        f"CASE WHEN {goal_x} > 0 AND {goal_t_x} > 0 THEN ({days('lf.goal_last_day', 'p.anchor')}) / ({goal_t_x} / {goal_x}) END",
    ]
    for i in range(value_count):
        exprs += [f"coalesce(lf.vs{i}, 0)", f"CASE WHEN lf.vc{i} > 0 THEN lf.vs{i} / lf.vc{i} END", f"lf.vl{i}"]
    return cte, exprs


def long_features(
    con: duckdb.DuckDBPyConnection, spec: FeatureSpec, rows: int, engine: Engine = DUCKDB_ENGINE
) -> pl.DataFrame:
    """The open-ended families, aggregated long and placed by position at the end: counts per
    event type and window, and past-segment flags. One row per ``_gf_pop`` row, in order.

    Long rows are ``(row_id, feature, value)`` for non-zero values only; the pivot writes
    them into a zero matrix by index (a hash pivot costs seconds at a million rows)."""
    dynamic = [n for row in spec.event_type_names for n in row] + list(spec.segment_names)
    position = {name: k for k, name in enumerate(dynamic)}
    matrix = np.zeros((rows, len(dynamic)), dtype=np.float32)
    if spec.event_types and rows:
        _type_counts(con, spec, position, matrix, engine)
    if spec.segments and rows:
        flags = [(s["segmentName"], position[name]) for s, name in zip(spec.segments, spec.segment_names, strict=True)]
        # A table of (name, column), not two unnest() in one SELECT: Spark makes those a cross product.
        engine.upload(
            con,
            "_gf_flagmap",
            pa.table(
                {"segment_name": [n for n, _ in flags], "col": [c for _, c in flags]},
                schema=pa.schema([("segment_name", pa.string()), ("col", pa.int32())]),
            ),
        )
        got = engine.query(
            con,
            """SELECT p.row_id, f.col
               FROM _gf_members m JOIN _gf_pop p ON p.anchor = m.anchor AND p.user_id = m.user_id
               JOIN _gf_flagmap f ON f.segment_name = m.segment_name""",
        )
        matrix[got.column("row_id").to_numpy().astype(np.int64), got.column("col").to_numpy().astype(np.int64)] = 1.0
    return pl.DataFrame(
        {name: matrix[:, k] for k, name in enumerate(dynamic)}, schema=dict.fromkeys(dynamic, pl.Float32)
    )


def _type_counts(
    con: duckdb.DuckDBPyConnection, spec: FeatureSpec, position: dict[str, int], matrix: np.ndarray, engine: Engine
) -> None:
    """Counts per event type and window into ``matrix``: one GROUP BY (user, type) over
    ``_gf_utd`` with a filtered sum per anchor and window, then each (anchor, user) placed at
    its ``row_id``. A single pass instead of one aggregate per anchor halves the work."""
    anchors = engine.query(con, "SELECT DISTINCT anchor FROM _gf_pop ORDER BY 1").column(0).to_pylist()
    windows = [int(w) for w in spec.windows]
    engine.upload(
        con,
        "_gf_typemap",
        pa.table(
            {"event_name": list(spec.event_types), "type_index": list(range(len(spec.event_types)))},
            schema=pa.schema([("event_name", pa.string()), ("type_index", pa.int32())]),
        ),
    )
    days_before = engine.dialect.days_before
    sums = ", ".join(
        f"CAST(coalesce(sum(d.n) FILTER (WHERE d.day >= {days_before(f'DATE {chr(39)}{a.isoformat()}{chr(39)}', w)}"
        f" AND d.day < DATE '{a.isoformat()}'), 0) AS FLOAT) AS a{i}w{j}"
        for i, a in enumerate(anchors)
        for j, w in enumerate(windows)
    )
    got = _numpy(
        engine.query(
            con,
            f"""SELECT d.uid, t.type_index, {sums}
            FROM _gf_utd d JOIN _gf_typemap t ON t.event_name = d.event_name
            GROUP BY d.uid, t.type_index""",
        )
    )
    pop = _numpy(engine.query(con, "SELECT anchor, uid, row_id FROM _gf_pop"))
    uids = np.asarray(got["uid"], dtype=np.int64)
    types = np.asarray(got["type_index"], dtype=np.int64)
    columns = np.array([[position[name] for name in names] for names in spec.event_type_names], dtype=np.int64)
    pop_uid = np.asarray(pop["uid"], dtype=np.int64)
    pop_anchor = np.asarray(pop["anchor"])
    rows_of = np.full(int(pop_uid.max()) + 1, -1, dtype=np.int64)
    for i, anchor in enumerate(anchors):
        rows_of[:] = -1
        here = pop_anchor == np.datetime64(anchor, "D")
        rows_of[pop_uid[here]] = np.asarray(pop["row_id"], dtype=np.int64)[here]
        target = rows_of[uids]
        kept = target >= 0
        for j in range(len(windows)):
            matrix[target[kept], columns[types[kept], j]] = np.asarray(got[f"a{i}w{j}"], dtype=np.float32)[kept]


def _numpy(table: pa.Table) -> dict[str, np.ndarray]:
    """Columns as numpy arrays (dates as datetime64[D]), as DuckDB's ``fetchnumpy``."""
    return {name: table.column(name).to_numpy() for name in table.column_names}
