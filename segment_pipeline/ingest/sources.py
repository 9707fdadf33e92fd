"""Finding source files: a path, a folder or a glob, in the formats the contract accepts."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

FORMATS = {".parquet": "parquet", ".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}
# DuckDB's read_* functions expand these in any path they are given (and a backslash
# breaks its glob matching), so a file whose path has one is read through a plain-named link.
_DUCKDB_GLOB_CHARS = frozenset("*?[]{}\\")


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
        raise SourceError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(sorted(FORMATS))}")
    return fmt


def discover(pattern: str, *, env_var: str) -> list[SourceFile]:
    """Every file the pattern names, sorted by path so loads are reproducible.

    A folder means every supported file below it; a glob may use ``**``. An existing
    file or folder is taken literally, even when its name has glob characters.
    """
    expanded = os.path.expanduser(pattern)
    if os.path.isdir(expanded):
        paths = [
            Path(expanded, p)
            for p in glob.glob(os.path.join("**", "*"), root_dir=expanded, recursive=True)
            if Path(p).suffix.lower() in FORMATS and os.path.isfile(os.path.join(expanded, p))
        ]
    elif os.path.isfile(expanded):
        paths = [Path(expanded)]
    else:
        paths = [Path(p) for p in glob.glob(expanded, recursive=True) if os.path.isfile(p)]
    if not paths:
        raise SourceError(
            f"{env_var}={pattern!r} matches no file; point it at a file, a folder or a glob "
            "such as 'exports/events/*.parquet'"
        )
    files = []
    for path in sorted(paths):
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed since it was listed: a writer is still at work
            continue
        files.append(SourceFile(path.resolve(), file_format(path), stat.st_size, stat.st_mtime_ns))
    return files


@contextmanager
def literal_path(path: Path) -> Iterator[str]:
    """A path DuckDB reads as exactly this one file, valid inside the ``with`` block."""
    text = str(path)
    if not _DUCKDB_GLOB_CHARS.intersection(text):
        yield text
        return
    folder = tempfile.mkdtemp(prefix="segment_pipeline_read_")
    try:
        link = os.path.join(folder, "source" + path.suffix.lower())
        os.symlink(path, link)
        yield link
    finally:
        shutil.rmtree(folder, ignore_errors=True)
