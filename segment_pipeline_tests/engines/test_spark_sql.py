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


def test_ctes_of_a_nested_compiled_query_become_steps():
    from segment_pipeline.engines.spark_sql import to_spark_steps

    steps = to_spark_steps(
        "WITH a AS (SELECT 1 AS x) SELECT CAST($d AS DATE), x FROM (WITH b AS (SELECT x FROM a) SELECT x FROM b)",
        {"d": date(2026, 1, 2)},
    )
    assert [step.view for step in steps] == ["a", "b", None]
    assert steps[1].sql == "SELECT x FROM a"
    assert steps[2].sql == "SELECT CAST(:d AS DATE), x FROM (SELECT x FROM b)"
    assert steps[2].args == {"d": "2026-01-02"}
    with pytest.raises(UntranslatableSql, match="used twice"):
        to_spark_steps("WITH a AS (SELECT 1 AS x) SELECT x FROM (WITH a AS (SELECT 2 AS x) SELECT x FROM a)")


def test_column_definitions_as_a_spark_schema():
    from segment_pipeline.engines.spark_sql import spark_ddl

    assert spark_ddl("anchor DATE, segment_name VARCHAR, n HUGEINT, t TIMESTAMP") == (
        "anchor DATE, segment_name STRING, n DECIMAL(38, 0), t TIMESTAMP_NTZ"
    )
    with pytest.raises(UntranslatableSql):
        spark_ddl("n UBIGINT")


def test_the_latest_value_only_in_the_spark_dialects_form():
    assert to_spark(f"SELECT {SPARK.last_value('v', 't')} FROM x").sql == (
        "SELECT MAX_BY(v, CASE WHEN NOT v IS NULL THEN STRUCT(t, v) END) FROM x"
    )
    # DuckDB's arg_max over a row tuple, and a max_by that would not skip NULL values: refused.
    for sql in [f"SELECT {DUCKDB.last_value('v', 't')} FROM x", "SELECT max_by(v, struct(t, v)) FROM x"]:
        with pytest.raises(UntranslatableSql):
            to_spark(sql)


def test_feature_spellings_of_each_dialect():
    # DuckDB: the feature SQL's spellings before the seam, character for character.
    assert DUCKDB.days_from("a", "b") == "b - a"
    assert DUCKDB.days_before("p.anchor", 7) == "p.anchor - 7"
    assert DUCKDB.days_after("p.anchor", 7) == "p.anchor + 7"
    assert DUCKDB.stable_sum("x", " FILTER (WHERE g)") == "list_sum(list_sort(list(x) FILTER (WHERE g)))"
    assert DUCKDB.last_value("v", "t") == "arg_max(v, (t, v))"
    assert DUCKDB.json_number("$k") == "TRY_CAST(json_extract_string(properties, $k) AS DOUBLE)"
    # Spark: what they become after the translation.
    spark = to_spark(
        f"SELECT {SPARK.days_from('a', 'b')}, {SPARK.days_before('p.anchor', 7)}, {SPARK.json_number('$k')},"
        f" {SPARK.stable_sum('x', ' FILTER (WHERE g)')} FROM p",
        {"k": "a/b"},
    )
    assert spark.sql == (
        "SELECT DATEDIFF(DAY, a, b), DATE_ADD(p.anchor, -7),"
        " TRY_CAST(TRY_ELEMENT_AT(FROM_JSON(properties, 'map<string,string>'), :k) AS DOUBLE),"
        " CASE WHEN COUNT(x) FILTER(WHERE g) > 0 THEN AGGREGATE(ARRAY_SORT(COLLECT_LIST(x) FILTER(WHERE g)),"
        " CAST(0 AS DOUBLE), (acc, x) -> acc + x) END FROM p"
    )
