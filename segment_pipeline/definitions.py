"""Entry point: every definition under ``defs/`` (assets, checks, jobs, schedules, resources)."""

import warnings
from pathlib import Path

import dagster as dg

from segment_pipeline.defs import console
from segment_pipeline.defs.schemas import with_column_schema

console.install()

# map_asset_specs is marked preview; its warning would print on every command that loads the code.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent).map_asset_specs(func=with_column_schema)
