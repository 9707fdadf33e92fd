"""The DuckDB-to-Spark translation: what it rewrites, and what it refuses instead of mistranslating."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from segment_pipeline.engines.spark_sql import UntranslatableSql, spark_arg, to_spark
from segment_pipeline.rules.dialect import DUCKDB, SPARK


@pytest.mark.parametrize(
    "sql",
    [
        "WITH a AS MATERIALIZED (SELECT 1 AS x) SELECT x FROM a",
        "SELECT (min(ts, 3) FILTER (WHERE f0))[3] FROM t",
        "SELECT min(ts, 2) FROM t",
        "SELECT x[1] FROM t",
        "SELECT regexp_full_match(x, '-?[0-9]+') FROM t",
        "SELECT to_json(x) FROM t",
        "SELECT json_extract(properties, '/k') FROM t",
        "SELECT CAST(x AS UBIGINT) FROM t",
        # The DuckDB dialect's own spellings of the seam's constructs: none may reach Spark.
        f"SELECT {DUCKDB.nth_smallest('ts', 2)} FROM t",
        f"SELECT {DUCKDB.hash32('x')} FROM t",
    ],
)
def test_constructs_that_translate_wrong_are_refused(sql):
    with pytest.raises(UntranslatableSql):
        to_spark(sql)


def test_duckdb_property_tests_are_refused_and_spark_ones_pass():
    from segment_pipeline.rules.compiler import SqlParams

    for value in ["x", True, 5, 2.5, 2**53 + 1]:
        with pytest.raises(UntranslatableSql):
            to_spark(f"SELECT {DUCKDB.property_test('k', value, SqlParams())} FROM t")
        params = SqlParams()
        assert (
            "SCHEMA_OF_VARIANT"
            in to_spark(f"SELECT {SPARK.property_test('k', value, params)} FROM t", params.values).sql
        )


def test_types_parameters_and_table_names_are_rewritten():
    query = to_spark(
        "SELECT CAST($a AS HUGEINT), CAST($b AS TIMESTAMP), CAST($c AS VARCHAR) FROM analytics.event_snapshots e",
        {"a": 2**70, "b": datetime(2026, 1, 2, 3, 4, 5, 6), "c": "x"},
        tables={"analytics.event_snapshots": "sp_events"},
    )
    assert query.sql == (
        "SELECT CAST(:a AS DECIMAL(38, 0)), CAST(:b AS TIMESTAMP_NTZ), CAST(:c AS STRING) FROM sp_events AS e"
    )
    assert query.args == {"a": Decimal(2**70), "b": "2026-01-02 03:04:05.000006", "c": "x"}


def test_parameter_values():
    assert spark_arg(date(2026, 1, 2)) == "2026-01-02"
    assert spark_arg(2**63 - 1) == 2**63 - 1 and spark_arg(-(2**63) - 1) == Decimal(-(2**63) - 1)
    assert spark_arg(True) is True and spark_arg(2.5) == 2.5 and spark_arg("it's") == "it's"
    with pytest.raises(UntranslatableSql):
        spark_arg(datetime(2026, 1, 1, tzinfo=UTC))


def test_double_constants_only_from_numbers():
    assert SPARK.double("4294967296.0") == "CAST(4294967296.0 AS DOUBLE)"
    assert DUCKDB.double("100.0") == "100.0"
    with pytest.raises(ValueError, match="not a decimal number"):
        SPARK.double("1; DROP TABLE x")
