"""Reading one source file into the uniform staging shape, whatever its format.

Every format ends up as the same columns, so that one SQL statement
(``events.classify_sql``) decides, for all of them alike, whether a row is loaded
or rejected and why:

    source VARCHAR       'path:N' (N: line for NDJSON and malformed CSV lines,
                         record number for Parquet and CSV records, from 1)
    raw_json VARCHAR     the row as read, for ``rejected_events.raw``
    event_id_raw, user_id_raw, event_name_raw VARCHAR
    ts_present BOOLEAN   the row has a ts value at all
    ts_value TIMESTAMPTZ the ts, NULL when it does not parse
    props_text VARCHAR   the properties as JSON text (NULL: none given)
    malformed VARCHAR    a reason when the row cannot even be split into fields
"""

from __future__ import annotations

import csv
import itertools

import duckdb

from segment_pipeline.ingest.sources import SourceError, SourceFile
from segment_pipeline.storage.warehouse import quote_ident

EVENT_COLUMNS = ("event_id", "user_id", "event_name", "ts", "properties")
REQUIRED_COLUMNS = ("user_id", "event_name", "ts")
STAGED_FIELDS = (
    "source", "row_no", "raw_json", "event_id_raw", "user_id_raw", "event_name_raw",
    "ts_present", "ts_value", "props_text", "malformed", "file_idx",
)
STAGED_TABLE_DDL = """
    source VARCHAR, row_no BIGINT, raw_json VARCHAR, event_id_raw VARCHAR, user_id_raw VARCHAR,
    event_name_raw VARCHAR, ts_present BOOLEAN, ts_value TIMESTAMPTZ, props_text VARCHAR,
    malformed VARCHAR, file_idx INTEGER
"""
_INSERT = "INSERT INTO {target} (" + ", ".join(STAGED_FIELDS) + ") "
_TIMESTAMP_TYPES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATE")


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
        return "NULL::TIMESTAMPTZ"
    ref = quote_ident(column)
    if sql_type in _TIMESTAMP_TYPES:
        return f"CAST({ref} AS TIMESTAMPTZ)"
    if sql_type == "VARCHAR":
        return f"try_cast(trim({ref}) AS TIMESTAMPTZ)"
    return "NULL::TIMESTAMPTZ"  # numbers and other types are not timestamps


def _props(column: str | None, sql_type: str | None) -> str:
    if column is None:
        return "NULL::VARCHAR"
    ref = quote_ident(column)
    if sql_type in ("VARCHAR", "JSON"):
        return f"CAST({ref} AS VARCHAR)"
    return f"CASE WHEN {ref} IS NULL THEN NULL ELSE CAST(to_json({ref}) AS VARCHAR) END"


def _parquet_select(con: duckdb.DuckDBPyConnection, source: SourceFile) -> tuple[str, list]:
    described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(source.path)]).fetchall()
    types = {name: sql_type for name, sql_type, *_ in described}
    _require_columns(source, list(types))
    col = {c: (c if c in types else None) for c in EVENT_COLUMNS}
    sql = f"""
        SELECT ? || ':' || CAST(file_row_number + 1 AS VARCHAR) AS source,
               file_row_number + 1 AS row_no,
               CAST(to_json(struct_pack({', '.join(f'{quote_ident(n)} := {quote_ident(n)}' for n in types)})) AS VARCHAR) AS raw_json,
               {_text(col['event_id'], types.get('event_id'))} AS event_id_raw,
               {_text(col['user_id'], types.get('user_id'))} AS user_id_raw,
               {_text(col['event_name'], types.get('event_name'))} AS event_name_raw,
               {quote_ident('ts')} IS NOT NULL AS ts_present,
               {_ts(col['ts'], types.get('ts'))} AS ts_value,
               {_props(col['properties'], types.get('properties'))} AS props_text,
               NULL::VARCHAR AS malformed,
               getvariable('sp_file_idx') AS file_idx
        FROM read_parquet(?, file_row_number = true)
    """
    return sql, [str(source.path), str(source.path)]


def _csv_header(source: SourceFile) -> list[str]:
    with open(source.path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(itertools.islice(handle, 1)), [])
    return [h.strip() for h in header]


def _stage_csv(con: duckdb.DuckDBPyConnection, source: SourceFile, target: str) -> None:
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
            store_rejects = true, rejects_table = '_csv_rejects', rejects_scan = '_csv_scans')""",
        [str(source.path)],
    )
    pos = {name: quote_ident(str(i)) for i, name in enumerate(header)}

    def field(name: str) -> str:
        return pos.get(name, "NULL::VARCHAR")

    raw = "struct_pack(" + ", ".join(f"{quote_ident(str(i))} := {quote_ident(str(i))}" for i in range(len(header))) + ")"
    con.execute(
        _INSERT.format(target=target) + f"""
        SELECT ? || ':' || CAST(record_no AS VARCHAR), record_no,
               CAST(to_json({raw}) AS VARCHAR),
               {field('event_id')}, {field('user_id')}, {field('event_name')},
               nullif(trim({field('ts')}), '') IS NOT NULL,
               try_cast(trim({field('ts')}) AS TIMESTAMPTZ),
               nullif(trim({field('properties')}), ''),
               NULL, getvariable('sp_file_idx')
        FROM (SELECT *, rowid - (SELECT min(rowid) FROM _csv_rows) + 1 AS record_no FROM _csv_rows)""",
        [str(source.path)],
    )
    # Lines the CSV reader could not split are rejects too, never silently skipped.
    con.execute(
        _INSERT.format(target=target) + """
        SELECT ? || ':' || CAST(line AS VARCHAR), line, any_value(csv_line),
               NULL, NULL, NULL, false, NULL, NULL,
               'malformed csv line: ' || lower(any_value(error_type)), getvariable('sp_file_idx')
        FROM _csv_rejects GROUP BY line""",
        [str(source.path)],
    )
    con.execute("DROP TABLE _csv_rows; DROP TABLE _csv_rejects; DROP TABLE _csv_scans")


def _stage_ndjson(con: duckdb.DuckDBPyConnection, source: SourceFile, target: str) -> None:
    def get(key: str) -> str:
        return f"json_extract(line, '$.{key}')"

    def text(key: str) -> str:
        return f"json_extract_string(line, '$.{key}')"

    # Read as plain lines so one broken line is a reject, not a failed file;
    # a table keeps file order, so rowid counts lines (from an offset inside a transaction).
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _ndjson_lines AS SELECT line
           FROM read_csv(?, columns = {'line': 'VARCHAR'}, header = false, delim = chr(1),
                         quote = '', escape = '', auto_detect = false)""",
        [str(source.path)],
    )
    sql = f"""
        WITH lines AS (
            SELECT rowid - (SELECT min(rowid) FROM _ndjson_lines) + 1 AS line_no, line FROM _ndjson_lines
        ),
        parsed AS (
            SELECT line_no, line,
                   json_valid(line) AND starts_with(ltrim(line), '{{') AS is_object
            FROM lines WHERE line IS NOT NULL AND trim(line) <> ''
        )
        SELECT ? || ':' || CAST(line_no AS VARCHAR), line_no, line,
               CASE WHEN is_object THEN {text('event_id')} END,
               CASE WHEN is_object THEN {text('user_id')} END,
               CASE WHEN is_object THEN {text('event_name')} END,
               CASE WHEN is_object THEN {get('ts')} IS NOT NULL AND json_type({get('ts')}) <> 'NULL'
                                        AND coalesce(trim({text('ts')}), 'x') <> '' ELSE false END,
               CASE WHEN is_object AND json_type({get('ts')}) = 'VARCHAR' THEN try_cast(trim({text('ts')}) AS TIMESTAMPTZ) END,
               CASE WHEN NOT is_object OR {get('properties')} IS NULL OR json_type({get('properties')}) = 'NULL' THEN NULL
                    WHEN json_type({get('properties')}) = 'VARCHAR' THEN {text('properties')}
                    ELSE CAST({get('properties')} AS VARCHAR) END,
               CASE WHEN NOT is_object THEN 'malformed json line' END,
               getvariable('sp_file_idx')
        FROM parsed
    """
    con.execute(_INSERT.format(target=target) + sql, [str(source.path)])
    con.execute("DROP TABLE _ndjson_lines")


def stage_file(con: duckdb.DuckDBPyConnection, source: SourceFile, target: str, file_idx: int) -> None:
    """Append one file's rows, in the staging shape, to the temp table ``target``."""
    con.execute("SET VARIABLE sp_file_idx = ?", [file_idx])
    try:
        if source.format == "csv":
            _stage_csv(con, source, target)
        elif source.format == "ndjson":
            _stage_ndjson(con, source, target)
        else:
            sql, params = _parquet_select(con, source)
            con.execute(_INSERT.format(target=target) + sql, params)
    except duckdb.Error as exc:
        raise SourceError(f"{source.path}: cannot be read as {source.format}: {exc}") from exc
