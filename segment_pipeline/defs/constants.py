"""Names shared across the Dagster wiring: asset groups, kinds, the warehouse prefix."""

INGEST_GROUP = "ingest"
KEY_PREFIX = "analytics"
DUCKDB_KIND = {"dagster/kind/duckdb": ""}
