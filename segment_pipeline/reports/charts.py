"""Vega-Lite specifications of the report charts, as plain dicts with their data inline.

Plain dicts rather than a charting API: the specs are small, readable, and the page
renders them with the Vega libraries inlined in it (see ``page.py``).
"""

from __future__ import annotations

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
WIDTH = 640
TEST_CONTROL = {"domain": ["test", "control"], "range": ["#1f77b4", "#ff7f0e"]}


def _chart(title: str, values: list[dict], **spec) -> dict:
    return {"$schema": SCHEMA, "title": title, "width": WIDTH, "height": 240, "data": {"values": values}, **spec}


def forecast_vs_actual(rows: list[dict]) -> dict:
    """Cumulative achievers: the creation forecast with its 90% band, and the actual count so far."""
    x = {"field": "day", "type": "temporal", "timeUnit": "yearmonthdate", "title": "day of the goal window"}
    return _chart(
        "Achievers: forecast at creation (90% band) vs actual",
        rows,
        layer=[
            {
                "mark": {"type": "area", "opacity": 0.25, "color": "#1f77b4"},
                "encoding": {
                    "x": x,
                    "y": {"field": "predicted_low", "type": "quantitative", "title": "cumulative achievers"},
                    "y2": {"field": "predicted_high"},
                },
            },
            {
                "mark": {"type": "line", "strokeDash": [6, 3], "color": "#1f77b4"},
                "encoding": {
                    "x": x,
                    "y": {"field": "predicted_cumulative", "type": "quantitative"},
                    "tooltip": [
                        {"field": "day", "type": "temporal"},
                        {"field": "predicted_cumulative", "format": ".1f", "title": "forecast"},
                        {"field": "predicted_low", "format": ".1f", "title": "90% low"},
                        {"field": "predicted_high", "format": ".1f", "title": "90% high"},
                    ],
                },
            },
            {
                "mark": {"type": "line", "point": True, "color": "#d62728"},
                "transform": [{"filter": "datum.actual_cumulative != null"}],
                "encoding": {
                    "x": x,
                    "y": {"field": "actual_cumulative", "type": "quantitative"},
                    "tooltip": [
                        {"field": "day", "type": "temporal"},
                        {"field": "actual_cumulative", "title": "actual"},
                    ],
                },
            },
        ],
    )


def value_forecast_vs_actual(rows: list[dict]) -> dict:
    """A value goal's cumulative value: the creation forecast with its 90% band, and the actual sum so far."""
    x = {"field": "day", "type": "temporal", "timeUnit": "yearmonthdate", "title": "day of the goal window"}
    return _chart(
        "Value: forecast at creation (90% band) vs actual",
        rows,
        layer=[
            {
                "mark": {"type": "area", "opacity": 0.25, "color": "#9467bd"},
                "encoding": {
                    "x": x,
                    "y": {"field": "predicted_value_low", "type": "quantitative", "title": "cumulative value"},
                    "y2": {"field": "predicted_value_high"},
                },
            },
            {
                "mark": {"type": "line", "strokeDash": [6, 3], "color": "#9467bd"},
                "encoding": {
                    "x": x,
                    "y": {"field": "predicted_value_cumulative", "type": "quantitative"},
                    "tooltip": [
                        {"field": "day", "type": "temporal"},
                        {"field": "predicted_value_cumulative", "format": ",.1f", "title": "forecast"},
                        {"field": "predicted_value_low", "format": ",.1f", "title": "90% low"},
                        {"field": "predicted_value_high", "format": ",.1f", "title": "90% high"},
                    ],
                },
            },
            {
                "mark": {"type": "line", "point": True, "color": "#d62728"},
                "transform": [{"filter": "datum.actual_value_cumulative != null"}],
                "encoding": {
                    "x": x,
                    "y": {"field": "actual_value_cumulative", "type": "quantitative"},
                    "tooltip": [
                        {"field": "day", "type": "temporal"},
                        {"field": "actual_value_cumulative", "format": ",.1f", "title": "actual"},
                    ],
                },
            },
        ],
    )


def value_uplift_interval(rows: list[dict]) -> dict:
    """Value per user, test - control, each night with its 95% Welch interval; zero drawn for reference."""
    x = {"field": "as_of_date", "type": "temporal", "timeUnit": "yearmonthdate", "title": "night"}
    return _chart(
        "Value uplift per user (test - control) with its 95% interval",
        rows,
        layer=[
            {
                "mark": {"type": "rule", "color": "#9467bd"},
                "encoding": {
                    "x": x,
                    "y": {"field": "value_ci_low", "type": "quantitative", "title": "value per user"},
                    "y2": {"field": "value_ci_high"},
                },
            },
            {
                "mark": {"type": "line", "point": True, "color": "#9467bd"},
                "encoding": {
                    "x": x,
                    "y": {"field": "value_uplift", "type": "quantitative"},
                    "tooltip": [
                        {"field": "as_of_date", "type": "temporal"},
                        {"field": "test_value_per_user", "format": ",.2f", "title": "test"},
                        {"field": "control_value_per_user", "format": ",.2f", "title": "control"},
                        {"field": "value_uplift", "format": "+,.2f", "title": "uplift"},
                        {"field": "value_ci_low", "format": "+,.2f", "title": "95% low"},
                        {"field": "value_ci_high", "format": "+,.2f", "title": "95% high"},
                    ],
                },
            },
            {
                "mark": {"type": "rule", "color": "grey"},
                "data": {"values": [{"zero": 0}]},
                "encoding": {"y": {"field": "zero", "type": "quantitative"}},
            },
        ],
    )


def conversion_over_time(rows: list[dict]) -> dict:
    """Test and control conversion each night (bucket all)."""
    return _chart(
        "Conversion so far: test vs control, each night",
        rows,
        transform=[
            {"fold": ["test_rate", "control_rate"], "as": ["arm", "rate"]},
            {"calculate": "replace(datum.arm, '_rate', '')", "as": "arm"},
        ],
        mark={"type": "line", "point": True},
        encoding={
            "x": {"field": "as_of_date", "type": "temporal", "timeUnit": "yearmonthdate", "title": "night"},
            "y": {"field": "rate", "type": "quantitative", "axis": {"format": ".0%"}, "title": "conversion"},
            "color": {"field": "arm", "type": "nominal", "scale": TEST_CONTROL, "title": "group"},
            "tooltip": [
                {"field": "as_of_date", "type": "temporal"},
                {"field": "arm"},
                {"field": "rate", "format": ".2%"},
            ],
        },
    )


def uplift_interval(rows: list[dict]) -> dict:
    """Absolute uplift each night with its 95% Newcombe interval; zero drawn for reference."""
    x = {"field": "as_of_date", "type": "temporal", "timeUnit": "yearmonthdate", "title": "night"}
    return _chart(
        "Uplift (test - control) with its 95% interval",
        rows,
        layer=[
            {
                "mark": {"type": "area", "opacity": 0.25, "color": "#2ca02c"},
                "encoding": {
                    "x": x,
                    "y": {
                        "field": "ci_low",
                        "type": "quantitative",
                        "axis": {"format": "+.0%"},
                        "title": "absolute uplift",
                    },
                    "y2": {"field": "ci_high"},
                },
            },
            # A rule per night shows the interval even when there is one night so far.
            {
                "mark": {"type": "rule", "color": "#2ca02c"},
                "encoding": {"x": x, "y": {"field": "ci_low", "type": "quantitative"}, "y2": {"field": "ci_high"}},
            },
            {
                "mark": {"type": "line", "point": True, "color": "#2ca02c"},
                "encoding": {
                    "x": x,
                    "y": {"field": "abs_uplift", "type": "quantitative"},
                    "tooltip": [
                        {"field": "as_of_date", "type": "temporal"},
                        {"field": "abs_uplift", "format": "+.2%", "title": "uplift"},
                        {"field": "ci_low", "format": "+.2%", "title": "95% low"},
                        {"field": "ci_high", "format": "+.2%", "title": "95% high"},
                        {"field": "p_value", "format": ".3g", "title": "p"},
                    ],
                },
            },
            {
                "mark": {"type": "rule", "color": "grey"},
                "data": {"values": [{"zero": 0}]},
                "encoding": {"y": {"field": "zero", "type": "quantitative"}},
            },
        ],
    )


def bucket_sizes(rows: list[dict]) -> dict:
    """Tonight's intent buckets: users per bucket, test and control stacked."""
    return _chart(
        "Intent buckets tonight: users per bucket",
        rows,
        mark="bar",
        encoding={
            "x": {
                "field": "bucket",
                "type": "nominal",
                "sort": ["most_likely", "moderately_likely", "least_likely", "achieved"],
                "title": None,
                "axis": {"labelAngle": 0},
            },
            "y": {"field": "users", "type": "quantitative", "title": "users"},
            "color": {"field": "group", "type": "nominal", "scale": TEST_CONTROL},
            "tooltip": [{"field": "bucket"}, {"field": "group"}, {"field": "users"}],
        },
    )


def conversion_by_bucket(rows: list[dict]) -> dict:
    """Conversion per bucket the users had at creation, test vs control side by side."""
    return _chart(
        "Conversion by bucket at creation: test vs control",
        rows,
        transform=[
            {"fold": ["test_rate", "control_rate"], "as": ["arm", "rate"]},
            {"calculate": "replace(datum.arm, '_rate', '')", "as": "arm"},
        ],
        mark="bar",
        encoding={
            "x": {
                "field": "bucket",
                "type": "nominal",
                "sort": ["most_likely", "moderately_likely", "least_likely", "unscored"],
                "title": None,
                "axis": {"labelAngle": 0},
            },
            "xOffset": {"field": "arm"},
            "y": {"field": "rate", "type": "quantitative", "axis": {"format": ".0%"}, "title": "conversion"},
            "color": {"field": "arm", "type": "nominal", "scale": TEST_CONTROL, "title": "group"},
            "tooltip": [
                {"field": "bucket"},
                {"field": "arm"},
                {"field": "rate", "format": ".2%"},
                {"field": "abs_uplift", "format": "+.2%", "title": "uplift"},
            ],
        },
    )


def model_quality(rows: list[dict]) -> dict:
    """Held-out AUC per prediction date with its interval (0.5 = no better than chance)."""
    x = {"field": "prediction_date", "type": "temporal", "timeUnit": "yearmonthdate", "title": "prediction date"}
    return _chart(
        "Model quality over prediction dates: AUC with its interval",
        rows,
        layer=[
            {
                "mark": {"type": "area", "opacity": 0.25, "color": "#9467bd"},
                "encoding": {
                    "x": x,
                    "y": {"field": "auc_ci_low", "type": "quantitative", "title": "AUC", "scale": {"domain": [0.4, 1]}},
                    "y2": {"field": "auc_ci_high"},
                },
            },
            {
                "mark": {"type": "line", "point": True, "color": "#9467bd"},
                "encoding": {
                    "x": x,
                    "y": {"field": "auc", "type": "quantitative"},
                    "tooltip": [
                        {"field": "prediction_date", "type": "temporal"},
                        {"field": "auc", "format": ".3f"},
                        {"field": "brier", "format": ".4f"},
                        {"field": "top_bucket_lift", "format": ".2f", "title": "top bucket lift"},
                        {"field": "users"},
                        {"field": "achievers"},
                    ],
                },
            },
            {
                "mark": {"type": "rule", "color": "grey", "strokeDash": [2, 2]},
                "data": {"values": [{"chance": 0.5}]},
                "encoding": {"y": {"field": "chance", "type": "quantitative"}},
            },
        ],
    )


def segment_sizes(rows: list[dict]) -> dict:
    return _chart(
        "Segment sizes over time",
        rows,
        mark={"type": "line"},
        encoding={
            "x": {"field": "as_of_date", "type": "temporal", "timeUnit": "yearmonthdate", "title": "day"},
            "y": {"field": "users", "type": "quantitative", "title": "members"},
            "color": {"field": "segment", "type": "nominal"},
            "tooltip": [{"field": "as_of_date", "type": "temporal"}, {"field": "segment"}, {"field": "users"}],
        },
    )


def overlap_heatmap(rows: list[dict]) -> dict:
    """Users in both segments for every pair; the diagonal is each segment's size."""
    spec = _chart(
        "Segment overlaps tonight (users in both)",
        rows,
        encoding={
            "x": {"field": "segment_b", "type": "nominal", "title": None},
            "y": {"field": "segment_a", "type": "nominal", "title": None},
        },
        layer=[
            {
                "mark": "rect",
                "encoding": {
                    "color": {"field": "users", "type": "quantitative", "scale": {"scheme": "blues"}},
                    "tooltip": [{"field": "segment_a"}, {"field": "segment_b"}, {"field": "users"}],
                },
            },
            {
                "mark": {"type": "text", "fontSize": 9},
                "encoding": {"text": {"field": "users", "type": "quantitative", "format": ",d"}},
            },
        ],
    )
    spec["height"] = spec["width"] = 420
    return spec
