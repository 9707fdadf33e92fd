"""segments.yaml and scores.yaml validation: one test per rule, every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from segment_pipeline.config import (
    ConfigError,
    load_scores,
    load_scores_text,
    load_segments,
    load_segments_text,
)
from segment_pipeline.config.segments import SegmentConfig
from segment_pipeline.settings import BUNDLED_CONFIG_DIR

SOURCE = "conf/segments.yaml"


def action(event_type: str = "login", **extra) -> dict:
    return {"eventType": event_type, "expTimeframe": 0, "actionInaction": "action", **extra}


def inaction(event_type: str = "charged", **extra) -> dict:
    return {"eventType": event_type, "expTimeframe": 0, "actionInaction": "inaction", **extra}


def segment(name: str = "s", **fields) -> dict:
    """A valid past subtype 1 segment, with ``fields`` replacing or adding keys (None drops one)."""
    base = {
        "segmentName": name,
        "segmentType": "past",
        "segmentSubtype": 1,
        "segmentTimeframe": 30,
        "eventSequence": [action()],
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def load(*segments: dict) -> SegmentConfig:
    text = yaml.safe_dump({"kind": "segments", "segmentDefinitions": list(segments)}, sort_keys=False)
    return load_segments_text(text, SOURCE)


def broken_rules(*segments: dict) -> list[str]:
    """The rule of every problem, after checking each message names the file and the segment."""
    with pytest.raises(ConfigError) as caught:
        load(*segments)
    names = {s.get("segmentName") for s in segments}
    for problem in caught.value.problems:
        text = str(problem)
        assert text.startswith(f"{SOURCE}:"), text
        assert any(f"segment '{name}'" in text for name in names), text
        assert text in str(caught.value)
    return [p.rule.split(" (")[0] for p in caught.value.problems]


@pytest.mark.parametrize(
    "bad",
    [
        segment("a", segmentType="passed"),
        segment("a", segmentSubtype=5),
        segment("a", segmentSubtype=0),
        segment("a", segmentType="live", segmentSubtype=3, segmentTimeframe=0),
    ],
)
def test_rule_1_segment_type_and_subtype(bad):
    assert broken_rules(bad) == ["rule 1"]


@pytest.mark.parametrize(
    "bad",
    [
        segment("a", segmentType="live", segmentTimeframe=7),
        segment("a", segmentTimeframe=0),
        segment("a", segmentTimeframe=None),
    ],
)
def test_rule_2_timeframe_zero_for_live_positive_for_past(bad):
    assert broken_rules(bad) == ["rule 2"]


@pytest.mark.parametrize(
    "bad",
    [
        segment("a", segmentSubtype=3, profilePropertyName="city"),
        segment("a", segmentSubtype=1, profilePropertyName="city", profilePropertyValue="Paris"),
        segment("a", segmentSubtype=1, profileProperties={"plan": "premium"}),
        segment("a", segmentType="live", segmentTimeframe=0, profilePropertyName="city", profilePropertyValue="x"),
    ],
)
def test_rule_3_profile_property_only_and_always_on_subtypes_3_and_4(bad):
    assert broken_rules(bad) == ["rule 3"]


def test_rule_4_exp_timeframe_zero_on_past_events_and_the_last_event():
    assert broken_rules(segment("a", eventSequence=[action(expTimeframe=5), action("b")])) == ["rule 4"]
    live = segment(
        "b", segmentType="live", segmentTimeframe=0, segmentSubtype=1, eventSequence=[action(expTimeframe=5)]
    )
    assert broken_rules(live) == ["rule 4"]


def test_rule_5_live_gap_of_at_least_five_minutes():
    live = segment(
        "a",
        segmentType="live",
        segmentSubtype=2,
        segmentTimeframe=0,
        eventSequence=[action("checkout", expTimeframe=4), inaction()],
    )
    assert broken_rules(live) == ["rule 5"]


def test_rule_6_at_most_ten_events():
    assert broken_rules(segment("a", eventSequence=[action(f"e{i}") for i in range(11)])) == ["rule 6"]
    load(segment("a", eventSequence=[action(f"e{i}") for i in range(10)]))


def test_rule_7_action_or_inaction():
    assert broken_rules(segment("a", eventSequence=[action(actionInaction="inactive")])) == ["rule 7"]


@pytest.mark.parametrize(
    "events",
    [
        [action(), action()],
        [action(eventProperties={"n": 1}), action(eventProperties={"n": 1.0})],
        [action(eventProperties=None), action(eventProperties={})],
    ],
)
def test_rule_8_no_two_equal_events(events):
    assert broken_rules(segment("a", eventSequence=events)) == ["rule 8"]


def test_rule_8_types_and_min_count_do_not_make_events_differ_but_properties_do():
    load(segment("a", eventSequence=[action(eventProperties={"n": 1}), action(eventProperties={"n": "1"})]))
    load(segment("b", eventSequence=[action(eventProperties={"n": 1}), action(eventProperties={"n": True})]))
    assert broken_rules(segment("c", eventSequence=[action(minCount=2), action()])) == ["rule 8"]


def test_rule_9_first_event_is_an_action():
    assert broken_rules(segment("a", segmentSubtype=2, eventSequence=[inaction()])) == ["rule 9"]
    assert broken_rules(segment("b", eventSequence=[])) == ["rule 9"]


@pytest.mark.parametrize(
    "bad",
    [
        segment("a", segmentSubtype=2),
        segment("a", segmentSubtype=2, eventSequence=[action(), inaction(), action("z")]),
        segment("a", segmentSubtype=2, eventSequence=[action(), inaction("x"), inaction("y")]),
        segment("a", segmentSubtype=4, profilePropertyName="city", profilePropertyValue="x"),
    ],
)
def test_rule_10_subtypes_2_and_4_end_with_their_only_inaction(bad):
    assert broken_rules(bad) == ["rule 10"]


def test_rule_11_subtypes_1_and_3_have_no_inaction():
    assert broken_rules(segment("a", eventSequence=[action(), inaction()])) == ["rule 11"]
    subtype_3 = segment(
        "b",
        segmentSubtype=3,
        eventSequence=[action(), inaction()],
        profilePropertyName="city",
        profilePropertyValue="x",
    )
    assert broken_rules(subtype_3) == ["rule 11"]


def test_rule_12_live_subtype_1_has_exactly_one_event():
    live = segment("a", segmentType="live", segmentTimeframe=0, eventSequence=[action(expTimeframe=5), action("b")])
    assert broken_rules(live) == ["rule 12"]


def test_rule_13_unique_names_and_all_users_is_reserved():
    assert broken_rules(segment("twice"), segment("twice", segmentTimeframe=7)) == ["rule 13"]
    assert broken_rules(segment("All Users")) == ["rule 13"]
    assert broken_rules(segment("all users ")) == ["rule 13"]


def test_min_count_belongs_to_actions():
    assert broken_rules(segment("a", segmentSubtype=2, eventSequence=[action(), inaction(minCount=2)])) == [
        "rule minCount"
    ]
    assert broken_rules(segment("b", eventSequence=[action(minCount=0)])) == ["format"]


ALL_BROKEN = """\
kind: segments
segmentDefinitions:
  - segmentName: worst customers
    segmentType: past
    segmentSubtype: 2
    segmentTimeframe: 60
    eventSequence:
      - eventType: login
        expTimeframe: 0
        actionInaction: action
  - segmentName: typo in a key
    segmentType: past
    segmentSubtype: 1
    segmentTimeframe: 60
    eventSequence:
      - eventTpye: login
        actionInaction: action
  - segmentName: wrong types
    segmentType: past
    segmentSubtype: 1
    segmentTimeframe: sixty
    eventSequence:
      - eventType: login
        actionInaction: action
        eventProperties: {tags: [a, b]}
  - segmentName: worst customers
    segmentType: live
    segmentSubtype: 1
    segmentTimeframe: 0
    eventSequence:
      - eventType: login
        expTimeframe: 2
        actionInaction: action
      - eventType: charged
        expTimeframe: 0
        actionInaction: action
"""


def test_every_problem_in_the_file_is_reported_at_once_with_lines():
    with pytest.raises(ConfigError) as caught:
        load_segments_text(ALL_BROKEN, SOURCE)
    lines = str(caught.value).splitlines()
    assert lines[0] == "8 configuration problems; nothing was run or written:"
    found = [(p.line, p.item, p.rule.split(" (")[0]) for p in caught.value.problems]
    assert found == [
        (7, "segment 'worst customers'", "rule 10"),
        (16, "segment 'typo in a key'", "known keys"),
        (16, "segment 'typo in a key'", "format"),
        (21, "segment 'wrong types'", "format"),
        (25, "segment 'wrong types'", "format"),
        (26, "segment 'worst customers'", "rule 13"),
        (30, "segment 'worst customers'", "rule 12"),
        (32, "segment 'worst customers'", "rule 5"),
    ]
    assert (
        "  - conf/segments.yaml:7: segment 'worst customers': rule 10 (subtype 2 and 4 have exactly one inaction, "
        "and it is the last event): found 0 inactions. Fix: end eventSequence with exactly one "
        "actionInaction: inaction step"
    ) in lines
    assert any("unknown key 'eventTpye'; did you mean 'eventType'?" in line for line in lines)
    assert any("segmentTimeframe: must be a whole number, found 'sixty'" in line for line in lines)


def test_yaml_1_2_scalars_so_values_mean_what_they_look_like():
    config = load_segments_text(
        """kind: segments
segmentDefinitions:
  - segmentName: norway
    segmentType: past
    segmentSubtype: 1
    segmentTimeframe: 030
    eventSequence:
      - eventType: visit
        actionInaction: action
        eventProperties: {country: NO, opened: 2026-01-05, at: 10:30, flag: true, ratio: 1e3}
""",
        SOURCE,
    )
    definition = config.by_name["norway"]
    assert definition.timeframe_days == 30
    assert definition.steps[0].event_properties == {
        "country": "NO",
        "opened": "2026-01-05",
        "at": "10:30",
        "flag": True,
        "ratio": 1000.0,
    }


def test_duplicate_keys_and_yaml_syntax_errors_are_problems():
    with pytest.raises(ConfigError, match=r"segments.yaml:4: unique keys: key 'segmentDefinitions\[0\].segmentType'"):
        load_segments_text(
            "segmentDefinitions:\n  - segmentName: a\n    segmentType: past\n    segmentType: live\n", "segments.yaml"
        )
    with pytest.raises(ConfigError, match=r"segments.yaml:\d+: YAML syntax"):
        load_segments_text("kind: segments\nsegmentDefinitions: [\n", "segments.yaml")
    with pytest.raises(ConfigError, match="this file needs 'kind: segments'"):
        load_segments_text("kind: goals\n", "segments.yaml")


def test_missing_or_empty_file_means_no_segments(tmp_path: Path):
    assert load_segments(tmp_path / "segments.yaml").segments == []
    (tmp_path / "segments.yaml").write_text("kind: segments\nsegmentDefinitions: []\n")
    assert load_segments(tmp_path / "segments.yaml").segments == []
    assert load_segments_text("", "segments.yaml").segments == []


def test_helpers_of_a_valid_segment():
    config = load(
        segment(
            "a",
            segmentSubtype=4,
            eventSequence=[action(minCount=3), action("view"), inaction()],
            profilePropertyName="city",
            profilePropertyValue="Paris",
            profileProperties={"vip": True},
        ),
        segment("now", segmentType="live", segmentTimeframe=0),
    )
    a = config.by_name["a"]
    assert [s.event_type for s in a.actions] == ["login", "view"]
    assert a.inaction.event_type == "charged"
    assert a.profile_equalities == [("city", "Paris"), ("vip", True)]
    assert [s.name for s in config.past] == ["a"] and [s.name for s in config.live] == ["now"]


def test_bundled_demo_config_is_valid():
    segments = load_segments(BUNDLED_CONFIG_DIR / "segments.yaml")
    assert segments.past and segments.live
    load_scores(BUNDLED_CONFIG_DIR / "scores.yaml", segments)


# --- scores.yaml -----------------------------------------------------------------

SEGMENTS = load(
    segment("launched app"), segment("charged once"), segment("now", segmentType="live", segmentTimeframe=0)
)


def scores(*paths: dict, refresh: str = "weekly", name: str = "tier") -> str:
    body = {"kind": "scores", "scoreDefinitions": [{"scoreName": name, "refresh": refresh, "paths": list(paths)}]}
    return yaml.safe_dump(body, sort_keys=False)


def score_rules(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_scores_text(text, SEGMENTS, "conf/scores.yaml")
    for problem in caught.value.problems:
        assert str(problem).startswith("conf/scores.yaml:") and "score 'tier'" in str(problem), str(problem)
    return [p.rule.split(" (")[0] for p in caught.value.problems]


def test_valid_scores_keep_path_order_and_accept_all_users():
    config = load_scores_text(
        scores(
            {"label": "S1", "segments": ["launched app", "charged once"]},
            {"label": "S2", "segments": ["All Users"]},
            {"label": "S3", "default": True},
        ),
        SEGMENTS,
    )
    tree = config.scores[0]
    assert [p.label for p in tree.paths] == ["S1", "S2", "S3"]
    assert tree.segment_names == ["launched app", "charged once", "All Users"]


@pytest.mark.parametrize(
    ("paths", "rule"),
    [
        ([{"label": "S1", "segments": ["launched app"]}], "rule default path"),
        ([{"label": "S0", "default": True}, {"label": "S1", "default": True}], "rule default path"),
        ([{"label": "S1", "segments": ["launched app"], "default": True}], "rule default path"),
        ([{"label": "S1", "segments": ["launched app"]}, {"label": "S1", "default": True}], "rule labels"),
        ([{"label": "S1", "segments": ["lanched app"]}, {"label": "S2", "default": True}], "rule segments"),
        ([{"label": "S1", "segments": ["now"]}, {"label": "S2", "default": True}], "rule segments"),
        ([{"label": "S1"}, {"label": "S2", "default": True}], "rule segments"),
        ([{"label": "", "segments": ["launched app"]}, {"label": "S2", "default": True}], "format"),
    ],
)
def test_score_tree_rules(paths, rule):
    assert score_rules(scores(*paths)) == [rule]


def test_score_messages_suggest_and_explain():
    with pytest.raises(ConfigError) as caught:
        load_scores_text(
            scores({"label": "S1", "segments": ["lanched app", "now"]}, {"label": "S2", "default": True}),
            SEGMENTS,
            "scores.yaml",
        )
    text = str(caught.value)
    assert "segment 'lanched app' is not defined. Fix: did you mean 'launched app'?" in text
    assert "'now' is a live segment" in text


def test_refresh_and_unique_score_names():
    assert score_rules(scores({"label": "S", "default": True}, refresh="hourly")) == ["rule refresh"]
    twice = yaml.safe_load(scores({"label": "S", "default": True}))
    twice["scoreDefinitions"] *= 2
    assert score_rules(yaml.safe_dump(twice)) == ["rule names"]


def test_missing_scores_file_means_no_scores(tmp_path: Path):
    assert load_scores(tmp_path / "scores.yaml", SEGMENTS).scores == []
