"""Entry point: every definition under ``defs/`` (assets, checks, jobs, schedules, resources).

Loaded when Dagster asks for the definitions, not when the module is imported: the settings
are read then, so importing the package reads and changes nothing.
"""

import warnings
from pathlib import Path

import dagster as dg

from segment_pipeline.defs import console
from segment_pipeline.defs.failures import print_input_errors_as_one_line
from segment_pipeline.defs.partitions import outside_partitions_message
from segment_pipeline.defs.schemas import with_column_schema
from segment_pipeline.settings import load_settings


@dg.definitions
def defs() -> dg.Definitions:
    console.install()
    # Before the settings are read: a bad variable then prints as one line under dg launch.
    print_input_errors_as_one_line(lambda key: outside_partitions_message(key, load_settings().start_date))
    # map_asset_specs is marked preview; its warning would print on every command that loads the code.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.load_from_defs_folder(path_within_project=Path(__file__).parent).map_asset_specs(
            func=with_column_schema
        )
