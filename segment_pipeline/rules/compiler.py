"""Past segments as of a day, compiled to DuckDB queries (contract section 4).

``compile_past_segments`` is the only place that writes segment SQL. Its query yields
``(segment_name, user_id)`` rows and reads the events once:

- ``_flagged``: the events of the widest window whose type some step uses, with one
  boolean per matcher (event type + properties, shared by equal steps of all segments);
- ``_users``: one GROUP BY user over it, with a filtered count per (matcher, window)
  and the time of the first action step per (matcher, window, minCount);
- per segment with ordered actions, a subquery per later step nested in the previous
  one: the minCount-th match at or after the previous step's time, by a join on the
  user and ``ts >= t``.

A segment is then a filter on ``_users`` (counts, inaction count = 0) plus an
``EXISTS`` on the profile for profile equalities, and all are glued by UNION ALL.

Many segments: ``compile_past_segment_chunks`` splits them into chunks of at most
``CHUNK_SIZE`` segments (segments on the same event types together, so they share
matchers), one such query each, whose rows the caller appends. The SQL's nesting
depth depends on the steps of one segment only, never on how many segments there are
(DuckDB binds each CTE of a WITH list inside the previous one, so a CTE per segment
hit its "Max expression depth" near 500 ordered segments); the chunks bound the width
of ``_flagged``/``_users`` and the time DuckDB spends planning one query.

Every value from the config (event types, property keys and values, profile values,
segment names) is a bound parameter; profile column names are quoted and must exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import partial
from typing import Any

import duckdb

from segment_pipeline.config.segments import ALL_USERS, EventStep, SegmentDefinition
from segment_pipeline.rules.dialect import DUCKDB, DuckDBDialect
from segment_pipeline.storage.warehouse import quote_ident

EVENTS = "analytics.event_snapshots"
# Segments per query: wide enough that ~20 segments stay one scan, narrow enough that
# thousands keep each query's flag columns and planning time small.
CHUNK_SIZE = 100
PROFILES = "analytics.profiles"

_INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
NUMERIC_TYPES = frozenset(_INTEGER_TYPES | _FLOAT_TYPES | {"DECIMAL"})
_HUGEINT_RANGE = range(-(2**127), 2**127)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?")


@dataclass(frozen=True)
class CompiledQuery:
    """SQL yielding ``(segment_name VARCHAR, user_id VARCHAR)`` rows, and its named parameters."""

    sql: str
    params: dict[str, Any]


def window_end(as_of: date) -> datetime:
    """D+1 00:00: everything "as of D" is strictly before it (contract section 3)."""
    return datetime.combine(as_of + timedelta(days=1), time())


def window_start(as_of: date, timeframe_days: int) -> datetime:
    return window_end(as_of) - timedelta(days=timeframe_days)


def profile_value_kind(column_type: str, value: Any) -> str | None:
    """How a profile column of ``column_type`` compares with a config value, or None when
    the two types can never be equal (the equality then matches nobody)."""
    base = column_type.upper().split("(")[0].strip()
    numeric = base in _INTEGER_TYPES or base in _FLOAT_TYPES or base == "DECIMAL"
    if type(value) is bool:
        return "boolean" if base == "BOOLEAN" else None
    if type(value) in (int, float):
        return "number" if numeric else None
    if type(value) is date:
        return "date" if base == "DATE" else None
    if type(value) is str:
        if base == "VARCHAR":
            return "text"
        if base == "DATE" and _ISO_DATE.fullmatch(value) and _parses(date.fromisoformat, value):
            return "date"
        if base == "TIMESTAMP" and _ISO_TIMESTAMP.fullmatch(value) and _parses(datetime.fromisoformat, value):
            return "timestamp"
    return None


def _parses(parse, text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


@dataclass
class SqlParams:
    """Named parameters; an equal value of the same type is bound once, so repeated
    expressions stay identical and DuckDB computes them once per row."""

    values: dict[str, Any] = field(default_factory=dict)
    names: dict[tuple, str] = field(default_factory=dict)

    def bind(self, value: Any, sql_type: str) -> str:
        key = (type(value), value, sql_type)  # the type too: 1, 1.0 and True are equal dict keys
        if key not in self.names:
            self.names[key] = f"p{len(self.values)}"
            self.values[self.names[key]] = value
        return f"CAST(${self.names[key]} AS {sql_type})"


def property_condition(key: str, value: Any, params: SqlParams, dialect: DuckDBDialect = DUCKDB) -> str:
    """The event's property ``key`` equals ``value``, with JSON types kept apart (``dialect.property_test``)."""
    return dialect.property_test(key, value, params)


def _profile_test(column_type: str | None, value: Any) -> tuple[str, str, Any] | None:
    """How a profile column can equal ``value``: (column expression, SQL type, value), or None."""
    if column_type is None:
        return None
    kind = profile_value_kind(column_type, value)
    if kind == "boolean":
        return "{}", "BOOLEAN", value
    if kind == "text":
        return "{}", "VARCHAR", value
    if kind == "date":
        return "{}", "DATE", value if type(value) is date else date.fromisoformat(value)
    if kind == "timestamp":
        return "{}", "TIMESTAMP", datetime.fromisoformat(value)
    if kind == "number":
        if column_type.upper().split("(")[0].strip() in _INTEGER_TYPES:
            if (type(value) is float and not value.is_integer()) or int(value) not in _HUGEINT_RANGE:
                return None
            return "{}", "HUGEINT", int(value)
        if float(value) != value:
            return None
        return "CAST({} AS DOUBLE)", "DOUBLE", float(value)
    return None


class _Compiler:
    """Builds the two CTEs, ``_flagged`` (window events x matcher flags) and ``_users``
    (per-user counts and first step times, one GROUP BY), and a SELECT per segment."""

    def __init__(
        self,
        as_of: date,
        profile_columns: Mapping[str, str] | None,
        events: str,
        profiles: str,
        dialect: DuckDBDialect = DUCKDB,
        anchors: str | None = None,
    ):
        self.as_of = as_of
        self.anchors = anchors
        self.dialect = dialect
        self.profile_columns = profile_columns
        self.events = events
        self.profiles = profiles
        self.params = SqlParams()
        self.matchers: dict[tuple, int] = {}
        self.matcher_steps: list[EventStep] = []
        self.user_columns: dict[tuple, tuple[str, str]] = {}

    def matcher(self, step: EventStep) -> int:
        if step.matcher not in self.matchers:
            self.matchers[step.matcher] = len(self.matcher_steps)
            self.matcher_steps.append(step)
        return self.matchers[step.matcher]

    def start(self, days: int) -> str:
        return self.params.bind(window_start(self.as_of, days), "TIMESTAMP")

    def user_column(self, kind: str, step: EventStep, days: int) -> str:
        """A ``_users`` column: how many of the user's window events match ``step`` ("count"),
        or the time of the minCount-th earliest one ("nth")."""
        m, n = self.matcher(step), step.min_count if kind == "nth" else 0
        key = (kind, m, days, n)
        if key not in self.user_columns:
            # Anchored: windows end at each row's anchor 00:00, so a whole-day start is a day test.
            since = (
                f"day >= {self.dialect.days_before('anchor', days)}" if self.anchors else f"ts >= {self.start(days)}"
            )
            where = f"FILTER (WHERE f{m} AND {since})"
            if kind == "count":
                expression = f"count(*) {where}"
            elif n == 1:
                expression = f"min(ts) {where}"
            else:
                expression = self.dialect.nth_smallest("ts", n, where)
            self.user_columns[key] = (f"c{len(self.user_columns)}", expression)
        return self.user_columns[key][0]

    def flagged_events_cte(self, earliest: datetime, widest: int) -> str:
        """One scan: the events of the widest window that match some step, with one boolean
        column ``f<m>`` per matcher (event type + properties) telling whether they match it."""
        types = {step.event_type: self.params.bind(step.event_type, "VARCHAR") for step in self.matcher_steps}
        flags = []
        for m, step in enumerate(self.matcher_steps):
            conditions = [
                property_condition(k, v, self.params, self.dialect) for k, v in (step.event_properties or {}).items()
            ]
            # CASE, not AND: the JSON is only read for events of the step's type.
            test = f"({' AND '.join(conditions)}) IS TRUE" if conditions else "TRUE"
            flags.append(f"CASE WHEN event_name = {types[step.event_type]} THEN {test} ELSE FALSE END AS f{m}")
        scan = f"""FROM {self.events}
    WHERE ts >= {self.params.bind(earliest, "TIMESTAMP")} AND ts < {self.params.bind(window_end(self.as_of), "TIMESTAMP")}
      AND event_name IN ({", ".join(types.values())})"""
        columns = ("," + chr(10) + "        ").join(flags)
        if not self.anchors:
            return f"""_flagged AS{self.dialect.materialized} (
    SELECT user_id, ts,
        {columns}
    {scan}
)"""
        # Each event's matchers are tested once, then the event is joined to every anchor
        # whose widest window holds it: one scan for all anchors.
        return f"""_tested AS{self.dialect.materialized} (
    SELECT user_id, ts, CAST(ts AS DATE) AS day,
        {columns}
    {scan}
),
_flagged AS{self.dialect.materialized} (
    SELECT a.anchor, t.*
    FROM _tested t JOIN {self.anchors} a
      ON t.day >= {self.dialect.days_before("a.anchor", widest)} AND t.day < a.anchor
)"""

    def users_cte(self) -> str:
        columns = "".join(f",\n        {expression} AS {name}" for name, expression in self.user_columns.values())
        key = "anchor, user_id" if self.anchors else "user_id"
        return f"_users AS{self.dialect.materialized} (\n    SELECT {key}{columns}\n    FROM _flagged GROUP BY {key}\n)"

    def segment(self, segment: SegmentDefinition) -> str:
        """A SELECT of ``(segment_name, user_id)`` for one past segment."""
        days = segment.timeframe_days
        first, *later = segment.actions
        conditions = []
        # Anchored, every row is an (anchor, user): the anchor goes along wherever the user does.
        a = self.anchors is not None
        key, e_key = ("user_id, anchor", "e.user_id, e.anchor") if a else ("user_id", "e.user_id")
        same_ep, same_su = (" AND e.anchor = p.anchor", " AND u.anchor = s.anchor") if a else ("", "")
        if not later:
            conditions.append(f"u.{self.user_column('count', first, days)} >= {first.min_count}")
            source = "_users u"
        else:
            start = self.user_column("nth", first, days)
            # Nested subqueries, not a CTE per step: their depth is the segment's steps.
            previous = f"SELECT {key}, {start} AS t FROM _users WHERE {start} IS NOT NULL"
            for k, step in enumerate(later, start=1):
                n = step.min_count
                matches = (
                    f"_flagged e JOIN ({previous}) p ON e.user_id = p.user_id{same_ep} AND e.ts >= p.t "
                    f"WHERE e.f{self.matcher(step)}"
                )
                time_of_match = (
                    ""
                    if k == len(later)
                    else (", min(e.ts) AS t" if n == 1 else f", {self.dialect.nth_smallest('e.ts', n)} AS t")
                )
                previous = f"SELECT {e_key}{time_of_match} FROM {matches} GROUP BY {e_key} HAVING count(*) >= {n}"
            source = f"({previous}) s JOIN _users u ON u.user_id = s.user_id{same_su}"
        if segment.inaction is not None:
            conditions.append(f"u.{self.user_column('count', segment.inaction, days)} = 0")
        if segment.profile_equalities:
            conditions.append(self.profile_condition(segment))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        columns = "u.user_id, u.anchor" if self.anchors else "u.user_id"
        return f"SELECT {self.params.bind(segment.name, 'VARCHAR')} AS segment_name, {columns} FROM {source}{where}"

    def profile_condition(self, segment: SegmentDefinition) -> str:
        columns = self.profile_columns or {}
        tests = [(c, test) for c, v in segment.profile_equalities if (test := _profile_test(columns.get(c), v))]
        if self.profile_columns is None or len(tests) < len(segment.profile_equalities):
            return "FALSE"
        sql = " AND ".join(
            f"{expression.format('p.' + quote_ident(c))} = {self.params.bind(bound, sql_type)}"
            for c, (expression, sql_type, bound) in tests
        )
        return f"EXISTS (SELECT 1 FROM {self.profiles} p WHERE p.user_id = u.user_id AND {sql})"

    def all_users(self) -> str:
        name = self.params.bind(ALL_USERS, "VARCHAR")
        end = self.params.bind(window_end(self.as_of), "TIMESTAMP")
        users = f"SELECT user_id FROM {self.events} WHERE ts < {end}"
        if self.profile_columns is not None:
            users += f" UNION SELECT user_id FROM {self.profiles}"
        else:
            users = f"SELECT DISTINCT user_id FROM ({users})"
        return f"SELECT {name} AS segment_name, user_id FROM ({users})"


def compile_past_segments(
    segments: Sequence[SegmentDefinition],
    *,
    as_of: date,
    profile_columns: Mapping[str, str] | None = None,
    include_all_users: bool = False,
    events: str = EVENTS,
    profiles: str = PROFILES,
    dialect: DuckDBDialect = DUCKDB,
) -> CompiledQuery:
    """The one query of every given past segment's members as of ``as_of`` (plus All Users if asked).

    ``profile_columns`` maps each profile column to its DuckDB type (None: there is no
    profiles table). ``events`` and ``profiles`` are table references from code, never config.
    For more than a few dozen segments, run ``compile_past_segment_chunks`` instead.
    """
    _refuse_live(segments)
    return _compile(segments, as_of, as_of, None, profile_columns, include_all_users, events, profiles, dialect)


def _compile(
    segments: Sequence[SegmentDefinition],
    first_as_of: date,
    as_of: date,
    anchors: str | None,
    profile_columns: Mapping[str, str] | None,
    include_all_users: bool,
    events: str,
    profiles: str,
    dialect: DuckDBDialect,
) -> CompiledQuery:
    compiler = _Compiler(as_of, profile_columns, events, profiles, dialect, anchors)
    selects = [compiler.segment(s) for s in segments]
    if include_all_users:
        selects.append(compiler.all_users())
    if not selects:
        anchor = ", CAST(NULL AS DATE) AS anchor" if anchors else ""
        return CompiledQuery(
            f"SELECT CAST(NULL AS VARCHAR) AS segment_name, CAST(NULL AS VARCHAR) AS user_id{anchor} WHERE FALSE", {}
        )
    with_clause = ""
    if segments:
        widest = max(s.timeframe_days for s in segments)
        ctes = [compiler.flagged_events_cte(window_start(first_as_of, widest), widest), compiler.users_cte()]
        with_clause = "WITH " + ",\n".join(ctes) + "\n"
    return CompiledQuery(with_clause + "\nUNION ALL\n".join(selects), compiler.params.values)


def compile_anchored_segment_chunks(
    segments: Sequence[SegmentDefinition],
    *,
    as_of_days: Sequence[date],
    anchors: str,
    profile_columns: Mapping[str, str] | None = None,
    events: str = EVENTS,
    profiles: str = PROFILES,
    chunk_size: int = CHUNK_SIZE,
    dialect: DuckDBDialect = DUCKDB,
) -> list[CompiledQuery]:
    """``compile_past_segment_chunks`` for several days in one scan of the events per chunk:
    rows ``(segment_name, user_id, anchor)``, a member as of D giving ``anchor`` D + 1.

    ``anchors`` is a table reference from code with one DATE column ``anchor``, holding
    D + 1 for each D of ``as_of_days`` (and nothing else); All Users is not offered."""
    _refuse_live(segments)
    if not as_of_days or not segments:
        return []
    first, last = min(as_of_days), max(as_of_days)
    return [
        _compile(chunk, first, last, anchors, profile_columns, False, events, profiles, dialect)
        for chunk in _chunked(segments, chunk_size)
    ]


def compile_past_segment_chunks(
    segments: Sequence[SegmentDefinition],
    *,
    as_of: date,
    profile_columns: Mapping[str, str] | None = None,
    include_all_users: bool = False,
    events: str = EVENTS,
    profiles: str = PROFILES,
    chunk_size: int = CHUNK_SIZE,
    dialect: DuckDBDialect = DUCKDB,
) -> list[CompiledQuery]:
    """Queries whose rows together are ``compile_past_segments``' rows, each over at most
    ``chunk_size`` segments (All Users in a query of its own); none when there is nothing to do.

    Segments on the same event types go in the same chunk, so its one scan reads fewer
    event types and its matchers serve more segments.
    """
    _refuse_live(segments)
    chunks = _chunked(segments, chunk_size)
    compile_chunk = partial(
        compile_past_segments,
        as_of=as_of,
        profile_columns=profile_columns,
        events=events,
        profiles=profiles,
        dialect=dialect,
    )
    queries = [compile_chunk(chunk) for chunk in chunks]
    if include_all_users:
        queries.append(compile_chunk([], include_all_users=True))
    return queries


def _chunked(segments: Sequence[SegmentDefinition], chunk_size: int) -> list[list[SegmentDefinition]]:
    """Segments on the same event types together, at most ``chunk_size`` a chunk."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
    ordered = sorted(segments, key=lambda s: sorted({step.event_type for step in s.steps}))
    return [ordered[i : i + chunk_size] for i in range(0, len(ordered), chunk_size)]


def _refuse_live(segments: Sequence[SegmentDefinition]) -> None:
    live = [s.name for s in segments if not s.is_past]
    if live:
        raise ValueError(f"only past segments are evaluated as of a day; live: {', '.join(live)}")


def read_profile_columns(con: duckdb.DuckDBPyConnection, profiles: str = PROFILES) -> dict[str, str] | None:
    """Profile column name -> DuckDB type, without ``user_id``; None when there is no such table.

    Read from the catalog rather than by querying the table: DuckDB's Python client would
    otherwise scan a Python variable of the same name when the table is missing.
    """
    schema, _, table = profiles.rpartition(".")
    rows = con.execute(
        """SELECT column_name, data_type FROM duckdb_columns()
           WHERE database_name = current_database() AND schema_name = ? AND table_name = ?
           ORDER BY column_index""",
        [schema.strip('"') or "main", table.strip('"')],
    ).fetchall()
    if not rows:
        return None
    return {name: kind for name, kind in rows if name != "user_id"}


def evaluate_past_segments(
    con: duckdb.DuckDBPyConnection,
    segments: Sequence[SegmentDefinition],
    as_of: date,
    *,
    include_all_users: bool = False,
    events: str = EVENTS,
    profiles: str = PROFILES,
    chunk_size: int = CHUNK_SIZE,
) -> list[tuple[str, str]]:
    """Run the compiled queries: sorted ``(segment_name, user_id)`` pairs as of ``as_of``."""
    queries = compile_past_segment_chunks(
        segments,
        as_of=as_of,
        profile_columns=read_profile_columns(con, profiles),
        include_all_users=include_all_users,
        events=events,
        profiles=profiles,
        chunk_size=chunk_size,
    )
    return sorted(row for query in queries for row in con.execute(query.sql, query.params).fetchall())
