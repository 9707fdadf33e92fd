"""Great Expectations on the warehouse itself: a SQL datasource over the run's own DuckDB connection.

GX reaches DuckDB through SQLAlchemy (``duckdb_engine``). The engine does not open the file
again: DuckDB lets one process hold a file with one configuration, and the run already holds
its private build copy, so every SQLAlchemy connection is a cursor of the caller's connection
(same database, its own session). Results come back as plain ``SuiteOutcome``s, and the
validations are rendered as Data Docs in a folder the caller names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from segment_pipeline.quality.gx_runner import (
    LOCK,
    MAX_EXAMPLES,
    ExpectationOutcome,
    SuiteOutcome,
    fresh_context,
    outcome_of,
    quiet_gx,
    text_of,
)
from segment_pipeline.storage.warehouse import quote_ident

if TYPE_CHECKING:
    from great_expectations.expectations.expectation import Expectation

# Rows a GX query may bring into Python: its sampled rows are LIMITed to a few dozen, its
# aggregates are one row; more means a query that would copy the warehouse into memory.
MAX_FETCHED_ROWS = 1_000
# Offending rows GX fetches per rule: enough for MAX_EXAMPLES distinct values after repeats.
SAMPLED_ROWS = 4 * MAX_EXAMPLES
DOCS_SITE = "warehouse_quality"
BATCH_TABLE = "gx_batch"


def run_query_suites(
    con: duckdb.DuckDBPyConnection,
    query: str,
    suites: Mapping[str, Sequence[Expectation]],
    *,
    variables: Mapping[str, Any] | None = None,
    id_column: str = "event_id",
    docs_dir: Path | None = None,
) -> dict[str, SuiteOutcome]:
    """Validate the rows of ``query`` (run on ``con``'s database) against each suite, in SQL.

    ``variables`` are set (bound, not pasted) in the session for the query's ``getvariable``.
    Offending rows are named by ``id_column``. With ``docs_dir``, GX writes its Data Docs site
    there (``index.html``), one page per suite of this call.
    """
    gx = quiet_gx()
    result_format = {
        "result_format": "SUMMARY",
        "partial_unexpected_count": SAMPLED_ROWS,
        "unexpected_index_column_names": [id_column],
    }
    with LOCK, _session(con, variables or {}) as session:
        # The rows are computed once, into a temp table of GX's one session (in DuckDB, under its
        # memory limit): GX issues ~30 queries, and the query asset would recompute them for each.
        session.execute(f"CREATE TEMP TABLE {BATCH_TABLE} AS {query}")
        from sqlalchemy.pool import StaticPool  # imported here: the definitions load without SQLAlchemy

        context = fresh_context()
        if docs_dir is not None:
            context.add_data_docs_site(DOCS_SITE, _docs_site(docs_dir))
        source = context.data_sources.add_sql(
            "warehouse",
            # The URL only picks the dialect; the one connection is ``session``.
            connection_string="duckdb:///:memory:",
            kwargs={"creator": lambda: _BufferedConnection(session), "poolclass": StaticPool},
        )
        batch = source.add_query_asset("slice", query=f"SELECT * FROM {BATCH_TABLE}").add_batch_definition_whole_table(
            "slice"
        )
        outcomes = {}
        for name, expectations in suites.items():
            suite = context.suites.add(gx.ExpectationSuite(name=name))
            for position, expectation in enumerate(expectations):
                expectation.meta = {**(expectation.meta or {}), "position": position}  # GX reorders results
                suite.add_expectation(expectation)
            validation = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
            result = validation.run(result_format=result_format)
            results = sorted(result.results, key=lambda r: (r.expectation_config.meta or {}).get("position", 0))
            outcomes[name] = SuiteOutcome(
                suite=name,
                success=bool(result.success),
                evaluated_rows=max((int((r.result or {}).get("element_count") or 0) for r in results), default=0),
                outcomes=[_outcome(r, id_column, session) for r in results],
            )
        if docs_dir is not None:
            context.build_data_docs(site_names=[DOCS_SITE])
    return outcomes


def _outcome(result: Any, id_column: str, session: duckdb.DuckDBPyConnection) -> ExpectationOutcome:
    config = result.expectation_config
    meta = config.meta or {}
    details = result.result or {}
    if config.type == "unexpected_rows_expectation":
        # A rule GX has no SQL for on DuckDB, written as a query: label it by the rule it stands for.
        column = meta["column"]
        count = details.get("observed_value")
        # The run's SUMMARY format overrides the rule's own COMPLETE, so GX keeps no rows: the
        # examples are the query's first offending rows.
        rows = _first_rows(session, config.kwargs["unexpected_rows_query"]) if count else []
        outcome = outcome_of(result, label=f"{meta['rule']}({column})", examples=_examples(rows, column, id_column))
        # Its observed value is the offending rows' count, which a map rule reports as unexpected.
        error = outcome.observed if outcome.observed and outcome.observed.startswith("error") else None
        return replace(outcome, unexpected_count=None if count is None else int(count), observed=error)
    column = config.kwargs.get("column")
    rows = details.get("partial_unexpected_index_list") or []
    return outcome_of(result, examples=_examples(rows, column, id_column) if column else [])


def _first_rows(session: duckdb.DuckDBPyConnection, query: str) -> list[dict[str, Any]]:
    cursor = session.execute(f"SELECT * FROM ({query.replace('{batch}', BATCH_TABLE)}) LIMIT {SAMPLED_ROWS}")
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _examples(rows: Sequence[Mapping[str, Any]], column: str, id_column: str) -> list[str]:
    """``event_id=e1: value`` per offending row, a repeated id once."""
    examples = [
        f"{id_column}={row.get(id_column)}" + ("" if column == id_column else f": {text_of(row.get(column))}")
        for row in rows
    ]
    return list(dict.fromkeys(examples))[:MAX_EXAMPLES]


def _docs_site(docs_dir: Path) -> Any:
    return {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }


@contextmanager
def _session(con: duckdb.DuckDBPyConnection, variables: Mapping[str, Any]) -> Iterator[duckdb.DuckDBPyConnection]:
    """A session of ``con``'s database (same file, no second open), closed with its temp table."""
    cursor = con.cursor()
    try:
        cursor.execute("SET enable_progress_bar = false")
        for name, value in variables.items():
            cursor.execute(f"SET VARIABLE {quote_ident(name)} = ?", [value])
        yield cursor
    finally:
        cursor.close()


def _duckdb_engine() -> Any:
    import duckdb_engine

    return duckdb_engine


class _BufferedCursor:
    """A DB-API cursor that reads its result at ``execute``.

    GX reads a result after handing its SQLAlchemy connection back to the pool, whose
    rollback discards a DuckDB result still pending (with a URL-built engine too: every
    query then reads no rows). Reading at ``execute`` keeps the rows; ``MAX_FETCHED_ROWS``
    keeps that bounded.
    """

    arraysize = 1

    def __init__(self, connection: Any) -> None:
        self._cursor = _duckdb_engine().CursorWrapper(connection.raw, connection)
        self._raw: duckdb.DuckDBPyConnection = connection.raw
        self.connection = connection  # SQLAlchemy's Postgres roots read notices from it
        self._rows: list[tuple] = []
        self._truncated = False
        self.description: Any = None

    def execute(self, statement: str, parameters: Any = None, context: Any = None) -> None:
        self._cursor.execute(statement, parameters, context)
        self.description = self._raw.description
        self._rows = self._raw.fetchmany(MAX_FETCHED_ROWS + 1) if self.description else []
        self._truncated = len(self._rows) > MAX_FETCHED_ROWS
        del self._rows[MAX_FETCHED_ROWS:]

    def executemany(self, statement: str, parameters: Any = None, context: Any = None) -> None:
        self._cursor.executemany(statement, parameters, context)
        self.description, self._rows, self._truncated = None, [], False

    @property
    def rowcount(self) -> int:
        return -1

    def fetchone(self) -> tuple | None:
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        size = size or self.arraysize
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    def fetchall(self) -> list[tuple]:
        if self._truncated:
            raise RuntimeError(f"a quality query returned over {MAX_FETCHED_ROWS} rows; it would copy the warehouse")
        rows, self._rows = self._rows, []
        return rows

    def close(self) -> None:
        self._rows = []


class _BufferedConnection:
    """duckdb_engine's connection wrapper with cursors that read at ``execute``."""

    def __init__(self, raw: duckdb.DuckDBPyConnection) -> None:
        self._wrapper = _duckdb_engine().ConnectionWrapper(raw)
        self.raw = raw
        self.notices = self._wrapper.notices

    def cursor(self) -> _BufferedCursor:
        return _BufferedCursor(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapper, name)
