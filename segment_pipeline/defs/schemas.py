"""Column schemas of the warehouse tables for the catalog, from the one table reference."""

import dagster as dg

from segment_pipeline.defs.constants import KEY_PREFIX
from segment_pipeline.storage.tables import BY_NAME, Table


def table_schema(table: Table) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, kind, description=meaning.replace("`", "")) for name, kind, meaning in table.columns
        ]
    )


def with_column_schema(spec: dg.AssetSpec) -> dg.AssetSpec:
    """An ``analytics/<table>`` asset gets its table's columns (``dagster/column_schema``)."""
    path = spec.key.path
    if len(path) != 2 or path[0] != KEY_PREFIX or path[1] not in BY_NAME:
        return spec
    return spec.merge_attributes(metadata={"dagster/column_schema": table_schema(BY_NAME[path[1]])})
