"""Re-drive dead-lettered live entries: ``python -m segment_pipeline.live.redrive [--segment NAME] [--since TIME]``.

Puts entries whose retries ran out back in line with the whole retry schedule ahead of
them; the live_segments sensor sends them on its next tick. ``--since`` keeps only
entries that entered at or after that time (ISO date or date-time, UTC unless it says
otherwise). The live store is ``SEGMENT_PIPELINE_LIVE_STORE`` (``--store`` overrides it).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from segment_pipeline.live import store
from segment_pipeline.live.outbox import OUTBOX, redrive, utc_naive
from segment_pipeline.settings import SettingsError, load_settings
from segment_pipeline.storage.warehouse import scalar


def _when(text: str) -> datetime:
    try:
        return utc_naive(datetime.fromisoformat(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or date-time, e.g. 2026-11-30 or 2026-11-30T08:00"
        ) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m segment_pipeline.live.redrive", description=(__doc__ or "").partition("\n")[0]
    )
    parser.add_argument("--segment", help="only this live segment's entries")
    parser.add_argument("--since", type=_when, help="only entries entered at or after this time (UTC)")
    parser.add_argument("--store", type=Path, help="the live store file (default: from the settings)")
    args = parser.parse_args(argv)
    try:
        path = args.store or load_settings().live_store
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not path.exists():
        print(f"error: no live store at {path}; set SEGMENT_PIPELINE_LIVE_STORE or pass --store", file=sys.stderr)
        return 2
    try:
        with store.connect(path, busy_retries=6) as con:
            count = redrive(con, now=datetime.now(UTC), segment=args.segment, since=args.since)
            dead = scalar(con, f"SELECT count(*) FROM {OUTBOX} WHERE status = 'dead'")
    except duckdb.IOException as exc:
        print(f"error: live store {path} stays busy (another process holds it): {exc}; try again", file=sys.stderr)
        return 1
    print(
        f"re-drove {count} dead-lettered entries in {path} ({dead} still dead); the live_segments sensor sends them on its next tick"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
