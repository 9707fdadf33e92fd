"""The walk a reader follows from goals.yaml to intent_buckets: which files, in which order.

Runs two real nights of the demo (the first: freeze and training; the next: scoring) in
process, and records every project function the `goals` asset reaches, in the order each
is first called (a depth-first reading of the code). A *stop* is such a function; a
*return* is a stop in a file that the walk had already left for another one. "No file
visited twice" means zero returns: each file's stops are one contiguous stretch.

General helpers every layer shares (storage/, stats/, settings) are stops too, so a
second helper reached much later counts as a return like any other.

    .venv/bin/python scripts/goal_walk.py [--users 1500] [--show]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import dagster as dg

import segment_pipeline
from segment_pipeline.defs.engines.resources import EngineResource
from segment_pipeline.defs.reports.resources import ReportsResource
from segment_pipeline.defs.resources import (
    ConfigResource,
    EventSourcesResource,
    ExportResource,
    MLflowResource,
    WarehouseResource,
)
from segment_pipeline.settings import BUNDLED_CONFIG_DIR

PACKAGE = str(Path(segment_pipeline.__file__).parent) + "/"
NIGHTS = ("2026-06-20", "2026-06-21")


def is_goal_file(rel: str) -> bool:
    return rel == "config/goals.py" or rel.startswith(("goals/", "defs/goals/"))


class Walk:
    """First calls of project functions made inside the goals asset, in order."""

    def __init__(self, goal_files_only: bool) -> None:
        self.goal_files_only = goal_files_only
        self.stops: list[tuple[str, str]] = []
        self._seen: set[tuple[str, str]] = set()
        self._depth = 0  # >0 while inside the goals asset's function

    def profile(self, frame, event, _arg):
        if event not in ("call", "return"):
            return
        code = frame.f_code
        file = code.co_filename
        if not file.startswith(PACKAGE):
            return
        rel = file[len(PACKAGE) :]
        is_asset = rel == "defs/goals/assets.py" and code.co_name == "goals"
        if event == "return":
            if is_asset:
                self._depth -= 1
            return
        if is_asset:
            self._depth += 1
        if self._depth <= 0 or code.co_name.startswith("<"):  # comprehensions, lambdas: part of their function
            return
        if self.goal_files_only:
            caller = frame.f_back.f_code.co_filename if frame.f_back else ""
            caller_rel = caller[len(PACKAGE) :] if caller.startswith(PACKAGE) else ""
            if not (is_goal_file(rel) and is_goal_file(caller_rel)) or caller_rel == rel:
                return
        stop = (rel, code.co_qualname)
        if stop not in self._seen:
            self._seen.add(stop)
            self.stops.append(stop)

    def returns(self) -> list[tuple[int, str]]:
        """(position, file) of every stop in a file the walk had left before."""
        left: set[str] = set()
        found = []
        previous = None
        for i, (file, _name) in enumerate(self.stops):
            if file != previous:
                if file in left:
                    found.append((i, file))
                if previous is not None:
                    left.add(previous)
                previous = file
        return found


def resources(tmp: Path, users: int) -> dict:
    return {
        "warehouse": WarehouseResource(path=str(tmp / "warehouse.duckdb")),
        "sources": EventSourcesResource(demo_dir=str(tmp / "demo"), demo_users=users),
        "project_config": ConfigResource(config_dir=str(BUNDLED_CONFIG_DIR)),
        "mlflow": MLflowResource(tracking_uri=(tmp / "mlruns").as_uri()),
        "exports": ExportResource(export_dir=str(tmp / "exports")),
        "reports": ReportsResource(reports_dir=str(tmp / "reports")),
        "engine": EngineResource(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--show", action="store_true", help="print every stop")
    parser.add_argument(
        "--next-night-only",
        action="store_true",
        help="walk only the second night (no training: the path every night takes)",
    )
    parser.add_argument(
        "--everything",
        action="store_true",
        help="every project function, helpers and private ones included (default: the calls from one goal file into another)",
    )
    args = parser.parse_args()

    walk = take_walk(args.users, next_night_only=args.next_night_only, goal_files_only=not args.everything)
    files = []
    for file, _ in walk.stops:
        if file not in files:
            files.append(file)
    found = walk.returns()
    if args.show:
        returned = {i for i, _ in found}
        for i, (file, name) in enumerate(walk.stops):
            print(f"{i:3d} {'<-' if i in returned else '  '} {file}: {name}")
    print(f"{len(walk.stops)} stops in {len(files)} files, {len(found)} returns to a file already left")
    for i, file in found:
        print(f"  return at stop {i}: {file} ({walk.stops[i][1]})")
    return 0


def take_walk(users: int, *, next_night_only: bool, goal_files_only: bool = True) -> Walk:
    """Run the two demo nights in a temp folder, tracing the night(s) asked for."""
    from segment_pipeline.definitions import defs

    definitions = defs()
    walk = Walk(goal_files_only=goal_files_only)
    with tempfile.TemporaryDirectory() as tmp:
        res = resources(Path(tmp), users)
        for night in NIGHTS:
            traced = night == NIGHTS[1] or not next_night_only
            if traced:
                sys.setprofile(walk.profile)
            try:
                result = dg.materialize(_assets(definitions), resources=res, partition_key=night)
            finally:
                sys.setprofile(None)
            if not result.success:
                raise RuntimeError(f"night {night} failed")
    return walk


def _assets(definitions: dg.Definitions) -> list:
    return list(definitions.assets or [])


if __name__ == "__main__":
    raise SystemExit(main())
