"""One (segment, user) pair's live history, replayed from its matching events: pure functions.

``complete_chains`` turns the matches of ordered actions into the times the chain
completes; ``simulate`` plays those against the inactions and the watermark (see
``engine`` for the semantics).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Match:
    ts: datetime
    event_id: str


def complete_chains(steps: list[list[Match]], gaps: list[timedelta]) -> list[Match]:
    """Times at which the ordered actions complete: from each first-action match, the earliest
    next-action match in ``[previous ts, previous ts + gap)``, and so on; the chain's last
    match stands for it (its ts arms the inaction window, its event triggers the entry)."""
    completions = {}
    for first in steps[0]:
        last = first
        for k, gap in enumerate(gaps):
            last = next((m for m in steps[k + 1] if last.ts <= m.ts < last.ts + gap), None)
            if last is None:
                break
        if last is not None:
            completions[last.event_id] = last
    return sorted(completions.values(), key=lambda m: (m.ts, m.event_id))


@dataclass
class Outcome:
    emitted: list[tuple[Match, datetime]] = field(default_factory=list)  # (action, entered_at)
    cancelled: list[tuple[Match, Match]] = field(default_factory=list)  # (action, inaction)
    pending: tuple[Match, datetime] | None = None  # (action, deadline)
    armed_from: datetime | None = None  # unchanged when None


def simulate(actions: list[Match], inactions: list[Match], window: timedelta, watermark: datetime) -> Outcome:
    """One pair's subtype 2 history from its last resolution on (both lists sorted by ts)."""
    outcome = Outcome()
    start, index = None, 0
    while index < len(actions):
        action = actions[index]
        if start is not None and action.ts < start:
            index += 1
            continue
        deadline = action.ts + window
        inaction = next((i for i in inactions if action.ts <= i.ts < deadline), None)
        if inaction is not None:
            start = inaction.ts
            if inaction.ts > watermark:
                # Not final yet: a late action before the inaction could still change the
                # history, so the pair keeps its old armed_from and is replayed next time.
                index += 1
                continue
            outcome.cancelled.append((action, inaction))
        elif deadline <= watermark:
            outcome.emitted.append((action, deadline))
            start = deadline
        else:
            outcome.pending = (action, deadline)
            break
        outcome.armed_from = start
        index += 1
    return outcome
