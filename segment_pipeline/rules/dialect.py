"""The few SQL constructs that DuckDB and Spark spell differently, behind one small seam.

The compiled SQL is DuckDB SQL. Where Spark has the same construct under another name,
the Spark engine's translation (``engines/spark_sql.py``: sqlglot plus tested rewrites)
changes the spelling. Where the two have no common construct at all, the SQL builders
ask a dialect: a typed test of a JSON property, the n-th smallest value of a group, a
CTE computed once, the slot/control hash's 32-bit prefix, and a DOUBLE constant; for goal
features also date arithmetic (DATE - DATE is an interval in Spark), a sum in a fixed
order, the value of the latest event, and a JSON property read as a number.

``DUCKDB`` writes exactly the SQL this project wrote before the seam existed;
``SPARK`` writes Spark 4 forms that survive the translation (each covered by a test on a
real Spark session, ``segment_pipeline_tests/engines``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segment_pipeline.rules.compiler import SqlParams

_HUGEINT_RANGE = range(-(2**127), 2**127)


def _json_pointer(key: str) -> str:
    return "/" + key.replace("~", "~0").replace("/", "~1")


class DuckDBDialect:
    """Today's DuckDB spellings (the source of truth)."""

    name = "duckdb"
    materialized = " MATERIALIZED"

    def property_test(self, key: str, value: Any, params: SqlParams) -> str:
        """The event's property ``key`` equals ``value``, with JSON types kept apart.

        ``json_extract`` re-serializes the value it finds, so a string is compared with the
        value serialized by the same writer, and a boolean with ``true``/``false``; ``"1"``
        or ``true`` never cast to a number, so numbers compare as DOUBLE, except integers
        beyond 2**53, which compare exactly when the JSON holds an integer.
        """
        fragment = f"CAST(json_extract(properties, {params.bind(_json_pointer(key), 'VARCHAR')}) AS VARCHAR)"
        if type(value) is str:
            return f"{fragment} = CAST(to_json({params.bind(value, 'VARCHAR')}) AS VARCHAR)"
        if type(value) is bool:
            return f"{fragment} = {params.bind('true' if value else 'false', 'VARCHAR')}"
        as_double = f"TRY_CAST({fragment} AS DOUBLE) = "
        if type(value) is float and not value.is_integer():
            return as_double + params.bind(value, "DOUBLE")
        number = int(value)
        if abs(number) < 2**53:
            return as_double + params.bind(float(number), "DOUBLE")
        exact = (
            f"TRY_CAST({fragment} AS HUGEINT) = {params.bind(number, 'HUGEINT')}"
            if number in _HUGEINT_RANGE
            else "FALSE"
        )
        inexact = as_double + params.bind(float(number), "DOUBLE") if float(number) == number else "FALSE"
        return f"CASE WHEN regexp_full_match({fragment}, '-?[0-9]+') THEN {exact} ELSE {inexact} END"

    def nth_smallest(self, column: str, n: int, where: str = "") -> str:
        """The ``n``-th smallest ``column`` of the group (NULL when it has fewer), ``where`` a FILTER clause."""
        return f"(min({column}, {n}) {where})[{n}]" if where else f"min({column}, {n})[{n}]"

    def hash32(self, text: str) -> str:
        """The first 8 hex digits of sha256(``text``) as an integer (0 .. 2**32-1)."""
        return f"CAST('0x' || substr(sha256({text}), 1, 8) AS UBIGINT)"

    def double(self, literal: str) -> str:
        """A DOUBLE constant from its decimal spelling (``4294967296.0``)."""
        return literal

    def days_from(self, earlier: str, later: str) -> str:
        """Whole days from one DATE expression to another (an integer)."""
        return f"{later} - {earlier}"

    def days_before(self, day: str, days: int) -> str:
        """The DATE ``days`` days before the DATE expression ``day``."""
        return f"{day} - {int(days)}"

    def days_after(self, day: str, days: int) -> str:
        return f"{day} + {int(days)}"

    def median(self, expr: str) -> str:
        """The interpolated median of a DOUBLE expression (a FILTER clause may follow)."""
        return f"median({expr})"

    def stable_sum(self, expr: str, where: str = "") -> str:
        """``sum`` of a DOUBLE expression added in the order of its values; ``where`` a FILTER clause.
        DuckDB's parallel ``sum`` adds the threads' partial sums in the order they finish, so the
        last bits of a group's sum change from run to run, and a fitted model amplifies them.

        The group's values are collected, sorted, and added one by one from 0.0 (NULLs skipped;
        NULL when there is none): the same bits as ``sum(x ORDER BY x)``, which costs 4-5x more
        (an ordered aggregate sorts each group apart: 5.5 s of a 10 s training-feature query per
        summed property at 6M events)."""
        return f"list_sum(list_sort(list({expr}){where}))"

    def last_value(self, value: str, at: str) -> str:
        """The non-NULL ``value`` of the group's latest ``at``; of values at the same time, the largest."""
        return f"arg_max({value}, ({at}, {value}))"

    def json_number(self, key_param: str) -> str:
        """The event's property (``key_param``: its JSON pointer, bound) as DOUBLE: numbers and
        number-like strings; NULL when absent or not a number."""
        return f"TRY_CAST(json_extract_string(properties, {key_param}) AS DOUBLE)"

    def json_key(self, key: str) -> str:
        """How ``json_number`` names a key: DuckDB takes a JSON pointer."""
        return _json_pointer(key)


class SparkDialect(DuckDBDialect):
    """Spark 4 forms, written so that the DuckDB-to-Spark translation keeps them as they are."""

    name = "spark"
    materialized = ""  # Spark has no MATERIALIZED; the engine caches where it matters

    def property_test(self, key: str, value: Any, params: SqlParams) -> str:
        """The DuckDB test's meaning on a VARIANT (Spark >= 4.0): the value's JSON type first,
        then its value, so ``"5"`` is not ``5`` and ``"true"`` is not ``true``.

        JSON text readers (``get_json_object``, ``from_json`` into strings) stringify scalars,
        which loses exactly that; a map of VARIANT keeps it, and looks keys up as they are
        (``a/b``, ``dot.key``, quotes need no escaping). Numbers are compared on their JSON
        text, as DuckDB does: parsed as DOUBLE, or, for an integer literal beyond 2**53,
        digit for digit (VARIANT would turn ``9007199254740993.0`` into an integer)."""
        bound_key = params.bind(key, "VARCHAR")
        v = f"try_element_at(from_json(properties, 'map<string,variant>'), {bound_key})"
        kind = f"schema_of_variant({v})"
        if type(value) is str:
            return f"({kind} = 'STRING' AND try_variant_get({v}, '$', 'string') = {params.bind(value, 'VARCHAR')})"
        if type(value) is bool:
            return f"({kind} = 'BOOLEAN' AND try_variant_get({v}, '$', 'boolean') = {params.bind(value, 'BOOLEAN')})"
        text = f"try_element_at(from_json(properties, 'map<string,string>'), {bound_key})"
        numeric = f"({kind} IN ('BIGINT', 'INT', 'SMALLINT', 'TINYINT', 'DOUBLE', 'FLOAT') OR {kind} LIKE 'DECIMAL(%')"
        as_double = f"({numeric} AND TRY_CAST({text} AS DOUBLE) = "
        if type(value) is float and not value.is_integer():
            return as_double + params.bind(value, "DOUBLE") + ")"
        number = int(value)
        if abs(number) < 2**53:
            return as_double + params.bind(float(number), "DOUBLE") + ")"
        exact = f"{text} = {params.bind(str(number), 'VARCHAR')}" if number in _HUGEINT_RANGE else "FALSE"
        inexact = as_double + params.bind(float(number), "DOUBLE") + ")" if float(number) == number else "FALSE"
        return f"CASE WHEN {numeric} AND regexp_like({text}, '^-?[0-9]+$') THEN {exact} ELSE {inexact} END"

    def nth_smallest(self, column: str, n: int, where: str = "") -> str:
        # DuckDB's min(x, n) has no Spark twin (a transpiler made it a scalar LEAST);
        # try_element_at: NULL, not an ANSI error, when the group has fewer than n.
        collected = f"collect_list({column}) {where}" if where else f"collect_list({column})"
        return f"try_element_at(sort_array({collected}), {n})"

    def hash32(self, text: str) -> str:
        return f"CAST(conv(substr(sha2({text}, 256), 1, 8), 16, 10) AS BIGINT)"

    def days_from(self, earlier: str, later: str) -> str:
        return f"date_diff('day', {earlier}, {later})"  # written DATEDIFF(DAY, a, b): a BIGINT

    def days_before(self, day: str, days: int) -> str:
        return f"date_add({day}, -{int(days)})"

    def days_after(self, day: str, days: int) -> str:
        return f"date_add({day}, {int(days)})"

    def median(self, expr: str) -> str:
        return f"median({expr})"

    def stable_sum(self, expr: str, where: str = "") -> str:
        # Spark's sum takes no ORDER BY: the values sorted, then added from the smallest, as
        # DuckDB does (0.0 + the first value is that value); NULL when the group has none.
        return (
            f"CASE WHEN count({expr}){where} > 0 THEN "
            f"aggregate(array_sort(collect_list({expr}){where}), CAST(0 AS DOUBLE), (acc, x) -> acc + x) END"
        )

    def last_value(self, value: str, at: str) -> str:
        # DuckDB's arg_max skips rows whose value is NULL; max_by skips rows whose key is.
        return f"max_by({value}, CASE WHEN {value} IS NOT NULL THEN struct({at}, {value}) END)"

    def json_number(self, key_param: str) -> str:
        # Strings are read unquoted and numbers as their text, as json_extract_string does.
        return f"TRY_CAST(try_element_at(from_json(properties, 'map<string,string>'), {key_param}) AS DOUBLE)"

    def json_key(self, key: str) -> str:
        return key

    def double(self, literal: str) -> str:
        # A decimal literal would make Spark divide in DECIMAL, which moves the control
        # hash of most users by up to 5e-13 against Python's float division.
        if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", literal):
            raise ValueError(f"not a decimal number: {literal!r}")
        return f"CAST({literal} AS DOUBLE)"


DUCKDB = DuckDBDialect()
SPARK = SparkDialect()
