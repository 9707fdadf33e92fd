"""Asset checks from ``quality.output_checks`` findings, and the unique-key checks of the registry."""

from collections.abc import Iterator

import dagster as dg
import duckdb

from segment_pipeline.defs.constants import KEY_PREFIX
from segment_pipeline.defs.partitions import run_days
from segment_pipeline.defs.resources import WarehouseResource
from segment_pipeline.quality.output_checks import Finding, duplicate_keys
from segment_pipeline.storage.tables import BY_NAME

UNIQUE_KEYS_CHECK = "keys_unique"


def examples_table(finding: Finding) -> dg.TableMetadataValue:
    """The offending rows the UI shows as a table (values as text: dates, NULLs and all)."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, "string") for name in finding.columns])
    records = [
        dg.TableRecord(
            {name: "" if value is None else str(value) for name, value in zip(finding.columns, row, strict=True)}
        )
        for row in finding.examples
    ]
    return dg.MetadataValue.table(records=records, schema=schema)


def check_result(
    asset_key: dg.AssetKey,
    check_name: str,
    finding: Finding,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    metadata: dict = {"offending": finding.count}
    if finding.examples:
        metadata["examples"] = examples_table(finding)
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name,
        passed=finding.passed,
        severity=severity,
        description=finding.summary,
        metadata=metadata,
    )


def unique_key_specs(
    tables: list[str], partitions: dg.DailyPartitionsDefinition, *, blocking: bool = True
) -> list[dg.AssetCheckSpec]:
    """Each table's registry key (``storage/tables.py``) is unique: rows repeating a key would
    double-count in every report built on the table. Blocking by default: a run that wrote
    duplicate keys fails and does not publish."""
    return [
        dg.AssetCheckSpec(
            UNIQUE_KEYS_CHECK,
            asset=dg.AssetKey([KEY_PREFIX, table]),
            partitions_def=partitions,
            blocking=blocking,
            description=f"Every ({', '.join(BY_NAME[table].keys)}) is one row of analytics.{table}.",
        )
        for table in tables
    ]


def unique_key_results(con: duckdb.DuckDBPyConnection, tables: list[str], days: list) -> list[dg.AssetCheckResult]:
    return [
        check_result(dg.AssetKey([KEY_PREFIX, table]), UNIQUE_KEYS_CHECK, duplicate_keys(con, BY_NAME[table], days))
        for table in tables
    ]


def unique_key_checks(
    name: str, tables: list[str], partitions: dg.DailyPartitionsDefinition
) -> dg.AssetChecksDefinition:
    """The unique-key checks of ``tables`` as one step of their own."""

    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> Iterator[dg.AssetCheckResult]:
        with warehouse.connect(read_only=True) as con:
            results = unique_key_results(con, tables, run_days(context))
        yield from results

    return dg.multi_asset_check(name=name, specs=unique_key_specs(tables, partitions))(_check)
