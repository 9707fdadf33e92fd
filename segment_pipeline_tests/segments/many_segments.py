"""Thousands of varied, valid past segments on the demo's event types, properties and profiles."""

from __future__ import annotations

import random

import yaml

# (event type, property choices) as the demo generator writes them; a few values never occur.
DEMO_STEPS = {
    "app_launch": [("os", ["ios", "android", "web"]), ("push_enabled", [True, False])],
    "item_viewed": [("category", ["concert", "sports", "theatre", "comedy", "festival"])],
    "add_to_cart": [("category", ["concert", "sports", "theatre"])],
    "charged": [("payment_method", ["visa", "paypal", "apple_pay"]), ("items", [1, 2, 4]), ("category", ["concert"])],
    "checkout_viewed": [],
    "search": [],
    "login": [],
    "campaign_sent": [],
    "notification_opened": [],
    "rating_given": [("stars", [5, 4, 1])],
    "subscription_renewed": [("plan", ["plus", "premium"])],
}
DEMO_PROFILES = [
    ("city", ["San Francisco", "Berlin", "Paris"]),
    ("plan", ["free", "plus", "premium"]),
    ("os", ["ios", "android"]),
    ("age", [30, 41]),
    ("marketing_opt_in", [True, False]),
]


def _step(rng: random.Random, *, action: bool, used: set) -> dict:
    while True:
        event_type = rng.choice(sorted(DEMO_STEPS))
        choices = DEMO_STEPS[event_type]
        properties = {}
        if choices and rng.random() < 0.5:
            key, values = rng.choice(choices)
            properties[key] = rng.choice(values)
        matcher = (event_type, tuple(sorted(properties.items())))
        if matcher not in used:  # rule 8: one step per matcher in a segment
            used.add(matcher)
            break
    step = {"eventType": event_type, "expTimeframe": 0, "actionInaction": "action" if action else "inaction"}
    if properties:
        step["eventProperties"] = properties
    if action and rng.random() < 0.3:
        step["minCount"] = rng.choice([2, 3])
    return step


def many_segment_definitions(n: int, seed: int = 9) -> list[dict]:
    """``n`` past segments of every subtype: 1-3 ordered actions, minCount, inactions, profiles."""
    rng = random.Random(seed)
    definitions = []
    for i in range(n):
        subtype = rng.choice([1, 1, 2, 3, 4])
        used: set = set()
        steps = [_step(rng, action=True, used=used) for _ in range(rng.choice([1, 1, 2, 3]))]
        if subtype in (2, 4):
            steps.append(_step(rng, action=False, used=used))
        definition = {
            "segmentName": f"generated {i:05d}",
            "segmentType": "past",
            "segmentSubtype": subtype,
            "segmentTimeframe": rng.choice([1, 3, 7, 14, 30, 60]),
            "eventSequence": steps,
        }
        if subtype in (3, 4):
            (name, values), *more = rng.sample(DEMO_PROFILES, rng.choice([1, 1, 2]))
            definition |= {"profilePropertyName": name, "profilePropertyValue": rng.choice(values)}
            if more:
                definition["profileProperties"] = {k: rng.choice(v) for k, v in more}
        definitions.append(definition)
    return definitions


def many_segments_yaml(n: int, seed: int = 9) -> str:
    return yaml.safe_dump(
        {"kind": "segments", "segmentDefinitions": many_segment_definitions(n, seed)}, sort_keys=False
    )
