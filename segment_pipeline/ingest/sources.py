"""Finding source files: a path, a folder or a glob, in the formats the contract accepts."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

FORMATS = {".parquet": "parquet", ".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}


class SourceError(ValueError):
    """The configured source cannot be read as given; the message says how to fix it."""


@dataclass(frozen=True)
class SourceFile:
    path: Path
    format: str
    size_bytes: int
    modified_ns: int


def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SourceError(
            f"{path}: unsupported file type {path.suffix!r}; "
            f"use one of {', '.join(sorted(FORMATS))}"
        )
    return fmt


def discover(pattern: str, *, env_var: str) -> list[SourceFile]:
    """Every file the pattern names, sorted by path so loads are reproducible.

    A folder means every supported file below it; a glob may use ``**``.
    """
    expanded = os.path.expanduser(pattern)
    if os.path.isdir(expanded):
        paths = [
            Path(p)
            for p in glob.glob(os.path.join(expanded, "**", "*"), recursive=True)
            if Path(p).suffix.lower() in FORMATS and os.path.isfile(p)
        ]
    else:
        paths = [Path(p) for p in glob.glob(expanded, recursive=True) if os.path.isfile(p)]
    if not paths:
        raise SourceError(
            f"{env_var}={pattern!r} matches no file; point it at a file, a folder or a glob "
            "such as 'exports/events/*.parquet'"
        )
    files = []
    for path in sorted(paths):
        stat = path.stat()
        files.append(SourceFile(path.resolve(), file_format(path), stat.st_size, stat.st_mtime_ns))
    return files
