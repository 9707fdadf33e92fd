"""Turning the user's input errors into clean Dagster failures."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from segment_pipeline.ingest.events import LoadRefused
from segment_pipeline.ingest.sources import SourceError
from segment_pipeline.settings import SettingsError

USER_INPUT_ERRORS: tuple[type[Exception], ...] = (LoadRefused, SourceError, SettingsError)


@contextmanager
def input_errors_as_failures() -> Iterator[None]:
    """Bad input is the user's to fix: show our message in the UI, not a stack trace."""
    try:
        yield
    except USER_INPUT_ERRORS as exc:
        # from None: the message says it all; the cause's trace would only repeat it.
        raise dg.Failure(description=str(exc), allow_retries=False) from None
