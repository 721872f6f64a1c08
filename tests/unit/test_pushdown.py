"""Push-down aggregations (monitor/runs/pushdown.py): what one window asks Elasticsearch for, and how bucket keys
of each field type become the categories copy mode compares."""

from __future__ import annotations

import numpy as np

from detectors.binned import NEW_CATEGORY_LIMIT, bin_width
from monitor.config import parse_config
from monitor.runs.evaluation import fit_baseline
from monitor.runs.pushdown import _category, field_path, window_aggregations
from monitor.runs.windows import Batch


def test_one_search_asks_for_terms_histogram_and_out_of_range_per_column() -> None:
    config = parse_config(
        {
            "sources": {"es": {"kind": "elasticsearch", "url": "http://localhost:9200", "index": "logs"}},
            "models": {
                "m": {
                    "task": "binary",
                    "source": "es",
                    "mode": "pushdown",
                    "fields": {"prediction": "out.label", "features": "f"},
                    "features": {"x": "numeric", "plan": "categorical"},
                }
            },
            "monitors": {"h": {"model": "m", "start": "2026-01-01T00:00:00Z", "reference": {"dataset": "r.csv"}}},
        }
    )
    model, monitor = config.models["m"], config.monitors["h"]
    rng = np.random.default_rng(0)
    n = 500
    reference = Batch(
        n=n,
        features={"x": rng.normal(size=n), "plan": rng.choice(["a", "b"], n).astype(object)},
        prediction=rng.choice([0, 1], n).astype(object),
    )
    baseline = fit_baseline(model, monitor, reference, reference_seconds=None)
    aggs = window_aggregations(model, baseline)
    assert field_path(model, "x") == "f.x" and field_path(model, "prediction") == "out.label"
    width = bin_width(baseline.drift["x"])
    assert aggs["c0_bins"] == {"histogram": {"field": "f.x", "interval": width, "min_doc_count": 1}}
    low, high = float(reference.features["x"].min()), float(reference.features["x"].max())
    assert aggs["c0_outside"]["filter"]["bool"]["should"] == [
        {"range": {"f.x": {"lt": low}}},
        {"range": {"f.x": {"gt": high}}},
    ]
    assert aggs["c1_terms"] == {"terms": {"field": "f.plan", "size": 2 + NEW_CATEGORY_LIMIT}}
    assert aggs["c2_terms"]["terms"]["field"] == "out.label"


def test_bucket_keys_become_copy_mode_categories() -> None:
    assert _category({"key": "pro", "doc_count": 3}) == "pro"
    assert _category({"key": 7, "doc_count": 3}) == "7"  # a long field; copy mode's str(7)
    assert _category({"key": 1, "key_as_string": "true", "doc_count": 3}) == "True"  # Elasticsearch's boolean
    assert _category({"key": 0, "key_as_string": "false", "doc_count": 3}) == "False"
    assert _category({"key": True, "doc_count": 3}) == "True"  # noida-db's boolean
