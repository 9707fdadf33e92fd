"""The compiled DuckDB SQL as Spark SQL: sqlglot's DuckDB-to-Spark translation plus the
project's own rewrites, and a refusal of every DuckDB construct known to translate wrong.

sqlglot gets most spellings right (``$p`` parameters to ``:p``, VARCHAR to STRING,
TIMESTAMP to TIMESTAMP_NTZ, quoting). What it gets wrong, silently, is refused here
rather than run: DuckDB's ``min(x, n)`` (n smallest; sqlglot keeps a scalar call),
1-based ``list[i]``, JSON pointers, ``to_json`` of a string, ``regexp_full_match``,
``AS MATERIALIZED``. Those constructs come from ``rules/dialect.py`` in Spark form instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

# DuckDB functions with no same-meaning Spark function of that name.
_REFUSED_FUNCTIONS = {
    "JSON_EXTRACT",
    "JSON_EXTRACT_STRING",
    "JSON_TYPE",
    "JSON_KEYS",
    "TO_JSON",
    "REGEXP_FULL_MATCH",
    "ARG_MAX",
    "LIST",
    "UNNEST",
}
_LONG = range(-(2**63), 2**63)


class UntranslatableSql(ValueError):
    """The SQL holds a DuckDB construct the Spark translation would get wrong."""


@dataclass(frozen=True)
class SparkQuery:
    sql: str
    args: dict[str, Any]
    view: str | None = None  # a step to register under this name before the next ones


def to_spark(sql: str, params: dict[str, Any] | None = None, tables: Mapping[str, str] | None = None) -> SparkQuery:
    """Spark SQL and its named arguments (``spark.sql(query.sql, args=query.args)``);
    ``tables`` renames table references (``analytics.event_snapshots`` to a Spark view)."""
    (query,) = _translate(sql, params, tables, split=False)
    return query


def to_spark_steps(
    sql: str, params: dict[str, Any] | None = None, tables: Mapping[str, str] | None = None
) -> list[SparkQuery]:
    """As ``to_spark``, with each CTE of the top-level WITH as a step of its own (``view``
    set): the caller computes it once and registers it under that name. Spark inlines a
    CTE at every use, so a step that DuckDB computes once (``AS MATERIALIZED``) would
    otherwise be recomputed by each segment that reads it."""
    return _translate(sql, params, tables, split=True)


def spark_ddl(columns: str) -> str:
    """DuckDB column definitions (``anchor DATE, user_id VARCHAR``) as a Spark schema string."""
    tree = sqlglot.parse_one(f"CREATE TABLE t ({columns})", read="duckdb")
    schema = tree.this
    if not isinstance(schema, exp.Schema):
        raise UntranslatableSql(f"not column definitions: {columns!r}")
    _refuse(schema)
    parts = []
    for column in schema.expressions:
        if not isinstance(column, exp.ColumnDef) or column.args.get("constraints"):
            raise UntranslatableSql(f"not a plain column definition: {column.sql('duckdb')}")
        kind = _rewrite(column.args["kind"], {})
        parts.append(f"{exp.to_identifier(column.name).sql('spark')} {kind.sql('spark')}")
    return ", ".join(parts)


def _hoist_ctes(tree: exp.Expr) -> exp.Expr:
    """Every WITH of a subquery moved to the top-level WITH, after its own CTEs (which cannot
    see them), so that ``split`` makes each a step: ``SELECT ... FROM (compiled query)``."""
    top = tree.args.get("with_")
    nested = [node for node in tree.find_all(exp.With) if node is not top]
    if not nested:
        return tree
    hoisted = []
    for node in nested:
        if any(inner is not node for inner in node.find_all(exp.With)):
            raise UntranslatableSql("a WITH inside a CTE of a subquery")
    for node in nested:
        hoisted += node.expressions
        node.pop()
    ctes = (list(top.expressions) if top is not None else []) + hoisted
    names = [cte.alias for cte in ctes]
    if len(set(names)) != len(names):
        raise UntranslatableSql(f"CTE names used twice: {sorted(names)}")
    tree.set("with_", exp.With(expressions=ctes))
    return tree


def _translate(
    sql: str, params: dict[str, Any] | None, tables: Mapping[str, str] | None, *, split: bool
) -> list[SparkQuery]:
    tree = sqlglot.parse_one(sql, read="duckdb")
    _refuse(tree)
    renames = dict(tables or {})
    tree = tree.transform(lambda node: _rewrite(node, renames))
    if split:
        tree = _hoist_ctes(tree)
    values = params or {}
    parts: list[tuple[str | None, exp.Expr]] = []
    with_clause = tree.args.get("with_")
    if split and with_clause is not None:
        parts += [(cte.alias, cte.this) for cte in with_clause.expressions]
        tree.set("with_", None)
    parts.append((None, tree))
    steps = []
    for view, part in parts:
        # Only the parameters a step uses: one query's parameters are shared by its steps.
        used = {node.name for node in part.find_all(exp.Placeholder)}
        missing = used - set(values)
        if missing:
            raise UntranslatableSql(f"parameters without a value: {sorted(missing)}")
        text = part.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)
        steps.append(SparkQuery(text, {name: spark_arg(values[name]) for name in sorted(used)}, view))
    return steps


def spark_arg(value: Any) -> Any:
    """A parameter value as Spark takes it. Times and days go as ISO text into the SQL's
    CAST, so the Python process's time zone never shifts them; integers beyond BIGINT as
    exact decimals."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise UntranslatableSql(f"time zone-aware parameter {value!r}: the warehouse's times are naive UTC")
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if type(value) is int and value not in _LONG:
        return Decimal(value)
    return value


def _refuse(tree: exp.Expr) -> None:
    for node in tree.walk():
        problem = None
        if isinstance(node, exp.CTE) and node.args.get("materialized"):
            problem = "AS MATERIALIZED (use dialect.materialized)"
        elif isinstance(node, exp.Bracket):
            problem = f"list index {node.sql('duckdb')} (DuckDB counts from 1; use try_element_at)"
        elif isinstance(node, (exp.Min, exp.Max)) and (node.expressions or node.args.get("count")):
            problem = f"{node.sql('duckdb')} (DuckDB's n smallest; use dialect.nth_smallest)"
        elif isinstance(node, exp.ArgMax) and _is_last_value(node):
            pass
        elif isinstance(node, exp.Func):
            name = (node.sql_name() if not isinstance(node, exp.Anonymous) else node.name).upper()
            if name in _REFUSED_FUNCTIONS or isinstance(
                node, (exp.JSONExtract, exp.JSONExtractScalar, exp.JSONFormat, exp.RegexpFullMatch)
            ):
                problem = f"{node.sql('duckdb')[:80]} (no Spark function of the same meaning)"
        elif isinstance(node, exp.DataType) and node.this in (exp.DataType.Type.UBIGINT, exp.DataType.Type.UINT128):
            problem = f"{node.sql('duckdb')} (no unsigned types in Spark)"
        if problem:
            raise UntranslatableSql(f"not translated to Spark: {problem}")


def _is_last_value(node: exp.ArgMax) -> bool:
    """``dialect.last_value``'s Spark form: ``max_by(v, CASE WHEN v IS NOT NULL THEN struct(t, v) END)``.
    DuckDB's ``arg_max(v, (t, v))`` skips rows whose ``v`` is NULL and orders row tuples;
    a plain ``max_by`` would not skip them, and Spark may read ``(t, v)`` otherwise."""
    key = node.expression
    if not isinstance(key, exp.Case) or len(key.args.get("ifs") or []) != 1 or key.args.get("default"):
        return False
    branch = key.args["ifs"][0]
    test, value = branch.this, branch.args.get("true")
    return (
        isinstance(test, exp.Not)
        and isinstance(test.this, exp.Is)
        and test.this.this == node.this
        and isinstance(value, exp.Struct)
        and len(value.expressions) == 2
        and value.expressions[1] == node.this
    )


def _rewrite(node: exp.Expr, tables: dict[str, str]) -> exp.Expr:
    if isinstance(node, exp.Table) and tables:
        name = ".".join(part.name for part in node.parts)
        if name in tables:
            renamed = exp.to_table(tables[name], dialect="spark")
            if node.alias:
                renamed.set("alias", node.args["alias"])
            return renamed
    # DuckDB's 128-bit integer: every value the compiler binds as HUGEINT fits DECIMAL(38,0).
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.INT128:
        return exp.DataType.build("DECIMAL(38,0)")
    return node
