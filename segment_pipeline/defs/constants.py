"""Names shared across the Dagster wiring: asset groups and the warehouse key prefix."""

INGEST_GROUP = "ingest"
SEGMENTS_GROUP = "segments"
GOALS_GROUP = "goals"
KEY_PREFIX = "analytics"
EXPORTS_GROUP = "exports"
LIVE_GROUP = "live"
REPORTS_GROUP = "reports"
