"""Loading user profiles into ``analytics.profiles``: the current state, replaced whole.

A profile is a ``user_id`` plus any other columns, each a profile property that
segments can test (contract section 3). When several rows share a ``user_id``, the
last one read wins (files in path order, rows in file order).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date

import duckdb

from segment_pipeline.ingest.events import REJECTED, ensure_tables
from segment_pipeline.ingest.sources import SourceError, SourceFile, literal_path
from segment_pipeline.ingest.staging import FILE_ERRORS, MAX_LINE_BYTES, unreadable_reason
from segment_pipeline.storage.warehouse import ANALYTICS, quote_ident, scalar, transaction

PROFILES = (ANALYTICS, "profiles")
_FILE, _ROW = "__sp_file", "__sp_row"
_READERS = {
    "parquet": "read_parquet(?)",
    "csv": f"read_csv(?, header = true, max_line_size = {MAX_LINE_BYTES})",
    "ndjson": f"read_json(?, format = 'newline_delimited', maximum_object_size = {MAX_LINE_BYTES})",
}


@dataclass(frozen=True)
class ProfileReport:
    profiles: int
    properties: list[str]
    rows_read: int
    duplicate_rows: int
    rejected: int


def _read_all(con: duckdb.DuckDBPyConnection, files: list[SourceFile]) -> None:
    selects, params = [], []
    with ExitStack() as links:
        for idx, f in enumerate(files):
            read_path = links.enter_context(literal_path(f.path))
            try:
                columns = [
                    r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {_READERS[f.format]}", [read_path]).fetchall()
                ]
            except (OSError, *FILE_ERRORS) as exc:
                # Unlike an events file, a broken profiles file cannot be set aside: the table is
                # replaced whole, so those users would lose their profiles.
                raise SourceError(
                    f"{f.path}: {unreadable_reason(f, exc)}; profiles are replaced whole each run, "
                    "so fix or remove this file"
                ) from exc
            except duckdb.Error as exc:
                raise SourceError(f"{f.path}: cannot be read as {f.format} profiles: {exc}") from exc
            if "user_id" not in columns:
                raise SourceError(f"{f.path}: a profiles file needs a user_id column (found: {', '.join(columns)})")
            # Positions come from a table scan of a freshly read file, so they follow file order.
            selects.append(f"SELECT *, {idx} AS {_FILE}, row_number() OVER () AS {_ROW} FROM {_READERS[f.format]}")
            params.append(read_path)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _profile_rows AS {' UNION ALL BY NAME '.join(selects)}", params)
        except FILE_ERRORS as exc:  # a file whose header read fine but whose data does not
            raise SourceError(
                f"profile files {', '.join(str(f.path) for f in files)}: one cannot be read "
                f"({str(exc).strip().splitlines()[0][:200]}); profiles are replaced whole each run, so fix or remove it"
            ) from exc


def load_profiles(con: duckdb.DuckDBPyConnection, files: list[SourceFile], *, snapshot_date: date) -> ProfileReport:
    """Replace ``analytics.profiles`` with what the profile files hold now, in one transaction."""
    ensure_tables(con, REJECTED)
    with transaction(con):
        if not files:
            con.execute("CREATE OR REPLACE TABLE analytics.profiles (user_id VARCHAR NOT NULL)")
            return ProfileReport(0, [], 0, 0, 0)
        _read_all(con, files)
        columns = [r[0] for r in con.execute("DESCRIBE _profile_rows").fetchall()]
        properties = [c for c in columns if c not in ("user_id", _FILE, _ROW)]
        uid_type = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE _profile_rows)").fetchall())[
            "user_id"
        ]
        uid = (
            "CASE WHEN user_id = trunc(user_id) THEN CAST(CAST(user_id AS HUGEINT) AS VARCHAR) END"
            if uid_type in ("FLOAT", "DOUBLE")
            else "nullif(trim(CAST(user_id AS VARCHAR)), '')"
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE _profile_keyed AS SELECT {uid} AS __sp_uid, * FROM _profile_rows")
        paths = [str(f.path) for f in files]
        con.execute(
            f"""INSERT INTO analytics.rejected_events
                SELECT ?, list_extract(?, {_FILE} + 1) || ':' || CAST({_ROW} AS VARCHAR),
                       'profile with empty user_id',
                       CAST(to_json(struct_pack({", ".join(f"{quote_ident(c)} := {quote_ident(c)}" for c in ["user_id", *properties])})) AS VARCHAR) AS raw
                FROM _profile_keyed k
                WHERE __sp_uid IS NULL
                  AND NOT EXISTS (SELECT 1 FROM analytics.rejected_events r
                                  WHERE r.source = list_extract(?, k.{_FILE} + 1) || ':' || CAST(k.{_ROW} AS VARCHAR)
                                    AND r.reason = 'profile with empty user_id')""",
            [snapshot_date, paths, paths],
        )
        rejected = scalar(con, "SELECT count(*) FROM _profile_keyed WHERE __sp_uid IS NULL")
        select_props = "".join(f", {quote_ident(p)}" for p in properties)
        con.execute(
            f"""CREATE OR REPLACE TABLE analytics.profiles AS
                SELECT __sp_uid AS user_id{select_props} FROM (
                    SELECT *, row_number() OVER (PARTITION BY __sp_uid ORDER BY {_FILE} DESC, {_ROW} DESC) AS latest
                    FROM _profile_keyed WHERE __sp_uid IS NOT NULL
                ) WHERE latest = 1 ORDER BY user_id"""
        )
        rows_read = scalar(con, "SELECT count(*) FROM _profile_rows")
        profiles = scalar(con, "SELECT count(*) FROM analytics.profiles")
        con.execute("DROP TABLE _profile_rows; DROP TABLE _profile_keyed")
    return ProfileReport(
        profiles=profiles,
        properties=properties,
        rows_read=rows_read,
        duplicate_rows=rows_read - rejected - profiles,
        rejected=rejected,
    )
