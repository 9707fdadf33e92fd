"""The run's console output for people: the steps' own messages, each failure once, no event chatter.

Dagster's console logger prints each failure with its stack trace two or three times, and
a line for every step skipped after it. Its level comes from dagster.yaml
(``python_logs.python_log_level: INFO``, so no event chatter), but `dg launch` always
uses Dagster's own console logger, which this project cannot replace: that logger is a
fresh ``logging.Logger`` named "dagster" made per run with ``logging.getLoggerClass()``.
So the project registers a Logger class that, for that name only, adds a filter: a failed
step becomes one line (our input errors as their message, anything unexpected with its
trace), the skip notices and the run-failure echo are dropped. Records are per logger, so
the event log and the UI keep everything.
"""

from __future__ import annotations

import logging

# The engine's notices that later steps were skipped after a failure repeat the failure.
_SKIP_NOTICE = "Dependencies for step"
_CONSOLE_LOGGER_NAME = "dagster"


def readable(record: logging.LogRecord) -> bool:
    """Keep a record (rewritten to one readable line) or drop it."""
    meta = getattr(record, "dagster_meta", None)
    if not isinstance(meta, dict):
        return True
    step = meta.get("step_key") or meta.get("job_name") or "run"
    event = meta.get("dagster_event")
    if event is None:
        message = str(meta.get("orig_message", ""))
        if message.startswith(_SKIP_NOTICE):
            return False
        line = f"{step}: {message}"
    elif event.is_step_failure:
        line = f"{step}: FAILED: {failure_text(event)}"
    elif event.event_type_value == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
        evaluation = event.event_specific_data
        line = f"{step}: check {evaluation.check_name} did not pass: {evaluation.description or ''}"
    elif event.is_run_failure:
        return False  # repeats the step's failure; the CLI ends with "Run ... resulted in failure"
    else:
        line = f"{step}: {(event.message or event.event_type_value).splitlines()[0]}"
    record.msg, record.args = line, ()
    return True


def failure_text(event) -> str:
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    return data.error.to_string() if data.error else event.message


class _ReadableConsoleLogger(logging.Logger):
    def __init__(self, name: str, level: int | str = logging.NOTSET) -> None:
        super().__init__(name, level)
        if name == _CONSOLE_LOGGER_NAME:
            self.addFilter(readable)


def install() -> None:
    """Make Dagster's per-run console loggers readable (idempotent; leaves other classes alone)."""
    if logging.getLoggerClass() is logging.Logger:
        logging.setLoggerClass(_ReadableConsoleLogger)
