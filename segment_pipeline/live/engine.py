"""Live segments (contract section 4): which users enter, and when, as events arrive.

- Subtype 1: every new event matching the action enters the user at the event's ``ts``.
- Subtype 2: an action at ``t`` arms a pending entry with deadline ``t + N``
  (``N`` = the action's ``expTimeframe``). A matching inaction with ``ts`` in
  ``[t, t + N)`` cancels it; otherwise the user enters at ``t + N``.

Out-of-order events. The watermark is wall-clock time: ``now - late_tolerance``. An
entry is emitted only when its deadline is at or before the watermark, so an inaction
that arrives up to ``late_tolerance`` after its own ``ts`` still cancels. Wall clock
rather than "latest event seen" so that deadlines fire even when no events come in.
An inaction arriving later than that is too late: the entry has been sent.

Re-arming. A (segment, user) pair holds at most one pending entry: actions while one
is pending are absorbed by it. Once it resolves (at its deadline when emitted, at the
inaction's ``ts`` when cancelled), the next action at or after that moment arms a new
one. The pair's state is replayed from its stored matching events since its last
final resolution (``armed_from``: a resolution is final once the watermark has passed
it) every time it gets a new event, so the outcome depends only on the events' ``ts``,
not on the order they arrive in, as long as each arrives within the tolerance. A
cancellation takes effect at once (the pending entry is dropped) but is recorded in
``live_cancelled`` only once final, when the pair is next replayed.

First start. What was there before the live store was first used is history, not live:
``start_watermark`` records the files present as processed (without reading them) and
``history_until`` = first tick's clock - late tolerance; events stamped before it are
ignored wherever they land later. Without that, a first start would post months-old events.

Poison events. A row the event load would reject (empty user_id, properties that are not
a JSON object, a broken line...), properties over ``MAX_PROPERTIES_BYTES`` or nested
deeper than ``MAX_PROPERTIES_DEPTH``, and a file that cannot be read at all are each
recorded in ``pipeline_state.live_rejected`` with the reason; the rest of the batch goes on.

Idempotence. Events are keyed by ``event_id`` (or, without one, a hash of the row);
an event seen before is skipped, and entries are keyed by (segment, user, entered_at)
in the outbox, so re-processing the same events never enters anyone twice.

Subtype 2 with several actions: the actions must follow each other, each within the
previous one's ``expTimeframe`` (earliest match first); the chain's last action then
plays the part of the single action above (its time + its ``expTimeframe`` is the
deadline). A chain counts when its last action is at or after the previous resolution.
A live segment with ``minCount`` > 1 is refused with an error (it has no live meaning yet).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
import polars as pl

from segment_pipeline.config.segments import EventStep, SegmentDefinition
from segment_pipeline.ingest.normalize import classify_sql
from segment_pipeline.ingest.sources import SourceError, SourceFile
from segment_pipeline.ingest.staging import STAGED_TABLE_DDL, stage_file, typed_fields
from segment_pipeline.live import outbox
from segment_pipeline.live.outbox import Entry, enqueue, utc_naive
from segment_pipeline.live.tags import apply_live_tags
from segment_pipeline.live.timeline import Match, complete_chains, simulate
from segment_pipeline.rules.compiler import SqlParams, property_condition
from segment_pipeline.settings import LIVE_LATE_TOLERANCE_SECONDS
from segment_pipeline.storage.warehouse import one_row, quote_ident, scalar, transaction

EVENTS = "pipeline_state.live_events"
MATCHES = "pipeline_state.live_matches"
PENDING = "pipeline_state.live_pending"
ARMED = "pipeline_state.live_armed"
CANCELLED = "pipeline_state.live_cancelled"
FILES = "pipeline_state.live_files"
HISTORY = "pipeline_state.live_history"
REJECTED = "pipeline_state.live_rejected"

# Limits on a live event's properties: they are parsed and re-sent in every webhook body, so a
# huge or absurdly nested one would stall each tick (Python's json stops near 1,000 levels).
MAX_PROPERTIES_BYTES = 64 * 1024
MAX_PROPERTIES_DEPTH = 64
_RAW_KEPT = 2000  # characters of a rejected row kept for the record

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS pipeline_state;
-- every processed event that matched some live step (its id makes re-reads no-ops)
CREATE TABLE IF NOT EXISTS {EVENTS} (
    event_id VARCHAR PRIMARY KEY, user_id VARCHAR, event_name VARCHAR, ts TIMESTAMP, properties VARCHAR,
    processed_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS {MATCHES} (
    segment_name VARCHAR, role VARCHAR, event_id VARCHAR, user_id VARCHAR, ts TIMESTAMP,
    PRIMARY KEY (segment_name, role, event_id)
);
CREATE TABLE IF NOT EXISTS {PENDING} (
    segment_name VARCHAR, user_id VARCHAR, action_ts TIMESTAMP, deadline TIMESTAMP, event_id VARCHAR,
    PRIMARY KEY (segment_name, user_id)
);
CREATE TABLE IF NOT EXISTS {ARMED} (
    segment_name VARCHAR, user_id VARCHAR, armed_from TIMESTAMP, PRIMARY KEY (segment_name, user_id)
);
CREATE TABLE IF NOT EXISTS {CANCELLED} (
    segment_name VARCHAR, user_id VARCHAR, action_ts TIMESTAMP, action_event_id VARCHAR,
    inaction_ts TIMESTAMP, inaction_event_id VARCHAR, PRIMARY KEY (segment_name, user_id, action_event_id)
);
CREATE TABLE IF NOT EXISTS {FILES} (
    path VARCHAR PRIMARY KEY, size_bytes BIGINT, modified_ns BIGINT, processed_at TIMESTAMP
);
-- one row, written on the first start: events stamped before history_until are history, not live
CREATE TABLE IF NOT EXISTS {HISTORY} (started_at TIMESTAMP NOT NULL, history_until TIMESTAMP, files_present INTEGER);
CREATE TABLE IF NOT EXISTS {REJECTED} (
    source VARCHAR, event_id VARCHAR, reason VARCHAR NOT NULL, raw VARCHAR, rejected_at TIMESTAMP NOT NULL
);
"""


@dataclass
class ProcessResult:
    files_read: int = 0  # process_files only: files new or changed since last processed
    events_read: int = 0
    events_new: int = 0  # not seen before, with user_id, event_name and ts
    matches: int = 0  # (segment, step) matches among the new events
    entries: list[Entry] = field(default_factory=list)  # newly written to the outbox
    cancelled: int = 0
    pending: int = 0  # pending entries after this call, all segments
    events_history: int = 0  # stamped before the first start's history_until: not live
    rejected: int = 0  # rows, poison events and unreadable files recorded in live_rejected


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the state and outbox tables (outside the caller's transactions, so a rollback
    of a batch never takes the tables with it)."""
    con.execute(_DDL)
    outbox.ensure_tables(con)


def supported(segment: SegmentDefinition) -> bool:
    if any(step.min_count > 1 for step in segment.steps):
        return False  # minCount has no live meaning yet: refuse rather than ignore it
    return segment.segment_type == "live" and (
        (segment.subtype == 1 and len(segment.steps) == 1)
        or (segment.subtype == 2 and len(segment.steps) >= 2 and segment.inaction is segment.steps[-1])
    )


def _action_roles(segment: SegmentDefinition) -> list[tuple[str, EventStep]]:
    """Step roles: ``action`` for the first action, ``action1``, ``action2``... for the next ones."""
    return [("action" if k == 0 else f"action{k}", step) for k, step in enumerate(segment.actions)]


def _live(segments: list[SegmentDefinition]) -> list[SegmentDefinition]:
    unsupported = [s.name for s in segments if s.segment_type == "live" and not supported(s)]
    if unsupported:
        raise ValueError(
            f"live segment(s) {', '.join(unsupported)}: only subtype 1 (one action) and subtype 2 "
            "(ordered actions, then one inaction), without minCount, are evaluated live"
        )
    return [s for s in segments if s.segment_type == "live"]


def _source_sql(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    """The valid events of ``ref`` in the snapshot's shape, typed, checked and given their
    ``event_id`` by the event load's own rules (``ingest/normalize.py``), so the same event
    read here or from the snapshot has one id."""
    types = {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {ref}").fetchall()}
    missing = [c for c in ("user_id", "event_name", "ts") if c not in types]
    if missing:
        raise ValueError(f"live events from {ref}: missing column(s) {', '.join(missing)}")
    staged = f"""(SELECT NULL::VARCHAR AS source, row_number() OVER () AS row_no, NULL::VARCHAR AS raw_json,
                         {typed_fields(types)}, NULL::VARCHAR AS malformed, 0 AS file_idx
                  FROM {ref})"""
    return f"SELECT event_id, user_id, event_name, ts, properties FROM ({classify_sql(staged)}) WHERE reason IS NULL"


def _step_condition(step: EventStep, params: SqlParams) -> str:
    parts = [f"event_name = {params.bind(step.event_type, 'VARCHAR')}"]
    parts += [property_condition(k, v, params) for k, v in (step.event_properties or {}).items()]
    return " AND ".join(parts)


def process_events(
    con: duckdb.DuckDBPyConnection,
    segments: list[SegmentDefinition],
    events: pl.DataFrame | str,
    *,
    now: datetime,
    late_tolerance_seconds: float = LIVE_LATE_TOLERANCE_SECONDS,
) -> ProcessResult:
    """Apply new events (a DataFrame, or a table/view name such as a slice of
    ``analytics.event_snapshots``) to every live segment, in one transaction: matches,
    pending entries, and entries due by the watermark, which are written to the outbox.
    Also flushes any other pending entry whose deadline passed. Rows without user_id,
    event_name or a parseable ts, or whose properties are not a JSON object, are skipped
    (the event load rejects and reports them)."""
    live = _live(segments)
    ensure_tables(con)
    if isinstance(events, pl.DataFrame):
        con.register("_live_input", events)
        ref = "_live_input"
    else:
        ref = ".".join(quote_ident(part) for part in events.split("."))
    try:
        con.execute("SET TimeZone = 'UTC'")
        with transaction(con):
            return _process(con, live, _source_sql(con, ref), now, late_tolerance_seconds)
    finally:
        if isinstance(events, pl.DataFrame):
            con.unregister("_live_input")


def process_files(
    con: duckdb.DuckDBPyConnection,
    segments: list[SegmentDefinition],
    files: list[SourceFile],
    *,
    now: datetime,
    late_tolerance_seconds: float = LIVE_LATE_TOLERANCE_SECONDS,
) -> ProcessResult:
    """Apply the events of source files (``ingest.sources.discover``) that changed since they
    were last processed: read like the event load reads them, then as ``process_events``.
    A file is marked processed (path, size, mtime) in the same transaction as its events,
    and a changed file is read whole again; event ids make the re-read rows no-ops. A file
    that cannot be read is recorded as rejected and marked processed (read again once it changes)."""
    live = _live(segments)
    ensure_tables(con)
    changed = _changed(con, files)
    con.execute("SET TimeZone = 'UTC'")
    unreadable = _stage(con, changed)  # outside the transaction: a failed read must not abort it
    with transaction(con):
        result = _process(con, live, _source_sql(con, "_live_files"), now, late_tolerance_seconds)
        result.rejected += _record_rejects(con, unreadable, now)
        if changed:
            con.executemany(
                f"INSERT OR REPLACE INTO {FILES} VALUES (?, ?, ?, ?)",
                [[str(f.path), f.size_bytes, f.modified_ns, utc_naive(now)] for f in changed],
            )
        result.files_read = len(changed)
    return result


@dataclass(frozen=True)
class StartResult:
    files_present: int
    history_until: datetime


def start_watermark(
    con: duckdb.DuckDBPyConnection, files: list[SourceFile], *, now: datetime, late_tolerance_seconds: float
) -> StartResult | None:
    """On the live store's first use: mark the files already present as processed without
    reading them, and take every event stamped before ``now - late_tolerance`` as history
    (even one that lands later, in a new file or a changed old one). Returns None once
    started (every later call). Cheap: months of files present are not read."""
    ensure_tables(con)
    if scalar(con, f"SELECT count(*) FROM {HISTORY}"):
        return None
    now = utc_naive(now)
    history_until = now - timedelta(seconds=late_tolerance_seconds)
    with transaction(con):
        con.execute(f"INSERT INTO {HISTORY} VALUES (?, ?, ?)", [now, history_until, len(files)])
        if files:
            con.executemany(
                f"INSERT OR REPLACE INTO {FILES} VALUES (?, ?, ?, ?)",
                [[str(f.path), f.size_bytes, f.modified_ns, now] for f in files],
            )
    return StartResult(len(files), history_until)


def _changed(con: duckdb.DuckDBPyConnection, files: list[SourceFile]) -> list[SourceFile]:
    done = {
        (path, size, modified)
        for path, size, modified in con.execute(f"SELECT path, size_bytes, modified_ns FROM {FILES}").fetchall()
    }
    return [f for f in files if (str(f.path), f.size_bytes, f.modified_ns) not in done]


def _stage(con: duckdb.DuckDBPyConnection, files: list[SourceFile]) -> list[tuple[str, str]]:
    """Read the files into ``_classified`` (the event load's rules); returns the unreadable
    ones as (path, reason). Each file goes through its own table, so one that fails half-way
    leaves nothing behind."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _staged ({STAGED_TABLE_DDL})")
    unreadable = []
    for index, source in enumerate(files):
        con.execute(f"CREATE OR REPLACE TEMP TABLE _staged_one ({STAGED_TABLE_DDL})")
        try:
            stage_file(con, source, "_staged_one", index)
        except SourceError as exc:
            unreadable.append((str(source.path), str(exc)))
            continue
        con.execute("INSERT INTO _staged SELECT * FROM _staged_one")
    con.execute("DROP TABLE IF EXISTS _staged_one")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _classified AS {classify_sql('_staged')}")
    con.execute(
        "CREATE OR REPLACE TEMP VIEW _live_files AS "
        "SELECT event_id, user_id, event_name, ts, properties FROM _classified WHERE reason IS NULL"
    )
    return unreadable


def _record_rejects(con: duckdb.DuckDBPyConnection, unreadable: list[tuple[str, str]], now: datetime) -> int:
    """Rows the event load's rules reject, and unreadable files, into ``live_rejected`` (once each)."""
    before = scalar(con, f"SELECT count(*) FROM {REJECTED}")
    con.execute(
        f"""INSERT INTO {REJECTED}
            SELECT DISTINCT source, NULL, reason, left(raw_json, {_RAW_KEPT}), ? FROM _classified c
            WHERE reason IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM {REJECTED} r WHERE r.source = c.source AND r.raw IS NOT DISTINCT FROM left(c.raw_json, {_RAW_KEPT}))""",
        [utc_naive(now)],
    )
    if unreadable:
        con.executemany(
            f"INSERT INTO {REJECTED} VALUES (?, NULL, ?, NULL, ?)",
            [[path, reason, utc_naive(now)] for path, reason in unreadable],
        )
    return scalar(con, f"SELECT count(*) FROM {REJECTED}") - before


def json_depth(text: str) -> int:
    """How deeply a JSON text nests objects and arrays (brackets inside strings don't count),
    without building it: Python's parser gives up near 1,000 levels."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "}]":
            depth -= 1
    return deepest


def _reject_poison(con: duckdb.DuckDBPyConnection, now: datetime) -> int:
    """Drop new events whose properties are too big or too deep, recording each with its reason."""
    brackets = "length(properties) - length(replace(replace(properties, '{', ''), '[', ''))"
    suspects = con.execute(
        f"""SELECT event_id, length(properties) > {MAX_PROPERTIES_BYTES},
                   CASE WHEN length(properties) <= {MAX_PROPERTIES_BYTES} THEN properties END,
                   left(properties, {_RAW_KEPT})
            FROM _live_new WHERE length(properties) > {MAX_PROPERTIES_BYTES} OR {brackets} > {MAX_PROPERTIES_DEPTH}"""
    ).fetchall()
    rejected = []
    for event_id, too_big, properties, excerpt in suspects:
        if too_big:
            rejected.append((event_id, f"properties over {MAX_PROPERTIES_BYTES:,} bytes", excerpt))
        elif (depth := json_depth(properties)) > MAX_PROPERTIES_DEPTH:
            rejected.append(
                (event_id, f"properties nested {depth} levels deep (at most {MAX_PROPERTIES_DEPTH})", excerpt)
            )
    if rejected:
        con.executemany(
            f"INSERT INTO {REJECTED} VALUES ('live event', ?, ?, ?, ?)",
            [[event_id, reason, excerpt, utc_naive(now)] for event_id, reason, excerpt in rejected],
        )
        con.execute("DELETE FROM _live_new WHERE event_id IN (SELECT unnest(?))", [[r[0] for r in rejected]])
    return len(rejected)


def _process(
    con: duckdb.DuckDBPyConnection, live: list[SegmentDefinition], source: str, now: datetime, tolerance_s: float
) -> ProcessResult:
    now = utc_naive(now)
    result = ProcessResult()
    history_until = scalar(con, f"SELECT max(history_until) FROM {HISTORY}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _live_read AS {source}")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _live_new AS
            SELECT * FROM _live_read
            WHERE (CAST($until AS TIMESTAMP) IS NULL OR ts >= $until)
            QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts) = 1
              AND event_id NOT IN (SELECT event_id FROM {EVENTS})
              AND event_id NOT IN (SELECT event_id FROM {REJECTED} WHERE event_id IS NOT NULL)""",
        {"until": history_until},
    )
    result.events_read, result.events_history = one_row(
        con, "SELECT count(*), count(*) FILTER (WHERE ts < CAST(? AS TIMESTAMP)) FROM _live_read", [history_until]
    )
    result.rejected = _reject_poison(con, now)
    result.events_new = scalar(con, "SELECT count(*) FROM _live_new")
    touched, result.matches = _record_matches(con, live, now)
    entries = _subtype1_entries(con, live)
    due = _resolve(con, live, touched, now - timedelta(seconds=tolerance_s), result)
    result.entries = enqueue(con, entries + due, now=now)
    apply_live_tags(con, result.entries, MATCHES, "_live_new")
    result.pending = scalar(con, f"SELECT count(*) FROM {PENDING}")
    return result


def flush_deadlines(
    con: duckdb.DuckDBPyConnection,
    segments: list[SegmentDefinition],
    *,
    now: datetime,
    late_tolerance_seconds: float = LIVE_LATE_TOLERANCE_SECONDS,
) -> list[Entry]:
    """Resolve subtype 2 entries whose deadline is at or before the watermark; returns the
    entries written to the outbox. Call on every tick, with or without new events."""
    live = _live(segments)
    ensure_tables(con)
    with transaction(con):
        due = _resolve(con, live, set(), utc_naive(now) - timedelta(seconds=late_tolerance_seconds), ProcessResult())
        written = enqueue(con, due, now=utc_naive(now))
        apply_live_tags(con, written, MATCHES, None)
        return written


def _record_matches(
    con: duckdb.DuckDBPyConnection, live: list[SegmentDefinition], now: datetime
) -> tuple[set[tuple[str, str]], int]:
    """Store which new events match which live step; returns the subtype 2 pairs touched."""
    total = 0
    for segment in live:
        for role, step in [*_action_roles(segment), ("inaction", segment.inaction)]:
            if step is None:
                continue
            params = SqlParams()
            condition = _step_condition(step, params)
            params.values["segment"] = segment.name
            params.values["role"] = role
            total += scalar(
                con,
                f"""INSERT INTO {MATCHES} SELECT $segment, $role, event_id, user_id, ts
                    FROM _live_new WHERE {condition} ON CONFLICT DO NOTHING""",
                params.values,
            )
    con.execute(
        f"""INSERT INTO {EVENTS} SELECT event_id, user_id, event_name, ts, properties, ?
            FROM _live_new WHERE event_id IN (SELECT event_id FROM {MATCHES}) ON CONFLICT DO NOTHING""",
        [now],
    )
    names = [s.name for s in live if s.subtype == 2]
    rows = con.execute(
        f"""SELECT DISTINCT m.segment_name, m.user_id FROM {MATCHES} m JOIN _live_new n USING (event_id)
            WHERE m.segment_name IN (SELECT unnest(?))""",
        [names],
    ).fetchall()
    return {(segment_name, user_id) for segment_name, user_id in rows}, total


def _entry(segment_name: str, entered_at: datetime, row: tuple) -> Entry:
    event_id, user_id, event_name, ts, properties = row
    try:
        parsed = json.loads(properties) if properties else None
    except ValueError:
        parsed = None
    return Entry(
        segment_name, user_id, entered_at, event_id, event_name, ts, parsed if isinstance(parsed, dict) else None
    )


def _subtype1_entries(con: duckdb.DuckDBPyConnection, live: list[SegmentDefinition]) -> list[Entry]:
    names = [s.name for s in live if s.subtype == 1]
    rows = con.execute(
        f"""SELECT m.segment_name, n.event_id, n.user_id, n.event_name, n.ts, n.properties
            FROM {MATCHES} m JOIN _live_new n USING (event_id)
            WHERE m.role = 'action' AND m.segment_name IN (SELECT unnest(?)) ORDER BY n.ts, n.event_id""",
        [names],
    ).fetchall()
    return [_entry(row[0], row[4], row[1:]) for row in rows]


def _resolve(
    con: duckdb.DuckDBPyConnection,
    live: list[SegmentDefinition],
    touched: set[tuple[str, str]],
    watermark: datetime,
    result: ProcessResult,
) -> list[Entry]:
    """Recompute every touched pair, and every pair whose pending deadline has passed."""
    minutes = {s.name: s.actions[-1].exp_timeframe for s in live if s.subtype == 2}
    gaps = {s.name: [timedelta(minutes=a.exp_timeframe) for a in s.actions[:-1]] for s in live if s.subtype == 2}
    roles = {s.name: [role for role, _ in _action_roles(s)] for s in live if s.subtype == 2}
    pairs = set(touched)
    pairs |= {
        (segment_name, user_id)
        for segment_name, user_id in con.execute(
            f"SELECT segment_name, user_id FROM {PENDING} WHERE deadline <= ?", [watermark]
        ).fetchall()
        if segment_name in minutes
    }
    if not pairs:
        return []
    _temp_table(con, "_live_pairs", ["segment_name", "user_id"], list(pairs), [pl.String, pl.String])
    matches: dict[tuple[str, str], dict[str, list[Match]]] = defaultdict(lambda: defaultdict(list))
    for segment_name, user_id, role, ts, event_id in con.execute(
        f"""SELECT m.segment_name, m.user_id, m.role, m.ts, m.event_id
            FROM {MATCHES} m JOIN _live_pairs p USING (segment_name, user_id)
            LEFT JOIN {ARMED} a USING (segment_name, user_id)
            WHERE a.armed_from IS NULL OR m.ts >= a.armed_from
            ORDER BY m.ts, m.event_id"""
    ).fetchall():
        matches[(segment_name, user_id)][role].append(Match(ts, event_id))
    emitted: list[tuple[str, datetime, str]] = []  # (segment, entered_at, action event_id)
    pending, armed, cancelled = [], [], []
    for pair in pairs:
        found = matches.get(pair, defaultdict(list))
        actions = complete_chains([found[role] for role in roles[pair[0]]], gaps[pair[0]])
        outcome = simulate(actions, found["inaction"], timedelta(minutes=minutes[pair[0]]), watermark)
        emitted += [(pair[0], deadline, action.event_id) for action, deadline in outcome.emitted]
        if outcome.pending is not None:
            action, deadline = outcome.pending
            pending.append((*pair, action.ts, deadline, action.event_id))
        if outcome.armed_from is not None:
            armed.append((*pair, outcome.armed_from))
        cancelled += [(*pair, a.ts, a.event_id, i.ts, i.event_id) for a, i in outcome.cancelled]
    _store(con, pending, armed, cancelled)
    result.cancelled += len(cancelled)
    return _entries_for(con, emitted)


def _entries_for(con: duckdb.DuckDBPyConnection, emitted: list[tuple[str, datetime, str]]) -> list[Entry]:
    if not emitted:
        return []
    rows = {
        row[0]: row
        for row in con.execute(
            f"SELECT event_id, user_id, event_name, ts, properties FROM {EVENTS} WHERE event_id IN (SELECT unnest(?))",
            [[event_id for _, _, event_id in emitted]],
        ).fetchall()
    }
    entries = [_entry(segment_name, entered_at, rows[event_id]) for segment_name, entered_at, event_id in emitted]
    return sorted(entries, key=lambda e: (e.entered_at, e.segment_name, e.user_id))


def _temp_table(con: duckdb.DuckDBPyConnection, name: str, columns: list[str], rows: list, types: list) -> None:
    """Rows into a temp table in one statement (row-by-row inserts are slow in DuckDB)."""
    frame = pl.DataFrame(rows, schema=dict(zip(columns, types, strict=True)), orient="row")
    con.register("_live_rows", frame)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _live_rows")
    finally:
        con.unregister("_live_rows")


_TS = pl.Datetime("us")


def _store(con: duckdb.DuckDBPyConnection, pending: list, armed: list, cancelled: list) -> None:
    """Replace the replayed pairs' pending entries; advance their armed_from; log cancellations."""
    con.execute(
        f"DELETE FROM {PENDING} WHERE (segment_name, user_id) IN (SELECT (segment_name, user_id) FROM _live_pairs)"
    )
    _temp_table(con, "_live_pending", ["s", "u", "a", "d", "e"], pending, [pl.String, pl.String, _TS, _TS, pl.String])
    con.execute(f"INSERT INTO {PENDING} SELECT * FROM _live_pending")
    _temp_table(con, "_live_armed", ["s", "u", "t"], armed, [pl.String, pl.String, _TS])
    con.execute(f"INSERT OR REPLACE INTO {ARMED} SELECT * FROM _live_armed")
    _temp_table(
        con,
        "_live_cancelled",
        ["s", "u", "a", "ae", "i", "ie"],
        cancelled,
        [pl.String, pl.String, _TS, pl.String, _TS, pl.String],
    )
    con.execute(f"INSERT INTO {CANCELLED} SELECT * FROM _live_cancelled ON CONFLICT DO NOTHING")
