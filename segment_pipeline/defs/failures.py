"""Turning the user's input errors into clean Dagster failures."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from segment_pipeline.goals.mlflow_store import TrackingStoreError
from segment_pipeline.ingest.events import LoadRefused
from segment_pipeline.ingest.sources import SourceError
from segment_pipeline.settings import SettingsError
from segment_pipeline.storage.publish import WarehouseBusy

USER_INPUT_ERRORS: tuple[type[Exception], ...] = (LoadRefused, SourceError, SettingsError)
# Infrastructure failures whose message already says what is wrong and what to do.
EXPLAINED_FAILURES: tuple[type[Exception], ...] = (TrackingStoreError, WarehouseBusy)


@contextmanager
def input_errors_as_failures() -> Iterator[None]:
    """Bad input is the user's to fix: show our message in the UI, not a stack trace."""
    try:
        yield
    except USER_INPUT_ERRORS + EXPLAINED_FAILURES as exc:
        # from None: the message says it all; the cause's trace would only repeat it.
        raise dg.Failure(description=str(exc), allow_retries=False) from None
