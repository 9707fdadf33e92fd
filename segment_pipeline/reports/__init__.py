"""Goal reports: self-contained HTML pages built from the warehouse, without Dagster."""
