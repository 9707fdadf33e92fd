"""Per user and day, a goal's events: counts, first and last time, and sums of numeric properties.

Lifetime features and achievers need, over all history, only these per-day aggregates of
the events that match a goal. Reading them from the snapshot costs a scan of every event
(and its JSON) every night; this table is built once per goal definition and then folds in
only the snapshot rows added since (``rowid`` at or above the mark): a night costs its new
rows. One table per definition (``signature``: the goal events and numeric properties):

    user_id, day, n_goal, first_goal_ts, last_goal_ts,
    vs<i> (sum), vc<i> (count of values), vl<i> (last value), vt<i> (its time)  per property i

The mark records the snapshot's next row id and row count it covers. The snapshot is
append-only; if rows were ever deleted (the count no longer adds up) the table is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import duckdb

from segment_pipeline.config.goals import GoalEvent
from segment_pipeline.goals.matching import SqlParams, event_types_condition, goal_event_condition
from segment_pipeline.rules.dialect import DUCKDB, DuckDBDialect
from segment_pipeline.storage.warehouse import one_row, scalar

EVENTS = "analytics.event_snapshots"
MARKS = "pipeline_state.goal_rollup_marks"
_MARKS_DDL = "signature VARCHAR PRIMARY KEY, next_rowid BIGINT NOT NULL, snapshot_rows BIGINT NOT NULL"


def available(con: duckdb.DuckDBPyConnection) -> bool:
    """Rollups can answer exactly: the load's summaries cover the snapshot, and the connection
    may write (a read-only reader takes the events instead of building a rollup)."""
    from segment_pipeline.ingest import state

    readonly = con.execute(
        "SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return not (readonly and readonly[0]) and state.is_current(con)


def signature(goal_events: Sequence[GoalEvent], value_properties: Sequence[str]) -> str:
    text = json.dumps(
        [[e.model_dump(mode="json", by_alias=True) for e in goal_events], list(value_properties)], sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def table_name(goal_events: Sequence[GoalEvent], value_properties: Sequence[str]) -> str:
    return f"pipeline_state.goal_days_{signature(goal_events, value_properties)}"


def value_columns(value_properties: Sequence[str], params: SqlParams, dialect: DuckDBDialect = DUCKDB) -> str:
    """``, v0, v1 ...``: each numeric property of an event (NULL when absent or not a number)."""
    return "".join(
        f", {dialect.json_number(params.bind(dialect.json_key(key), 'VARCHAR'))} AS v{i}"
        for i, key in enumerate(value_properties)
    )


def value_aggregates(count: int, *, alias: str = "", goal_only: str = "", dialect: DuckDBDialect = DUCKDB) -> str:
    """Per group, for each ``v<i>`` of ``value_columns``: sum, count, last value and its time.
    ``goal_only`` (code, e.g. ``e.is_goal``) restricts them to goal events."""
    a = alias
    only = f" AND {goal_only}" if goal_only else ""
    where = f" FILTER (WHERE {goal_only})" if goal_only else ""
    # (ts, value): of two goal events at the same instant the larger value is the last, every run.
    return "".join(
        f", {dialect.stable_sum(f'{a}v{i}', where)} AS vs{i}, count({a}v{i}){where} AS vc{i}"
        f", {dialect.last_value(f'{a}v{i}', f'{a}ts')} FILTER (WHERE {a}v{i} IS NOT NULL{only}) AS vl{i}"
        f", max({a}ts) FILTER (WHERE {a}v{i} IS NOT NULL{only}) AS vt{i}"
        for i in range(count)
    )


def _aggregate_sql(
    goal_events: Sequence[GoalEvent], value_properties: Sequence[str], rows_filter: str
) -> tuple[str, dict]:
    """Per user and day, the goal events of the snapshot rows that pass ``rows_filter`` (code, no values)."""
    params = SqlParams()
    types, is_goal = event_types_condition(goal_events, params), goal_event_condition(goal_events, params)
    values = value_columns(value_properties, params)
    aggregates = value_aggregates(len(value_properties))
    sql = f"""SELECT user_id, CAST(ts AS DATE) AS day, count(*) AS n_goal, min(ts) AS first_goal_ts,
                     max(ts) AS last_goal_ts{aggregates}
              FROM (SELECT user_id, ts{values} FROM {EVENTS}
                    WHERE {types} AND {is_goal} AND {rows_filter})
              GROUP BY ALL"""
    return sql, params.values


def _merge_sql(value_count: int) -> str:
    """Partial rows of the same (user, day) into one."""
    merged = "".join(
        f", {DUCKDB.stable_sum(f'vs{i}')} AS vs{i}, sum(vc{i}) AS vc{i}"
        f", arg_max(vl{i}, (vt{i}, vl{i})) FILTER (WHERE vt{i} IS NOT NULL) AS vl{i}"
        f", max(vt{i}) AS vt{i}"
        for i in range(value_count)
    )
    return f"""SELECT user_id, day, sum(n_goal) AS n_goal, min(first_goal_ts) AS first_goal_ts,
                      max(last_goal_ts) AS last_goal_ts{merged}"""


def _snapshot_extent(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(next row id, rows) of the snapshot."""
    next_rowid, rows = one_row(con, f"SELECT coalesce(max(rowid) + 1, 0), count(*) FROM {EVENTS}")
    return int(next_rowid), int(rows)


def ensure(
    con: duckdb.DuckDBPyConnection, goal_events: Sequence[GoalEvent], value_properties: Sequence[str] = ()
) -> str:
    """The goal's rollup table, brought up to date with the snapshot; returns its name."""
    table = table_name(goal_events, value_properties)
    sig = signature(goal_events, value_properties)
    con.execute(f"CREATE TABLE IF NOT EXISTS {MARKS} ({_MARKS_DDL})")
    next_rowid, rows = _snapshot_extent(con)
    mark = con.execute(f"SELECT next_rowid, snapshot_rows FROM {MARKS} WHERE signature = ?", [sig]).fetchone()
    exists = scalar(
        con,
        """SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()
           AND schema_name = 'pipeline_state' AND table_name = ?""",
        [table.split(".", 1)[1]],
    )
    if mark is not None and exists and mark == (next_rowid, rows):
        return table
    own = _begin(con)
    try:
        added = 0
        if mark is not None and exists:
            added = scalar(con, f"SELECT count(*) FROM {EVENTS} WHERE rowid >= ?", [mark[0]])
        if mark is None or not exists or mark[1] + added != rows:
            aggregate, params = _aggregate_sql(goal_events, value_properties, "TRUE")
            con.execute(f"CREATE OR REPLACE TABLE {table} AS {aggregate} ORDER BY day, user_id", params)
        else:
            aggregate, params = _aggregate_sql(goal_events, value_properties, f"rowid >= {int(mark[0])}")
            con.execute(f"CREATE OR REPLACE TEMP TABLE _goal_rollup_new AS {aggregate}", params)
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE _goal_rollup_old AS
                    SELECT r.* FROM {table} r SEMI JOIN _goal_rollup_new n ON r.user_id = n.user_id AND r.day = n.day
                    WHERE r.day BETWEEN (SELECT min(day) FROM _goal_rollup_new) AND (SELECT max(day) FROM _goal_rollup_new)"""
            )
            con.execute(
                f"""DELETE FROM {table} r USING _goal_rollup_old o
                    WHERE r.day BETWEEN (SELECT min(day) FROM _goal_rollup_old) AND (SELECT max(day) FROM _goal_rollup_old)
                      AND r.user_id = o.user_id AND r.day = o.day"""
            )
            con.execute(
                f"""INSERT INTO {table} {_merge_sql(len(value_properties))}
                    FROM (SELECT * FROM _goal_rollup_new UNION ALL BY NAME SELECT * FROM _goal_rollup_old)
                    GROUP BY user_id, day ORDER BY day, user_id"""
            )
            con.execute("DROP TABLE _goal_rollup_new; DROP TABLE _goal_rollup_old")
        con.execute(f"INSERT OR REPLACE INTO {MARKS} VALUES (?, ?, ?)", [sig, next_rowid, rows])
    except BaseException:
        if own:
            con.execute("ROLLBACK")
        raise
    if own:
        con.execute("COMMIT")
    return table


def _begin(con: duckdb.DuckDBPyConnection) -> bool:
    """Start a transaction unless the caller is inside one already (then theirs keeps it atomic)."""
    try:
        con.execute("BEGIN TRANSACTION")
    except duckdb.TransactionException:
        return False
    return True
