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
from segment_pipeline.ingest.normalize import classify_sql
from segment_pipeline.ingest.sources import SourceFile
from segment_pipeline.ingest.staging import STAGED_TABLE_DDL, UnreadableFile, stage_file
from segment_pipeline.storage.tables import column_ddl
from segment_pipeline.storage.warehouse import ANALYTICS, STATE, one_row, table_ref, transaction

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


_CLASSIFY = f"CREATE OR REPLACE TEMP TABLE _classified AS {classify_sql('_staged')}"

CONFLICTING_DUPLICATE = "duplicate event_id with different content"

# The row as read (raw_json) is most of a staged row's bytes and is needed only by rejects:
# it is kept for rows that break a row rule (the same tests as _CLASSIFY's reasons) and
# dropped for the rest; 'path:N' (source) is rebuilt from file_idx and row_no for rejects only.
_SLIM_STAGED = """
INSERT INTO _staged
SELECT NULL, row_no,
       CASE WHEN malformed IS NOT NULL
              OR NOT regexp_matches(coalesce(user_id_raw, ''), '[^[:space:]]')
              OR NOT regexp_matches(coalesce(event_name_raw, ''), '[^[:space:]]')
              OR NOT ts_present OR ts_value IS NULL
              OR (props_text IS NOT NULL AND NOT coalesce(
                    json_valid(props_text) AND json_type(CAST(props_text AS JSON)) = 'OBJECT', false))
            THEN raw_json END,
       event_id_raw, user_id_raw, event_name_raw, ts_present, ts_value, props_text, malformed, file_idx
FROM _staged_file
"""

# A valid row rejected as a conflicting duplicate kept no raw text: its parsed fields stand for it.
_RAW_OR_FIELDS = """coalesce(raw_json, CAST(json_object(
    'event_id', event_id, 'user_id', user_id, 'event_name', event_name,
    'ts', strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ'), 'properties', json(properties)) AS VARCHAR))"""

_VALID_BEFORE_CUTOFF = "FROM _classified WHERE reason IS NULL AND ts < ?"

# The loaded version of the ids this load carries. The ids are matched on the snapshot's
# event_id column alone, then only the matching rows are fetched (by rowid) to compare content.
_LOADED_TWINS = f"""
CREATE OR REPLACE TEMP TABLE _loaded_twins AS
SELECT event_id, user_id, event_name, ts, CAST(properties AS VARCHAR) AS properties
FROM analytics.event_snapshots
WHERE rowid IN (SELECT s.rowid FROM analytics.event_snapshots s
                -- The id range first: the snapshot's zone maps skip row groups outside it.
                WHERE s.event_id BETWEEN (SELECT min(event_id) {_VALID_BEFORE_CUTOFF})
                                     AND (SELECT max(event_id) {_VALID_BEFORE_CUTOFF})
                  AND s.event_id IN (SELECT event_id {_VALID_BEFORE_CUTOFF}))
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY snapshot_date, ts) = 1
"""

# What an id stands for: its loaded version, else its first row in this load. A row that
# repeats it exactly is a re-send (skipped); one that differs is a conflict (rejected).
# Both joins build on the few rows that need them (loaded twins, ids repeated in the load),
# so a load of new events pays one window and two cheap probes.
_FATES = f"""
CREATE OR REPLACE TEMP TABLE _fates AS
WITH ranked AS MATERIALIZED (
    SELECT file_idx, row_no, raw_json, event_id, user_id, event_name, ts, properties,
           row_number() OVER (PARTITION BY event_id ORDER BY file_idx, row_no) AS id_rank
    {_VALID_BEFORE_CUTOFF}
),
reference AS (
    SELECT event_id, user_id, event_name, ts, properties FROM _loaded_twins
    UNION ALL
    SELECT event_id, user_id, event_name, ts, properties FROM ranked
    WHERE id_rank = 1 AND event_id IN (SELECT event_id FROM ranked WHERE id_rank = 2)
      AND event_id NOT IN (SELECT event_id FROM _loaded_twins)
)
SELECT c.*, c.event_id IN (SELECT event_id FROM _loaded_twins) AS loaded,
       r.event_id IS NULL OR (c.user_id = r.user_id AND c.event_name = r.event_name
                              AND c.ts = r.ts AND c.properties = r.properties) AS same_content
FROM ranked c LEFT JOIN reference r USING (event_id)
"""

_NEW_REJECTS = f"""
CREATE OR REPLACE TEMP TABLE _new_rejects AS
SELECT * FROM (
    SELECT file_idx, row_no, f.path || ':' || CAST(row_no AS VARCHAR) AS source, reason, raw
    FROM (
        SELECT file_idx, row_no, reason, raw_json AS raw FROM _classified WHERE reason IS NOT NULL
        UNION ALL
        SELECT file_idx, row_no, '{CONFLICTING_DUPLICATE}', {_RAW_OR_FIELDS} FROM _fates WHERE NOT same_content
    ) JOIN _files f USING (file_idx)
) AS c
WHERE NOT EXISTS (SELECT 1 FROM analytics.rejected_events r
                  WHERE r.source = c.source AND r.raw IS NOT DISTINCT FROM c.raw)
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
    """Stage every file on its own; return the unreadable ones (file index -> reason).

    This writes temp tables only and runs outside the load's transaction: DuckDB aborts a
    transaction at its first error, and one broken file must not cost the others.
    """
    index = {f.path: i for i, f in enumerate(files)}
    con.execute(f"CREATE OR REPLACE TEMP TABLE _staged ({STAGED_TABLE_DDL})")
    con.execute("CREATE OR REPLACE TEMP TABLE _files (file_idx INTEGER, path VARCHAR)")
    if to_read:
        con.executemany("INSERT INTO _files VALUES (?, ?)", [[index[f.path], str(f.path)] for f in to_read])
    unreadable = {}
    for f in to_read:
        # file_idx indexes ``files`` (not ``to_read``) so messages can name the file.
        con.execute(f"CREATE OR REPLACE TEMP TABLE _staged_file ({STAGED_TABLE_DDL})")
        try:
            stage_file(con, f, "_staged_file", index[f.path])
        except UnreadableFile as exc:
            unreadable[index[f.path]] = exc.reason
            continue
        # One file's text at a time: the load keeps it only for rows that will be rejects.
        con.execute(_SLIM_STAGED)
    con.execute("DROP TABLE IF EXISTS _staged_file")
    return unreadable


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
    """Bring ``event_snapshots`` up to date as of ``snapshot_date``, in one transaction."""
    cutoff = day_cutoff(snapshot_date)
    ensure_tables(con, SNAPSHOT, REJECTED, SOURCE_FILES)
    to_read = _files_to_read(con, files, cutoff)
    unreadable = _stage(con, files, to_read)
    with transaction(con):
        con.execute(_CLASSIFY)
        con.execute(_LOADED_TWINS, [cutoff, cutoff, cutoff])
        con.execute(_FATES, [cutoff])
        con.execute(_NEW_REJECTS)

        rows_read, deferred = one_row(
            con, "SELECT count(*), count(*) FILTER (WHERE reason IS NULL AND ts >= ?) FROM _classified", [cutoff]
        )
        loaded, duplicates, already_loaded = one_row(
            con,
            """SELECT count(*) FILTER (WHERE NOT loaded AND id_rank = 1),
                      count(*) FILTER (WHERE same_content AND id_rank > 1),
                      count(DISTINCT event_id) FILTER (WHERE loaded AND same_content)
               FROM _fates""",
        )
        reasons = dict(con.execute("SELECT reason, count(*) FROM _new_rejects GROUP BY 1 ORDER BY 2 DESC").fetchall())
        report = LoadReport(
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
            unreadable_files={str(files[i].path): reason for i, reason in sorted(unreadable.items())},
        )
        if report.reject_rate > max_reject_rate:
            raise LoadRefused(_refusal_message(con, files, report, max_reject_rate))

        state.prepare(con)
        con.execute(
            """INSERT INTO analytics.event_snapshots
               SELECT event_id, user_id, event_name, ts, properties, ? FROM _fates
               WHERE NOT loaded AND id_rank = 1 ORDER BY ts""",
            [snapshot_date],
        )
        state.add(con, "SELECT user_id, event_name, ts, properties FROM _fates WHERE NOT loaded AND id_rank = 1")
        con.execute(
            "INSERT INTO analytics.rejected_events SELECT ?, source, reason, raw FROM _new_rejects ORDER BY file_idx, row_no",
            [snapshot_date],
        )
        for path, reason in report.unreadable_files.items():
            # One row per broken file and reason, however many nights it stays broken.
            con.execute(
                """INSERT INTO analytics.rejected_events SELECT ?, ?, ?, NULL
                   WHERE NOT EXISTS (SELECT 1 FROM analytics.rejected_events WHERE source = ? AND reason = ?)""",
                [snapshot_date, path, reason, path, reason],
            )
        max_ts_by_file = dict(
            con.execute("SELECT file_idx, max(ts) FILTER (WHERE reason IS NULL) FROM _classified GROUP BY 1").fetchall()
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
        for table in ("_staged", "_files", "_classified", "_loaded_twins", "_fates", "_new_rejects"):
            con.execute(f"DROP TABLE {table}")
    return report
