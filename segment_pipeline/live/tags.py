"""Live-segment tags in ``analytics.segment_tags``: opened by an entry, closed by a contradiction.

An entry opens a tag at its ``entered_at`` (unless the user's tag for that segment is
still open). A later matching inaction contradicts a subtype 2 entry ("viewed the
checkout and did not buy" is no longer true once the user buys), so the open tag is
closed at that event's time. Subtype 1 tags ("launched the app") are never
contradicted and stay open.
"""

from __future__ import annotations

import duckdb

from segment_pipeline.live.outbox import Entry
from segment_pipeline.segments import history


def apply_live_tags(con: duckdb.DuckDBPyConnection, entries: list[Entry], matches: str, new_events: str | None) -> None:
    """Open tags for ``entries`` and close those the new inaction matches contradict.

    ``matches`` is the table of (segment_name, role, event_id, user_id, ts) step matches,
    ``new_events`` the table of this call's new events (with ``event_id``); None: no new events.
    """
    history.ensure_tables(con)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _live_tag_entries (segment_name VARCHAR, user_id VARCHAR, entered_at TIMESTAMP)"
    )
    if entries:
        con.executemany(
            "INSERT INTO _live_tag_entries VALUES (?, ?, ?)",
            [(e.segment_name, e.user_id, e.entered_at) for e in entries],
        )
    con.execute(
        """INSERT INTO analytics.segment_tags
           SELECT user_id, segment_name, min(entered_at), NULL FROM _live_tag_entries e
           WHERE NOT EXISTS (SELECT 1 FROM analytics.segment_tags t WHERE t.removed_at IS NULL
                             AND t.segment_name = e.segment_name AND t.user_id = e.user_id)
           GROUP BY user_id, segment_name"""
    )
    con.execute("DROP TABLE _live_tag_entries")
    if new_events is None:
        return
    con.execute(
        f"""UPDATE analytics.segment_tags t SET removed_at = c.first_contradiction
            FROM (SELECT t2.segment_name, t2.user_id, min(m.ts) AS first_contradiction
                  FROM analytics.segment_tags t2
                  JOIN {matches} m ON m.segment_name = t2.segment_name AND m.user_id = t2.user_id
                  WHERE t2.removed_at IS NULL AND m.role = 'inaction' AND m.ts >= t2.created_at
                    AND m.event_id IN (SELECT event_id FROM {new_events})
                  GROUP BY ALL) c
            WHERE t.removed_at IS NULL AND t.segment_name = c.segment_name AND t.user_id = c.user_id"""
    )
