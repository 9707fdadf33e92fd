"""The demo generator: deterministic, contract-shaped, and with real planted structure."""

from __future__ import annotations

import glob
import json
import os
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from segment_pipeline.demo.generator import (
    GENERATOR_VERSION,
    DemoSpec,
    DemoTables,
    build_demo_tables,
    generate_demo,
)
from segment_pipeline.goals.control_group import CONTROL, TEST, assign_group
from segment_pipeline.settings import BUNDLED_CONFIG_DIR

SMALL = DemoSpec(users=500, days=60)
MEDIUM = DemoSpec(users=3000)
GOAL = "sell concert tickets"
JUNE = datetime(2026, 6, 1)

EXPECTED_KEYS = {
    "app_launch": {"os", "push_enabled"},
    "login": {"method"},
    "item_viewed": {"category", "item_id"},
    "add_to_cart": {"category", "price"},
    "checkout_viewed": set(),
    "charged": {"category", "amount", "payment_method", "items"},
    "notification_opened": {"campaign"},
    "campaign_sent": {"campaign", "channel"},
    "search": {"query_len"},
    "rating_given": {"stars"},
    "subscription_renewed": {"plan"},
    "uninstall": set(),
}


@pytest.fixture(scope="module")
def small() -> DemoTables:
    return build_demo_tables(SMALL)


@pytest.fixture(scope="module")
def medium() -> DemoTables:
    return build_demo_tables(MEDIUM)


@pytest.fixture(scope="module")
def full() -> DemoTables:
    return build_demo_tables(DemoSpec())


def _named(tables: DemoTables, name: str) -> pl.DataFrame:
    return tables.events.filter(pl.col("event_name") == name)


def _prop(key: str) -> pl.Expr:
    return pl.col("properties").str.json_path_match(f"$.{key}")


def _half_counts(tables: DemoTables, name: str, lo: datetime, hi: datetime, alias: str):
    return _named(tables, name).filter(pl.col("ts").is_between(lo, hi, closed="left")).group_by("user_id").len(alias)


# --- determinism --------------------------------------------------------------


def test_same_spec_gives_identical_tables(small: DemoTables) -> None:
    again = build_demo_tables(SMALL)
    assert_frame_equal(small.events, again.events)
    assert_frame_equal(small.profiles, again.profiles)


def test_other_seed_gives_other_data(small: DemoTables) -> None:
    other = build_demo_tables(replace(SMALL, seed=SMALL.seed + 1))
    assert not other.events.equals(small.events)
    assert not other.profiles.equals(small.profiles)


# --- formats --------------------------------------------------------------------


def test_event_schema_and_ranges(small: DemoTables) -> None:
    events = small.events
    assert events.schema == pl.Schema(
        {
            "event_id": pl.String,
            "user_id": pl.String,
            "event_name": pl.String,
            "ts": pl.Datetime("us"),  # naive: UTC by the contract
            "properties": pl.String,
        }
    )
    assert events["event_id"].n_unique() == events.height
    assert events["event_id"].str.starts_with("demo-").all()
    assert events["user_id"].str.contains(r"^u\d{6}$").all()
    assert events["ts"].is_sorted()
    start = datetime.combine(SMALL.start, datetime.min.time())
    assert events["ts"].min() >= start
    assert events["ts"].max() < start + timedelta(days=SMALL.days)
    assert set(events["event_name"].unique()) == set(EXPECTED_KEYS)


def test_properties_are_json_objects_with_the_documented_keys(small: DemoTables) -> None:
    for name, properties in small.events.select("event_name", "properties").iter_rows():
        parsed = json.loads(properties)
        assert isinstance(parsed, dict)
        assert set(parsed) == EXPECTED_KEYS[name], (name, parsed)
        if name == "charged":
            assert parsed["category"] in {"concert", "sports", "theatre", "comedy", "festival"}
            assert parsed["payment_method"] in {"visa", "mastercard", "paypal", "apple_pay"}
            assert round(parsed["amount"], 2) == parsed["amount"] > 0
            assert isinstance(parsed["items"], int) and parsed["items"] >= 1
        elif name == "rating_given":
            assert parsed["stars"] in range(1, 6)
        elif name == "app_launch":
            assert isinstance(parsed["push_enabled"], bool)


def test_profiles_schema_and_mix(medium: DemoTables) -> None:
    profiles = medium.profiles
    assert profiles.schema == pl.Schema(
        {
            "user_id": pl.String,
            "city": pl.String,
            "plan": pl.String,
            "signup_date": pl.Date,
            "os": pl.String,
            "age": pl.Int64,
            "marketing_opt_in": pl.Boolean,
        }
    )
    assert profiles["user_id"].n_unique() == profiles.height
    assert set(profiles["plan"]) == {"free", "plus", "premium"}
    assert set(profiles["os"]) == {"ios", "android", "web"}
    sf_share = (profiles["city"] == "San Francisco").mean()
    assert 0.12 <= sf_share <= 0.16
    users = medium.events["user_id"].unique()
    missing = users.is_in(profiles["user_id"].implode()).not_().mean()
    assert 0.01 <= missing <= 0.06  # downstream must cope with users without a profile


def test_app_launch_os_matches_profile(medium: DemoTables) -> None:
    launches = _named(medium, "app_launch").select("user_id", _prop("os").alias("event_os"))
    joined = launches.join(medium.profiles, on="user_id")
    assert (joined["event_os"] == joined["os"]).all()


def test_signups_are_spread_over_the_period(medium: DemoTables) -> None:
    first = medium.events.group_by("user_id").agg(pl.col("ts").min().dt.date().alias("day"))
    on_day_one = (first["day"] == MEDIUM.start).mean()
    assert on_day_one < 0.35
    assert (first["day"] >= date(2026, 5, 1)).mean() > 0.1


# --- planted structure ------------------------------------------------------------


def test_engaged_users_buy_more_later(medium: DemoTables) -> None:
    start, middle, end = datetime(2026, 1, 1), datetime(2026, 4, 1), datetime(2026, 7, 1)
    sessions = _half_counts(medium, "app_launch", start, middle, "sessions")
    charges = _half_counts(medium, "charged", middle, end, "charges")
    per_user = sessions.join(charges, on="user_id", how="left").fill_null(0)
    low, high = per_user["sessions"].quantile(0.25), per_user["sessions"].quantile(0.75)
    bottom = per_user.filter(pl.col("sessions") <= low)["charges"].mean()
    top = per_user.filter(pl.col("sessions") >= high)["charges"].mean()
    assert top > 3 * bottom


def test_premium_users_buy_more(medium: DemoTables) -> None:
    charges = _named(medium, "charged").group_by("user_id").len("charges")
    per_plan = (
        medium.profiles.join(charges, on="user_id", how="left")
        .fill_null(0)
        .group_by("plan")
        .agg(pl.col("charges").mean())
    )
    mean = dict(per_plan.iter_rows())
    assert mean["premium"] > mean["plus"] > mean["free"]


def test_san_francisco_prefers_concerts(medium: DemoTables) -> None:
    charged = _named(medium, "charged").join(medium.profiles, on="user_id")
    share = charged.group_by(pl.col("city") == "San Francisco").agg(
        (_prop("category") == "concert").mean().alias("concert_share")
    )
    by_sf = dict(share.iter_rows())
    assert by_sf[True] > by_sf[False] + 0.15


def test_activity_falls_before_uninstall(medium: DemoTables) -> None:
    uninstalls = _named(medium, "uninstall").select("user_id", pl.col("ts").alias("gone"))
    uninstalls = uninstalls.filter(pl.col("gone") >= datetime(2026, 2, 15))
    assert uninstalls.height > 0.04 * MEDIUM.users
    launches = _named(medium, "app_launch").join(uninstalls, on="user_id")
    days_before = (pl.col("gone") - pl.col("ts")).dt.total_days()
    windows = launches.group_by("user_id").agg(
        days_before.is_between(28, 41).sum().alias("earlier"),
        (days_before < 14).sum().alias("last_two_weeks"),
    )
    per_user = uninstalls.join(windows, on="user_id", how="left").fill_null(0)
    assert per_user["last_two_weeks"].mean() < 0.5 * per_user["earlier"].mean()


def test_nothing_after_an_uninstall(medium: DemoTables) -> None:
    last = medium.events.group_by("user_id").agg(
        pl.col("event_name").last().alias("last_event"),
        (pl.col("event_name") == "uninstall").sum().alias("uninstalls"),
    )
    assert last["uninstalls"].max() == 1
    assert (last.filter(pl.col("uninstalls") == 1)["last_event"] == "uninstall").all()


def test_goal_campaign_goes_only_to_the_test_group_in_san_francisco(full: DemoTables) -> None:
    pushed = _named(full, "campaign_sent").filter(_prop("campaign") == "concert_push").select("user_id", "ts")
    assert pushed["ts"].dt.date().unique().to_list() == [date(2026, 6, 8)]
    recipients = set(pushed["user_id"])
    assert len(recipients) == pushed.height > 1000
    assert {assign_group(GOAL, user, 5) for user in recipients} == {TEST}
    cities = full.profiles.filter(pl.col("user_id").is_in(list(recipients)))
    assert set(cities["city"]) == {"San Francisco"}

    # Every still-installed San Francisco test user active just before got it.
    sf = full.profiles.filter(pl.col("city") == "San Francisco")["user_id"].implode()
    active = (
        full.events.filter(pl.col("ts").is_between(datetime(2026, 6, 1), datetime(2026, 6, 8)))
        .filter(pl.col("user_id").is_in(sf))["user_id"]
        .unique()
    )
    gone = set(_named(full, "uninstall").filter(pl.col("ts") < datetime(2026, 6, 9))["user_id"])
    expected = {u for u in active if u not in gone and assign_group(GOAL, u, 5) == TEST}
    assert expected <= recipients


def test_goal_campaign_lifts_june_concert_conversion(full: DemoTables) -> None:
    """The goal's target group (SF users with a launch in the 90 days before June 1)
    converts far more in the test group than in the control group."""
    sf = full.profiles.filter(pl.col("city") == "San Francisco")["user_id"].implode()
    target = (
        _named(full, "app_launch")
        .filter(pl.col("ts").is_between(JUNE - timedelta(days=90), JUNE, closed="left"))
        .filter(pl.col("user_id").is_in(sf))["user_id"]
        .unique()
        .to_list()
    )
    converted = set(
        _named(full, "charged").filter((pl.col("ts") >= JUNE) & (_prop("category") == "concert"))["user_id"]
    )
    groups: dict[str, list[bool]] = {TEST: [], CONTROL: []}
    for user in target:
        groups[assign_group(GOAL, user, 5)].append(user in converted)
    test_rate = sum(groups[TEST]) / len(groups[TEST])
    control_rate = sum(groups[CONTROL]) / len(groups[CONTROL])
    assert len(groups[CONTROL]) >= 80
    assert 0.2 < test_rate < 0.45
    assert test_rate > control_rate + 0.1  # measured with the default seed: 0.32 vs 0.14


# --- writing files ------------------------------------------------------------------


def test_generate_demo_writes_monthly_files_and_reuses_them(tmp_path: Path, small: DemoTables) -> None:
    out = tmp_path / "demo"
    files = generate_demo(out, SMALL)
    assert [p.name for p in files.event_files] == [
        "events_2026-01.parquet",
        "events_2026-02.parquet",
        "events_2026-03.parquet",
    ]
    assert sorted(Path(p) for p in glob.glob(files.events_glob)) == files.event_files
    assert_frame_equal(pl.read_parquet(files.event_files), small.events)
    assert_frame_equal(pl.read_parquet(files.profiles_path), small.profiles)
    for path in files.event_files:
        assert pl.read_parquet(path)["ts"].is_sorted()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generator_version"] == GENERATOR_VERSION

    stamps = {p: p.stat().st_mtime_ns for p in [*files.event_files, files.profiles_path]}
    assert generate_demo(out, SMALL) == files
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert sorted(os.listdir(tmp_path)) == ["demo"]  # no temp folders left behind


def test_generate_demo_regenerates_when_the_spec_changes(tmp_path: Path, small: DemoTables) -> None:
    out = tmp_path / "demo"
    generate_demo(out, SMALL)
    other = replace(SMALL, seed=7, days=40)
    files = generate_demo(out, other)
    assert [p.name for p in files.event_files] == [
        "events_2026-01.parquet",
        "events_2026-02.parquet",
    ]
    assert_frame_equal(pl.read_parquet(files.event_files), build_demo_tables(other).events)
    assert json.loads((out / "manifest.json").read_text())["spec"]["seed"] == 7
    assert sorted(os.listdir(tmp_path)) == ["demo"]


def test_generate_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        generate_demo(tmp_path, SMALL)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


# --- bundled demo config ---------------------------------------------------------------


def _config(name: str) -> dict:
    return yaml.safe_load((BUNDLED_CONFIG_DIR / f"{name}.yaml").read_text())


def test_bundled_config_loads_and_references_existing_segments() -> None:
    segments, goals, scores = _config("segments"), _config("goals"), _config("scores")
    assert (segments["kind"], goals["kind"], scores["kind"]) == ("segments", "goals", "scores")
    by_name = {s["segmentName"]: s for s in segments["segmentDefinitions"]}
    assert len(by_name) == len(segments["segmentDefinitions"])
    for goal in goals["goals"]:
        assert goal["segment"] == "All Users" or by_name[goal["segment"]]["segmentType"] == "past"
    for score in scores["scoreDefinitions"]:
        *paths, default = score["paths"]
        assert default.get("default") is True
        for path in paths:
            assert all(name in by_name for name in path["segments"]), path
    assert len(goals["goals"]) <= goals["maxActiveGoals"]


def _rule_breaches(segment: dict) -> list[str]:
    """The contract's section-4 rules, as a self-check of the bundled file."""
    kind, subtype = segment["segmentType"], segment["segmentSubtype"]
    steps = segment["eventSequence"]
    inactions = [i for i, s in enumerate(steps) if s["actionInaction"] == "inaction"]
    has_profile = "profilePropertyName" in segment or "profilePropertyValue" in segment
    keys = [(s["eventType"], json.dumps(s.get("eventProperties"), sort_keys=True)) for s in steps]
    checks = {
        1: subtype in ({"past": range(1, 5), "live": range(1, 3)}[kind]),
        2: (segment["segmentTimeframe"] == 0) == (kind == "live"),
        3: has_profile == (kind == "past" and subtype in (3, 4)),
        4: steps[-1]["expTimeframe"] == 0 and (kind == "live" or all(s["expTimeframe"] == 0 for s in steps)),
        5: kind == "past" or all(s["expTimeframe"] >= 5 for s in steps[:-1]),
        6: len(steps) <= 10,
        7: all(s["actionInaction"] in ("action", "inaction") for s in steps),
        8: len(set(keys)) == len(keys),
        9: steps[0]["actionInaction"] == "action",
        10: subtype not in (2, 4) or inactions == [len(steps) - 1],
        11: subtype not in (1, 3) or not inactions,
        12: not (kind == "live" and subtype == 1) or len(steps) == 1,
        13: segment["segmentName"] != "All Users",
    }
    return [f"rule {rule}" for rule, ok in checks.items() if not ok]


def test_bundled_segments_follow_the_contract_rules() -> None:
    definitions = _config("segments")["segmentDefinitions"]
    for segment in definitions:
        assert _rule_breaches(segment) == [], segment["segmentName"]
    kinds = {(s["segmentType"], s["segmentSubtype"]) for s in definitions}
    assert kinds == {("past", 1), ("past", 2), ("past", 3), ("past", 4), ("live", 1), ("live", 2)}


def test_bundled_config_only_uses_events_the_demo_produces(medium: DemoTables) -> None:
    steps = [s for d in _config("segments")["segmentDefinitions"] for s in d["eventSequence"]]
    steps += [e for goal in _config("goals")["goals"] for e in goal["events"]]
    for step in steps:
        matching = _named(medium, step["eventType"])
        for key, value in (step.get("eventProperties") or {}).items():
            text = json.dumps(value) if not isinstance(value, str) else value
            matching = matching.filter(_prop(key) == text)
        assert matching.height > 0, step
