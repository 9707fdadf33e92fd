"""Reading one source file into the uniform staging shape, whatever its format.

Every format ends up as the same columns, so that one SQL statement
(``_CLASSIFY`` in ``ingest/events.py``) decides, for all of them alike, whether a row is loaded
or rejected and why:

    source VARCHAR       'path:N' (N: line for NDJSON and malformed CSV lines,
                         record number for Parquet and CSV records, from 1)
    raw_json VARCHAR     the row as read, for ``rejected_events.raw``
    event_id_raw, user_id_raw, event_name_raw VARCHAR
    ts_present BOOLEAN   the row has a ts value at all
    ts_value TIMESTAMP   the ts in UTC, NULL when it does not parse (text with an offset is
                         converted; a time without one is UTC)
    props_text VARCHAR   the properties as JSON text (NULL: none given)
    malformed VARCHAR    a reason when the row cannot even be split into fields
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import duckdb

from segment_pipeline.ingest.normalize import reasoned_sql
from segment_pipeline.ingest.sources import SourceError, SourceFile, literal_path
from segment_pipeline.storage.warehouse import quote_ident

EVENT_COLUMNS = ("event_id", "user_id", "event_name", "ts", "properties")
REQUIRED_COLUMNS = ("user_id", "event_name", "ts")
STAGED_FIELDS = (
    "source",
    "row_no",
    "raw_json",
    "event_id_raw",
    "user_id_raw",
    "event_name_raw",
    "ts_present",
    "ts_value",
    "props_text",
    "malformed",
    "file_idx",
)
STAGED_TABLE_DDL = """
    source VARCHAR, row_no BIGINT, raw_json VARCHAR, event_id_raw VARCHAR, user_id_raw VARCHAR,
    event_name_raw VARCHAR, ts_present BOOLEAN, ts_value TIMESTAMP, props_text VARCHAR,
    malformed VARCHAR, file_idx INTEGER
"""
_INSERT = "INSERT INTO {target} (" + ", ".join(STAGED_FIELDS) + ") "
_TIMESTAMP_TYPES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATE")

# Far above any sane event (DuckDB's default of 2 MB turned away real 10 MB lines); a longer
# line is a reject of its own, never a failed file.
MAX_LINE_BYTES = 64 * 2**20
LINE_TOO_LONG = f"line longer than {MAX_LINE_BYTES // 2**20} MB"
NOT_UTF8 = "line is not UTF-8 text"
RAW_EXCERPT_CHARS = 1000
_LINE_READER_OPTIONS = f"max_line_size = {MAX_LINE_BYTES}, store_rejects = true"
# The reason for a line DuckDB's line reader set aside; error_type comes from its rejects table.
_SKIPPED_LINE_REASON = f"""CASE any_value(error_type)
    WHEN 'LINE SIZE OVER MAXIMUM' THEN '{LINE_TOO_LONG}'
    WHEN 'INVALID ENCODING' THEN '{NOT_UTF8}'
    ELSE {{other}} END"""
_SKIPPED_LINE_RAW = f"""CASE WHEN length(any_value(csv_line)) > {RAW_EXCERPT_CHARS}
    THEN left(any_value(csv_line), {RAW_EXCERPT_CHARS}) || '…' ELSE any_value(csv_line) END"""
# Errors that say the file itself is broken; any other error is ours and must surface.
FILE_ERRORS = (duckdb.IOException, duckdb.InvalidInputException, duckdb.DataError, duckdb.NotSupportedError)


class UnreadableFile(SourceError):
    """One source file cannot be read at all; ``reason`` says why, for ``rejected_events``."""

    def __init__(self, source: SourceFile, reason: str) -> None:
        super().__init__(f"{source.path}: {reason}")
        self.reason = reason


def unreadable_reason(source: SourceFile, exc: BaseException) -> str:
    """What a user can act on, from a reader's error (DuckDB's own wording names its options)."""
    text = str(exc)
    if isinstance(exc, PermissionError) or "Permission denied" in text:
        return "unreadable file: permission denied"
    if isinstance(exc, FileNotFoundError) or "No files found" in text or "No such file" in text:
        return "unreadable file: it was removed while the load ran"
    if source.format == "parquet":
        if "too small to be a Parquet file" in text or "No magic bytes" in text:
            return "unreadable file: not a Parquet file (empty or truncated?)"
        return f"unreadable file: corrupt Parquet data ({_first_line(text)})"
    return f"unreadable file: {_first_line(text)}"


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else ""
    line = re.sub(r"^[\w ]*(Error|Exception): ", "", line)
    line = re.sub(r"""(?:Failed to read )?file ["'][^"']*["']:?\s*""", "", line)
    return line[:200] or "unknown error"


def _require_columns(source: SourceFile, columns: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise SourceError(
            f"{source.path}: missing required column(s) {', '.join(missing)}; "
            f"an events file needs user_id, event_name and ts (found: {', '.join(columns) or 'none'})"
        )


def _text(column: str | None, sql_type: str | None) -> str:
    """An expression giving the column as text; integers become their decimal digits."""
    if column is None:
        return "NULL::VARCHAR"
    ref = quote_ident(column)
    if sql_type in ("FLOAT", "DOUBLE") or (sql_type or "").startswith("DECIMAL"):
        return f"CASE WHEN {ref} = trunc({ref}) THEN CAST(CAST({ref} AS HUGEINT) AS VARCHAR) ELSE CAST({ref} AS VARCHAR) END"
    return f"CAST({ref} AS VARCHAR)"


def _ts(column: str | None, sql_type: str | None) -> str:
    if column is None:
        return "NULL::TIMESTAMP"
    ref = quote_ident(column)
    if sql_type == "TIMESTAMP WITH TIME ZONE":
        return f"timezone('UTC', {ref})"
    if sql_type in _TIMESTAMP_TYPES:
        # Naive: UTC already. A plain cast; through TIMESTAMPTZ (ICU) it cost 2 CPU-s per million rows.
        return f"CAST({ref} AS TIMESTAMP)"
    if sql_type == "VARCHAR":
        return _text_ts(ref)
    return "NULL::TIMESTAMP"  # numbers and other types are not timestamps


def _text_ts(expr: str) -> str:
    """A text time as UTC: converted by its offset when it has one, UTC when it has none."""
    return f"timezone('UTC', try_cast(trim({expr}) AS TIMESTAMPTZ))"


def _props(column: str | None, sql_type: str | None) -> str:
    if column is None:
        return "NULL::VARCHAR"
    ref = quote_ident(column)
    if sql_type in ("VARCHAR", "JSON"):
        return f"CAST({ref} AS VARCHAR)"
    return f"CASE WHEN {ref} IS NULL THEN NULL ELSE CAST(to_json({ref}) AS VARCHAR) END"


def typed_fields(types: dict[str, str]) -> str:
    """The staged fields (``event_id_raw`` .. ``props_text``) of a typed relation with these
    column types: a Parquet file, or the live engine's frames and tables."""
    col = {c: (c if c in types else None) for c in EVENT_COLUMNS}
    return f"""{_text(col["event_id"], types.get("event_id"))} AS event_id_raw,
               {_text(col["user_id"], types.get("user_id"))} AS user_id_raw,
               {_text(col["event_name"], types.get("event_name"))} AS event_name_raw,
               {quote_ident("ts")} IS NOT NULL AS ts_present,
               {_ts(col["ts"], types.get("ts"))} AS ts_value,
               {_props(col["properties"], types.get("properties"))} AS props_text"""


def _parquet_select(
    con: duckdb.DuckDBPyConnection, source: SourceFile, read_path: str, *, raw_as_struct: bool = False
) -> tuple[str, list]:
    """The file in the staging shape; with ``raw_as_struct``, ``raw_json`` is the row as a STRUCT
    (``to_json`` of it is the text), so a caller turns only the rows it keeps into text."""
    described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [read_path]).fetchall()
    types = {name: sql_type for name, sql_type, *_ in described}
    _require_columns(source, list(types))
    raw = f"struct_pack({', '.join(f'{quote_ident(n)} := {quote_ident(n)}' for n in types)})"
    sql = f"""
        SELECT ? || ':' || CAST(file_row_number + 1 AS VARCHAR) AS source,
               file_row_number + 1 AS row_no,
               {raw if raw_as_struct else f"CAST(to_json({raw}) AS VARCHAR)"} AS raw_json,
               {typed_fields(types)},
               NULL::VARCHAR AS malformed,
               getvariable('sp_file_idx') AS file_idx
        FROM read_parquet(?, file_row_number = true)
    """
    return sql, [str(source.path), read_path]


def _csv_header(source: SourceFile) -> list[str]:
    with open(source.path, "rb") as handle:
        first = handle.readline(MAX_LINE_BYTES + 1)
    if len(first) > MAX_LINE_BYTES:
        raise UnreadableFile(source, f"unreadable file: header {LINE_TOO_LONG}")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableFile(
            source, "unreadable file: the header line is not UTF-8 text (save the file as UTF-8)"
        ) from None
    if not text.strip():
        raise UnreadableFile(source, "unreadable file: empty file (no header line)")
    header = next(csv.reader([text.rstrip("\r\n")]), [])
    return [h.strip() for h in header]


def _stage_csv(con: duckdb.DuckDBPyConnection, source: SourceFile, read_path: str, target: str) -> None:
    header = _csv_header(source)
    if len(set(header)) != len(header):
        raise SourceError(f"{source.path}: the header repeats a column name: {header}")
    _require_columns(source, header)
    columns = "{" + ", ".join(f"'{i}': 'VARCHAR'" for i in range(len(header))) + "}"
    # Columns are read by position under neutral names, so header text never enters SQL.
    con.execute("DROP TABLE IF EXISTS _csv_rows; DROP TABLE IF EXISTS _csv_rejects; DROP TABLE IF EXISTS _csv_scans")
    con.execute(
        f"""CREATE TEMP TABLE _csv_rows AS SELECT * FROM read_csv(?, columns = {columns},
            auto_detect = false, header = true, delim = ',', quote = '"', escape = '"',
            {_LINE_READER_OPTIONS}, rejects_table = '_csv_rejects', rejects_scan = '_csv_scans')""",
        [read_path],
    )
    pos = {name: quote_ident(str(i)) for i, name in enumerate(header)}

    def field(name: str) -> str:
        return pos.get(name, "NULL::VARCHAR")

    raw = (
        "struct_pack(" + ", ".join(f"{quote_ident(str(i))} := {quote_ident(str(i))}" for i in range(len(header))) + ")"
    )
    con.execute(
        _INSERT.format(target=target)
        + f"""
        SELECT ? || ':' || CAST(record_no AS VARCHAR), record_no,
               CAST(to_json({raw}) AS VARCHAR),
               {field("event_id")}, {field("user_id")}, {field("event_name")},
               nullif(trim({field("ts")}), '') IS NOT NULL,
               {_text_ts(field("ts"))},
               nullif(trim({field("properties")}), ''),
               NULL, getvariable('sp_file_idx')
        FROM (SELECT *, rowid - (SELECT min(rowid) FROM _csv_rows) + 1 AS record_no FROM _csv_rows)""",
        [str(source.path)],
    )
    # Lines the CSV reader could not split are rejects too, never silently skipped.
    con.execute(
        _INSERT.format(target=target)
        + """
        SELECT ? || ':' || CAST(line AS VARCHAR), line, """
        + _SKIPPED_LINE_RAW
        + """,
               NULL, NULL, NULL, false, NULL, NULL,
               """
        + _SKIPPED_LINE_REASON.format(other="'malformed csv line: ' || lower(any_value(error_type))")
        + """,
               getvariable('sp_file_idx')
        FROM _csv_rejects GROUP BY line""",
        [str(source.path)],
    )
    con.execute("DROP TABLE _csv_rows; DROP TABLE _csv_rejects; DROP TABLE _csv_scans")


def _stage_ndjson(con: duckdb.DuckDBPyConnection, source: SourceFile, read_path: str, target: str) -> None:
    def get(key: str) -> str:
        return f"json_extract(line, '$.{key}')"

    def text(key: str) -> str:
        return f"json_extract_string(line, '$.{key}')"

    # Read as plain lines so one broken line is a reject, not a failed file; a table keeps
    # file order, so rowid counts the lines the reader kept (from an offset inside a transaction).
    con.execute("DROP TABLE IF EXISTS _ndjson_rejects; DROP TABLE IF EXISTS _ndjson_scans")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _ndjson_lines AS SELECT line
           FROM read_csv(?, columns = {{'line': 'VARCHAR'}}, header = false, delim = chr(1),
                         quote = '', escape = '', auto_detect = false,
                         {_LINE_READER_OPTIONS}, rejects_table = '_ndjson_rejects', rejects_scan = '_ndjson_scans')""",
        [read_path],
    )
    sql = f"""
        WITH set_aside AS (
            -- Lines the reader set aside (too long, not UTF-8) are missing from _ndjson_lines:
            -- the k-th kept line is line k + (set-aside lines with fewer than k kept lines before them).
            SELECT line - row_number() OVER (ORDER BY line) AS kept_before, row_number() OVER (ORDER BY line) AS skipped
            FROM (SELECT DISTINCT line FROM _ndjson_rejects)
        ),
        steps AS (SELECT kept_before, max(skipped) AS skipped FROM set_aside GROUP BY kept_before),
        kept AS (
            SELECT rowid - (SELECT min(rowid) FROM _ndjson_lines) + 1 AS k, line FROM _ndjson_lines
        ),
        lines AS (
            SELECT k + coalesce(steps.skipped, 0) AS line_no, line
            FROM kept ASOF LEFT JOIN steps ON kept.k > steps.kept_before
        ),
        parsed AS (
            SELECT line_no, line,
                   json_valid(line) AND starts_with(ltrim(line), '{{') AS is_object
            FROM lines WHERE line IS NOT NULL AND trim(line) <> ''
        )
        SELECT ? || ':' || CAST(line_no AS VARCHAR), line_no, line,
               CASE WHEN is_object THEN {text("event_id")} END,
               CASE WHEN is_object THEN {text("user_id")} END,
               CASE WHEN is_object THEN {text("event_name")} END,
               CASE WHEN is_object THEN {get("ts")} IS NOT NULL AND json_type({get("ts")}) <> 'NULL'
                                        AND coalesce(trim({text("ts")}), 'x') <> '' ELSE false END,
               CASE WHEN is_object AND json_type({get("ts")}) = 'VARCHAR' THEN {_text_ts(text("ts"))} END,
               CASE WHEN NOT is_object OR {get("properties")} IS NULL OR json_type({get("properties")}) = 'NULL' THEN NULL
                    WHEN json_type({get("properties")}) = 'VARCHAR' THEN {text("properties")}
                    ELSE CAST({get("properties")} AS VARCHAR) END,
               CASE WHEN NOT is_object THEN 'malformed json line' END,
               getvariable('sp_file_idx')
        FROM parsed
    """
    con.execute(_INSERT.format(target=target) + sql, [str(source.path)])
    con.execute(
        _INSERT.format(target=target)
        + f"""
        SELECT ? || ':' || CAST(line AS VARCHAR), line, {_SKIPPED_LINE_RAW},
               NULL, NULL, NULL, false, NULL, NULL,
               {_SKIPPED_LINE_REASON.format(other="'malformed json line'")}, getvariable('sp_file_idx')
        FROM _ndjson_rejects GROUP BY line""",
        [str(source.path)],
    )
    con.execute("DROP TABLE _ndjson_lines; DROP TABLE _ndjson_rejects; DROP TABLE _ndjson_scans")


# A file's rows once checked row by row (``normalize.reasoned_sql``): what the nightly load keeps
# of them until it gives them ids, the row as read (``raw_json``) for rejected rows only.
REASONED_FIELDS = ("file_idx", "row_no", "given_id", "user_id", "event_name", "ts", "properties", "reason", "raw_json")
REASONED_TABLE_DDL = """
    file_idx INTEGER, row_no BIGINT, given_id VARCHAR, user_id VARCHAR, event_name VARCHAR, ts TIMESTAMP,
    properties JSON, reason VARCHAR, raw_json VARCHAR
"""


# Parquet files of one schema are read together, up to this many bytes per statement: one
# statement per small file costs its overhead and runs on one core (a file's one row group).
PARQUET_BATCH_BYTES = 256 * 2**20


def stage_files_reasoned(
    con: duckdb.DuckDBPyConnection, sources: list[tuple[SourceFile, int]], target: str
) -> dict[int, str]:
    """Append the files' rows (each with its file index), normalized and with their reject
    reason, to the temp table ``target`` (``REASONED_FIELDS``); return the files that cannot be
    read at all (file index -> reason). A file that is not events raises ``SourceError``.

    Parquet files go straight from the reader to ``target``, consecutive ones of one schema in
    one statement; if that statement fails (it adds nothing then), each of its files is staged
    alone, so only a broken file is set aside. The line-based formats go file by file through
    their staging table. Only rejected rows' text is ever built.
    """
    unreadable: dict[int, str] = {}
    batch: list[tuple[SourceFile, int]] = []
    batch_types: list[tuple[str, str]] = []

    def flush() -> None:
        if len(batch) > 1:
            try:
                _stage_parquet_batch(con, batch, dict(batch_types), target)
                batch.clear()
                return
            except (OSError, duckdb.Error):
                pass  # some file of the batch is broken: each one alone says which
        for source, file_idx in batch:
            try:
                stage_file_reasoned(con, source, target, file_idx)
            except UnreadableFile as exc:
                unreadable[file_idx] = exc.reason
        batch.clear()

    for source, file_idx in sources:
        types = _parquet_types(con, source) if source.format == "parquet" else None
        if types is None or (batch and (types != batch_types or _batch_bytes(batch, source) > PARQUET_BATCH_BYTES)):
            flush()
        if types is None:
            batch.append((source, file_idx))
            flush()
        else:
            batch.append((source, file_idx))
            batch_types = types
    flush()
    return unreadable


def _batch_bytes(batch: list[tuple[SourceFile, int]], source: SourceFile) -> int:
    return sum(f.size_bytes for f, _ in batch) + source.size_bytes


def _parquet_types(con: duckdb.DuckDBPyConnection, source: SourceFile) -> list[tuple[str, str]] | None:
    """The file's columns and types; None when they cannot be read (staged alone, it says why)."""
    try:
        with literal_path(source.path) as read_path:
            described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [read_path]).fetchall()
    except (OSError, duckdb.Error):
        return None
    types = [(name, sql_type) for name, sql_type, *_ in described]
    return types if all(c in dict(types) for c in REQUIRED_COLUMNS) else None


def _stage_parquet_batch(
    con: duckdb.DuckDBPyConnection, batch: list[tuple[SourceFile, int]], types: dict[str, str], target: str
) -> None:
    with ExitStack() as stack:
        paths = [stack.enter_context(literal_path(source.path)) for source, _ in batch]
        raw = f"struct_pack({', '.join(f'{quote_ident(n)} := {quote_ident(n)}' for n in types)})"
        sql = f"""
            SELECT NULL::VARCHAR AS source, file_row_number + 1 AS row_no, {raw} AS raw_json,
                   {typed_fields(types)}, NULL::VARCHAR AS malformed,
                   CAST(?::INTEGER[] AS INTEGER[])[list_position(?::VARCHAR[], filename)] AS file_idx
            FROM read_parquet(?::VARCHAR[], file_row_number = true, filename = true)
        """
        reasoned = reasoned_sql(f"({sql})", raw="CAST(to_json({}) AS VARCHAR)")
        con.execute(_reasoned_insert(target) + f"({reasoned})", [[i for _, i in batch], paths, paths])


def _reasoned_insert(target: str) -> str:
    return f"INSERT INTO {target} ({', '.join(REASONED_FIELDS)}) SELECT {', '.join(REASONED_FIELDS)} FROM "


def stage_file_reasoned(con: duckdb.DuckDBPyConnection, source: SourceFile, target: str, file_idx: int) -> None:
    """One file of ``stage_files_reasoned``: raises as ``stage_file``; a failed file adds nothing."""
    insert = _reasoned_insert(target)
    if source.format != "parquet":
        con.execute(f"CREATE OR REPLACE TEMP TABLE _staged_file ({STAGED_TABLE_DDL})")
        stage_file(con, source, "_staged_file", file_idx)
        con.execute(insert + f"({reasoned_sql('_staged_file')})")
        con.execute("DROP TABLE _staged_file")
        return
    con.execute("SET VARIABLE sp_file_idx = ?", [file_idx])
    with _file_errors(source), literal_path(source.path) as read_path:
        sql, params = _parquet_select(con, source, read_path, raw_as_struct=True)
        con.execute(insert + f"({reasoned_sql(f'({sql})', raw='CAST(to_json({}) AS VARCHAR)')})", params)


def stage_file(con: duckdb.DuckDBPyConnection, source: SourceFile, target: str, file_idx: int) -> None:
    """Append one file's rows, in the staging shape, to the temp table ``target``.

    A file that cannot be read at all raises ``UnreadableFile``; it may have left some of
    its rows in ``target`` (a caller that goes on deletes them by ``file_idx``). A file that
    lacks a required column raises ``SourceError``: that is a wrong source, not a broken file.
    """
    con.execute("SET VARIABLE sp_file_idx = ?", [file_idx])
    with _file_errors(source), literal_path(source.path) as read_path:
        if source.format == "csv":
            _stage_csv(con, source, read_path, target)
        elif source.format == "ndjson":
            _stage_ndjson(con, source, read_path, target)
        else:
            sql, params = _parquet_select(con, source, read_path)
            con.execute(_INSERT.format(target=target) + sql, params)


@contextmanager
def _file_errors(source: SourceFile) -> Iterator[None]:
    """A reader's error as ``UnreadableFile`` (the file is broken) or ``SourceError`` (it is not events)."""
    try:
        yield
    except (OSError, *FILE_ERRORS) as exc:
        raise UnreadableFile(source, unreadable_reason(source, exc)) from exc
    except duckdb.Error as exc:
        raise SourceError(f"{source.path}: cannot be read as {source.format}: {_first_line(str(exc))}") from exc
