"""Loading events into ``analytics.event_snapshots``: incremental, idempotent, all or nothing.

A load for day D takes every source row with ``ts`` before D+1 00:00 that is not in
the snapshot yet. Rows that break the contract (section 3) go to
``analytics.rejected_events`` with a reason; if too many do, the whole load is
refused and nothing of it is kept. A file that cannot be read at all is one reject row
(source = its path), is left out of the file manifest so the next run tries it again,
and never stops the other files.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import duckdb

from segment_pipeline.ingest import state
from segment_pipeline.ingest.normalize import with_event_ids_sql
from segment_pipeline.ingest.sources import SourceFile
from segment_pipeline.ingest.staging import REASONED_TABLE_DDL, stage_files_reasoned
from segment_pipeline.storage.tables import column_ddl
from segment_pipeline.storage.warehouse import ANALYTICS, STATE, one_row, scalar, table_ref, transaction

SNAPSHOT = (ANALYTICS, "event_snapshots")
REJECTED = (ANALYTICS, "rejected_events")
SOURCE_FILES = (STATE, "source_files")

TABLE_DDL: dict[tuple[str, str], str] = {
    SNAPSHOT: column_ddl("event_snapshots"),
    REJECTED: column_ddl("rejected_events"),
    # Which source files were read, so a nightly run skips files it already took in whole.
    SOURCE_FILES: """path VARCHAR PRIMARY KEY, size_bytes BIGINT NOT NULL, modified_ns BIGINT NOT NULL,
                     max_ts TIMESTAMP, loaded_through TIMESTAMP NOT NULL""",
}


def ensure_tables(con: duckdb.DuckDBPyConnection, *tables: tuple[str, str]) -> None:
    """Create the load's tables (all three when none are named); a fresh warehouse needs no migration."""
    for key in tables or tuple(TABLE_DDL):
        con.execute(f"CREATE TABLE IF NOT EXISTS {table_ref(*key)} ({TABLE_DDL[key]})")


CONFLICTING_DUPLICATE = "duplicate event_id with different content"
# Valid rows are given ids, checked against the snapshot and written a chunk of days at a time:
# each statement then holds a chunk, never the whole history, in memory (one day may exceed it).
CHUNK_ROWS = 2_000_000
# A chunk's rows may fall on scattered days (late events); the snapshot is probed day range by
# day range, and ranges closer than this are merged so a chunk costs a few probes at most.
MAX_PROBES_PER_CHUNK = 16

# A valid row rejected as a conflicting duplicate kept no raw text: its parsed fields stand for it.
_RAW_OR_FIELDS = """coalesce(raw_json, CAST(json_object(
    'event_id', event_id, 'user_id', user_id, 'event_name', event_name,
    'ts', strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ'), 'properties', json(properties)) AS VARCHAR))"""

# One chunk's valid rows with their ids; id_rank orders the rows of one id in the load.
# Rows without an id get theirs from their content (identical rows share a ts, so a day holds them all).
# One chunk's valid rows with their ids, in the order they were read (no sort: a source's
# rows come in time order, and the snapshot keeps it, which its zone maps on ts rely on).
# Rows without an id get theirs from their content (identical rows share a ts, so a day holds them all).
_CHUNK = f"""
CREATE OR REPLACE TEMP TABLE _chunk AS
SELECT file_idx, row_no, raw_json, event_id, user_id, event_name, ts, properties
FROM ({with_event_ids_sql("(SELECT * FROM _staged WHERE reason IS NULL AND ts >= ? AND ts < ?)")})
"""

# The rows of ids the chunk holds more than once, ranked in the order they were read.
_REPEATS = """
CREATE OR REPLACE TEMP TABLE _repeats AS
SELECT event_id, file_idx, row_no, row_number() OVER (PARTITION BY event_id ORDER BY file_idx, row_no) AS id_rank
FROM _chunk WHERE event_id IN (SELECT event_id FROM _chunk GROUP BY event_id HAVING count(*) > 1)
"""

# The loaded version of the chunk's ids. Only the snapshot's rows of the chunk's days are probed
# (zone maps on ts skip the rest): an id re-sent with another ts on a day outside them is not
# matched here (the event_ids_unique check reports it), and a night never scans the history.
_LOADED_TWINS = """
INSERT INTO _loaded_twins
SELECT event_id, user_id, event_name, ts, properties, snapshot_date FROM analytics.event_snapshots
WHERE ts >= ? AND ts < ? AND event_id IN (SELECT event_id FROM _chunk WHERE ts >= ? AND ts < ?)
"""

# The rows of the chunk whose id is loaded already or repeats in the chunk, with what their id
# stands for (its loaded version, else its first row in this load). A row that repeats it
# exactly is a re-send (skipped); one that differs is a conflict (rejected). Every other row is
# new. Both sides of the join are the few rows that need it, never the chunk.
_TWIN_ROWS = """
CREATE OR REPLACE TEMP TABLE _twin_rows AS
WITH loaded AS (
    SELECT * FROM _loaded_twins QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY snapshot_date, ts) = 1
),
candidates AS (
    SELECT c.*, coalesce(p.id_rank, 1) AS id_rank
    FROM _chunk c LEFT JOIN _repeats p USING (file_idx, row_no)
    WHERE c.event_id IN (SELECT event_id FROM loaded UNION ALL SELECT event_id FROM _repeats)
),
reference AS (
    SELECT event_id, user_id, event_name, ts, properties, true AS loaded FROM loaded
    UNION ALL
    SELECT event_id, user_id, event_name, ts, properties, false FROM candidates
    WHERE id_rank = 1 AND event_id NOT IN (SELECT event_id FROM loaded)
)
SELECT c.file_idx, c.row_no, c.raw_json, c.event_id, c.user_id, c.event_name, c.ts, c.properties, c.id_rank,
       r.loaded, (c.user_id = r.user_id AND c.event_name = r.event_name
                  AND c.ts = r.ts AND c.properties = r.properties) AS same_content
FROM candidates c JOIN reference r USING (event_id)
"""

# The chunk's rows to write: the first of each id not loaded before. (When no row is skipped,
# the chunk itself: an anti join probes every row of it.)
_NEW_ROWS = """SELECT c.* FROM _chunk c ANTI JOIN (SELECT file_idx, row_no FROM _twin_rows WHERE loaded OR id_rank > 1)
               USING (file_idx, row_no)"""

_REJECTS_DDL = "file_idx INTEGER, row_no BIGINT, reason VARCHAR, raw VARCHAR"
_ROW_REJECTS = (
    "INSERT INTO _all_rejects SELECT file_idx, row_no, reason, raw_json FROM _staged WHERE reason IS NOT NULL"
)
_CONFLICTS = f"""
INSERT INTO _all_rejects
SELECT file_idx, row_no, '{CONFLICTING_DUPLICATE}', {_RAW_OR_FIELDS} FROM _twin_rows WHERE NOT same_content
"""
# Rejects recorded before (same path:N, same text) are not recorded again.
_UNSEEN_REJECTS = """
SELECT c.*, f.path || ':' || CAST(c.row_no AS VARCHAR) AS source
FROM _all_rejects c JOIN _files f USING (file_idx)
WHERE NOT EXISTS (SELECT 1 FROM analytics.rejected_events r
                  WHERE r.source = f.path || ':' || CAST(c.row_no AS VARCHAR) AND r.raw IS NOT DISTINCT FROM c.raw)
"""


class LoadRefused(ValueError):
    """Too many bad rows: the load is refused and the warehouse is left as it was."""


@dataclass(frozen=True)
class LoadReport:
    """What one load did, for the run's metadata."""

    snapshot_date: date
    cutoff: datetime
    files_read: int
    files_skipped: int
    rows_read: int
    loaded: int
    rejected: int
    duplicates_skipped: int
    already_loaded: int
    deferred: int
    reject_reasons: dict[str, int] = field(default_factory=dict)
    # Files that could not be read at all, path -> reason: each is one reject row, is not
    # marked loaded (so the next run tries again), and does not count in the reject rate.
    unreadable_files: dict[str, str] = field(default_factory=dict)

    @property
    def reject_rate(self) -> float:
        considered = self.loaded + self.rejected
        return self.rejected / considered if considered else 0.0


def day_cutoff(day: date) -> datetime:
    """The first instant after day D: 'as of D' means every event before it."""
    return datetime.combine(day + timedelta(days=1), time())


def _files_to_read(con: duckdb.DuckDBPyConnection, files: list[SourceFile], cutoff: datetime) -> list[SourceFile]:
    """Skip files unchanged since a load that already took in every row they can give."""
    done = {
        path: (size, modified, max_ts, through)
        for path, size, modified, max_ts, through in con.execute(
            "SELECT path, size_bytes, modified_ns, max_ts, loaded_through FROM pipeline_state.source_files"
        ).fetchall()
    }
    to_read = []
    for f in files:
        seen = done.get(str(f.path))
        if seen and seen[0] == f.size_bytes and seen[1] == f.modified_ns:
            _, _, max_ts, through = seen
            if cutoff <= through or max_ts is None or max_ts < through:
                continue
        to_read.append(f)
    return to_read


def _stage(con: duckdb.DuckDBPyConnection, files: list[SourceFile], to_read: list[SourceFile]) -> dict[int, str]:
    """Stage the files into ``_staged`` (checked rows, ``REASONED_FIELDS``); return the
    unreadable ones (file index -> reason).

    This writes temp tables only and runs outside the load's transaction: DuckDB aborts a
    transaction at its first error, and one broken file must not cost the others. The temp
    tables live under DuckDB's memory_limit and spill to its temp_directory past it.
    """
    index = {f.path: i for i, f in enumerate(files)}
    con.execute(f"CREATE OR REPLACE TEMP TABLE _staged ({REASONED_TABLE_DDL})")
    con.execute("CREATE OR REPLACE TEMP TABLE _files (file_idx INTEGER, path VARCHAR)")
    if to_read:
        con.executemany("INSERT INTO _files VALUES (?, ?)", [[index[f.path], str(f.path)] for f in to_read])
    # file_idx indexes ``files`` (not ``to_read``) so messages can name the file.
    return stage_files_reasoned(con, [(f, index[f.path]) for f in to_read], "_staged")


def _chunks(con: duckdb.DuckDBPyConnection, cutoff: datetime) -> list[list[tuple[datetime, datetime]]]:
    """The valid rows before ``cutoff`` in chunks of whole days, about ``CHUNK_ROWS`` rows each,
    in time order; each chunk is the day ranges to read (at most ``MAX_PROBES_PER_CHUNK``)."""
    days = con.execute(
        """SELECT CAST(ts AS DATE) AS day, count(*) FROM _staged
           WHERE reason IS NULL AND ts < ? GROUP BY 1 ORDER BY 1""",
        [cutoff],
    ).fetchall()
    chunks: list[list[date]] = []
    rows = 0
    for day, n in days:
        if not chunks or (rows and rows + n > CHUNK_ROWS):
            chunks.append([])
            rows = 0
        chunks[-1].append(day)
        rows += n
    return [_day_ranges(chunk) for chunk in chunks]


def _day_ranges(days: list[date]) -> list[tuple[datetime, datetime]]:
    """Sorted days as [start, end) ranges of consecutive days, the closest merged down to
    ``MAX_PROBES_PER_CHUNK``."""
    ranges: list[list[date]] = []
    for day in days:
        if ranges and day == ranges[-1][1] + timedelta(days=1):
            ranges[-1][1] = day
        else:
            ranges.append([day, day])
    while len(ranges) > MAX_PROBES_PER_CHUNK:
        gaps = [ranges[i + 1][0] - ranges[i][1] for i in range(len(ranges) - 1)]
        i = gaps.index(min(gaps))
        ranges[i : i + 2] = [[ranges[i][0], ranges[i + 1][1]]]
    return [(datetime.combine(first, time()), day_cutoff(last)) for first, last in ranges]


def _refusal_message(
    con: duckdb.DuckDBPyConnection, files: list[SourceFile], report: LoadReport, max_rate: float
) -> str:
    worst = con.execute(
        """SELECT file_idx, count(*) AS n, mode(reason) AS reason, min(row_no) AS first_row
           FROM _new_rejects GROUP BY file_idx ORDER BY n DESC, file_idx LIMIT 3"""
    ).fetchall()
    lines = [
        f"Refused the event load as of {report.snapshot_date}: {report.rejected:,} of "
        f"{report.loaded + report.rejected:,} new rows ({report.reject_rate:.1%}) are bad, above "
        f"SEGMENT_PIPELINE_MAX_REJECT_RATE={max_rate:g}. Nothing of this load was kept."
    ]
    for file_idx, n, reason, first_row in worst:
        lines.append(
            f"  {files[file_idx].path}: {n:,} bad rows, commonest reason '{reason}' (first at row {first_row})"
        )
    for path, reason in report.unreadable_files.items():
        lines.append(f"  {path}: {reason} (not counted in the rate)")
    lines.append("Fix those rows at the source, or raise SEGMENT_PIPELINE_MAX_REJECT_RATE if they are expected.")
    return "\n".join(lines)


def load_events(
    con: duckdb.DuckDBPyConnection,
    files: list[SourceFile],
    *,
    snapshot_date: date,
    max_reject_rate: float,
) -> LoadReport:
    """Bring ``event_snapshots`` up to date as of ``snapshot_date``, in one transaction.

    The files are staged one by one; the valid rows are then given ids, checked against the
    snapshot and written one chunk of days at a time (``CHUNK_ROWS``), each chunk folded into
    the summaries (``ingest/state.py``) as it is written. A refused load rolls all of it back.
    """
    cutoff = day_cutoff(snapshot_date)
    ensure_tables(con, SNAPSHOT, REJECTED, SOURCE_FILES)
    to_read = _files_to_read(con, files, cutoff)
    unreadable = _stage(con, files, to_read)
    unreadable_files = {str(files[i].path): reason for i, reason in sorted(unreadable.items())}
    with transaction(con):
        rows_read, valid, deferred = one_row(
            con,
            """SELECT count(*), count(*) FILTER (WHERE reason IS NULL AND ts < ?),
                      count(*) FILTER (WHERE reason IS NULL AND ts >= ?) FROM _staged""",
            [cutoff, cutoff],
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE _all_rejects ({_REJECTS_DDL})")
        con.execute(_ROW_REJECTS)
        loaded = duplicates = already_loaded = 0

        def report(loaded: int) -> LoadReport:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _new_rejects AS {_UNSEEN_REJECTS}")
            reasons = dict(
                con.execute("SELECT reason, count(*) FROM _new_rejects GROUP BY 1 ORDER BY 2 DESC").fetchall()
            )
            return LoadReport(
                snapshot_date=snapshot_date,
                cutoff=cutoff,
                files_read=len(to_read) - len(unreadable),
                files_skipped=len(files) - len(to_read),
                rows_read=rows_read,
                loaded=loaded,
                rejected=sum(reasons.values()),
                duplicates_skipped=duplicates,
                already_loaded=already_loaded,
                deferred=deferred,
                reject_reasons=dict(Counter(reasons).most_common()),
                unreadable_files=unreadable_files,
            )

        # Rejected rows alone may already refuse the load: then nothing is written at all.
        # (Before the chunks are written, every valid row counts as new: the most a load can take.)
        if (early := report(valid)).reject_rate > max_reject_rate:
            raise LoadRefused(_refusal_message(con, files, early, max_reject_rate))

        state.prepare(con)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _loaded_twins (event_id VARCHAR, user_id VARCHAR, event_name VARCHAR, "
            "ts TIMESTAMP, properties JSON, snapshot_date DATE)"
        )
        for ranges in _chunks(con, cutoff):
            chunk_loaded, chunk_duplicates, chunk_already = _load_chunk(con, ranges, snapshot_date)
            loaded += chunk_loaded
            duplicates += chunk_duplicates
            already_loaded += chunk_already
        final = report(loaded)
        if final.reject_rate > max_reject_rate:
            raise LoadRefused(_refusal_message(con, files, final, max_reject_rate))
        con.execute(
            "INSERT INTO analytics.rejected_events SELECT ?, source, reason, raw FROM _new_rejects ORDER BY file_idx, row_no",
            [snapshot_date],
        )
        for path, reason in unreadable_files.items():
            # One row per broken file and reason, however many nights it stays broken.
            con.execute(
                """INSERT INTO analytics.rejected_events SELECT ?, ?, ?, NULL
                   WHERE NOT EXISTS (SELECT 1 FROM analytics.rejected_events WHERE source = ? AND reason = ?)""",
                [snapshot_date, path, reason, path, reason],
            )
        max_ts_by_file = dict(
            con.execute("SELECT file_idx, max(ts) FILTER (WHERE reason IS NULL) FROM _staged GROUP BY 1").fetchall()
        )
        index = {f.path: i for i, f in enumerate(files)}
        for f in to_read:
            if index[f.path] in unreadable:
                continue  # not in the manifest, so the next run reads it again
            con.execute(
                """INSERT INTO pipeline_state.source_files VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (path) DO UPDATE SET size_bytes = excluded.size_bytes,
                       modified_ns = excluded.modified_ns, max_ts = excluded.max_ts,
                       loaded_through = CASE WHEN source_files.size_bytes = excluded.size_bytes
                                              AND source_files.modified_ns = excluded.modified_ns
                                         THEN greatest(source_files.loaded_through, excluded.loaded_through)
                                         ELSE excluded.loaded_through END""",
                [str(f.path), f.size_bytes, f.modified_ns, max_ts_by_file.get(index[f.path]), cutoff],
            )
        for table in ("_staged", "_files", "_all_rejects", "_new_rejects", "_loaded_twins"):
            con.execute(f"DROP TABLE {table}")
    return final


def _load_chunk(
    con: duckdb.DuckDBPyConnection, ranges: list[tuple[datetime, datetime]], snapshot_date: date
) -> tuple[int, int, int]:
    """Give one chunk's rows their ids, write its new ones to the snapshot and the summaries, its
    conflicts to ``_all_rejects``; returns (rows written, re-sends skipped, ids already loaded)."""
    con.execute(_CHUNK, [ranges[0][0], ranges[-1][1]] * 2)  # the range is read twice (ids given, ids derived)
    con.execute(_REPEATS)
    con.execute("DELETE FROM _loaded_twins")
    for start, end in ranges:
        con.execute(_LOADED_TWINS, [start, end, start, end])
    con.execute(_TWIN_ROWS)
    con.execute(_CONFLICTS)
    duplicates, already_loaded = one_row(
        con,
        """SELECT count(*) FILTER (WHERE same_content AND id_rank > 1),
                  count(DISTINCT event_id) FILTER (WHERE loaded AND same_content) FROM _twin_rows""",
    )
    skipped = scalar(con, "SELECT count(*) FROM _twin_rows WHERE loaded OR id_rank > 1")
    rows = _NEW_ROWS if skipped else "SELECT * FROM _chunk"
    written = scalar(
        con,
        f"""INSERT INTO analytics.event_snapshots
            SELECT event_id, user_id, event_name, ts, properties, ? FROM ({rows})""",
        [snapshot_date],
    )
    state.add(con, f"SELECT user_id, event_name, ts, properties FROM ({rows})")
    con.execute("DROP TABLE _chunk; DROP TABLE _repeats; DROP TABLE _twin_rows")
    return written, duplicates, already_loaded
