"""Turning the user's input errors into clean Dagster failures, or one line at the command line."""

import re
import sys
from collections.abc import Callable, Iterator
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
        # from None: the cause would repeat the message under a second stack trace.
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def print_input_errors_as_one_line(unknown_partition: Callable[[str], str]) -> None:
    """Make the user's errors that escape to the top of the process print as one line.

    ``dg launch`` imports our settings and checks the partition key before any step runs,
    and lets a bad value escape as a 40-line traceback: a process-wide hook is the one place
    left to catch it. ``unknown_partition(key)`` explains a key that is no partition.
    Any other error keeps Python's own report.
    """
    previous = sys.excepthook
    if getattr(previous, "segment_pipeline", False):
        return

    def hook(exc_type, exc, tb):
        for cause in _chain(exc):
            if isinstance(cause, SettingsError):
                print(f"Error: {cause}", file=sys.stderr)
                return
            if isinstance(cause, dg.DagsterUnknownPartitionError):
                found = re.search(r"key `([^`]*)`", str(cause))
                print(f"Error: {unknown_partition(found.group(1) if found else '?')}", file=sys.stderr)
                return
        previous(exc_type, exc, tb)

    hook.segment_pipeline = True
    sys.excepthook = hook


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """The error and what it was raised from or while handling (Dagster wraps the original)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__
