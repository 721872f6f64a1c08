"""Push-down mode against noida-db (Elasticsearch 8 API): the same documents scored in copy mode (collected
into the store, the window loaded from it) and in push-down mode (aggregations only) give equal
categorical and quality scores and numeric drift within the bound each score states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from elasticsearch import Elasticsearch, helpers
from sqlalchemy import Engine, func, select

from collectors.elasticsearch import build_elasticsearch_collectors, build_window_aggregators
from monitor.config import Config, ConfigError, parse_config
from monitor.runs.references import upload_dataset
from monitor.runs.scheduler import Scheduler
from monitor.store.tables import Prediction, Run
from monitor.store.tables import Score as ScoreRow

pytestmark = pytest.mark.integration

T0 = datetime(2026, 4, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
MAPPINGS = {
    "dynamic": False,
    "properties": {
        "@timestamp": {"type": "date"},
        "request_id": {"type": "keyword"},
        "features": {"properties": {"tenure": {"type": "double"}, "plan": {"type": "keyword"}}},
        "output": {"properties": {"label": {"type": "keyword"}, "proba": {"type": "double"}}},
    },
}
MODEL = {
    "task": "binary",
    "source": "es",
    "fields": {
        "id": "request_id",
        "timestamp": "@timestamp",
        "prediction": "output.label",
        "score": "output.proba",
        "features": "features",
    },
    "features": {"tenure": "numeric", "plan": "categorical"},
}


def make_config(url: str, index: str) -> Config:
    monitor = {"window": "1h", "lateness": "5m", "start": T0.isoformat(), "reference": {"dataset": "train.csv"}}
    return parse_config(
        {
            "sources": {"es": {"kind": "elasticsearch", "url": url, "index": index}},
            "models": {"copied": MODEL, "pushed": {**MODEL, "mode": "pushdown"}},
            "monitors": {
                "copied-hourly": {"model": "copied", **monitor},
                "pushed-hourly": {"model": "pushed", **monitor},
            },
            "worker": {"metrics_port": None},
        }
    )


def reference_file(path: Path) -> Path:
    rng = np.random.default_rng(3)
    tenure = rng.gamma(2.0, 12.0, 3000)
    score = 1 / (1 + np.exp(-(tenure - 24) / 10))
    frame = pd.DataFrame(
        {
            "tenure": tenure,
            "plan": rng.choice(["basic", "pro", "team"], 3000, p=[0.5, 0.3, 0.2]),
            "prediction": (score > 0.5).astype(int),
            "score": score,
            "label": (rng.random(3000) < score).astype(int),
        }
    )
    frame.to_csv(path / "train.csv", index=False)
    return path / "train.csv"


def window_documents(index: str, n: int) -> list[dict[str, Any]]:
    """A drifted hour: longer tenures (some beyond the reference's range), a new plan, missing values."""
    rng = np.random.default_rng(4)
    tenure = rng.gamma(2.5, 14.0, n)
    plans = rng.choice(["basic", "pro", "team", "enterprise"], n, p=[0.3, 0.3, 0.25, 0.15])
    docs = []
    for i in range(n):
        score = float(1 / (1 + np.exp(-(tenure[i] - 24) / 10)))
        features: dict[str, Any] = {"tenure": float(tenure[i]), "plan": str(plans[i])}
        if i % 17 == 0:
            del features["tenure"]  # absent
        if i % 23 == 0:
            features["plan"] = None  # null
        source = {
            "request_id": f"r{i}",
            "@timestamp": (T0 + timedelta(seconds=3599 * i / n)).isoformat().replace("+00:00", "Z"),
            "features": features,
            "output": {"label": str(int(score > 0.5)), "proba": score},
        }
        docs.append({"_index": index, "_id": f"r{i}", "_source": source})
    return docs


def window_scores(engine: Engine, monitor: str) -> dict[tuple[str, str | None, str], ScoreRow]:
    with engine.connect() as connection:
        rows = connection.execute(select(ScoreRow).where(ScoreRow.monitor == monitor)).all()
    return {(r.kind, r.feature, r.method): r for r in rows}


def test_pushdown_scores_equal_copy_mode_on_the_same_documents(
    es_client: Elasticsearch, elasticsearch_url: str, make_es_index, sqlite_engine: Engine, tmp_path: Path
) -> None:
    index = make_es_index(MAPPINGS)
    helpers.bulk(es_client, window_documents(index, 2500), refresh=True, chunk_size=2500)
    config = make_config(elasticsearch_url, index)
    path = reference_file(tmp_path)
    for model in ("copied", "pushed"):
        upload_dataset(sqlite_engine, config, model, path)

    # Only the copy-mode model is collected; the push-down model has no collector at all.
    collectors = build_elasticsearch_collectors(config, sqlite_engine)
    assert [c.model_name for c in collectors] == ["copied"]
    assert collectors[0].backfill(T0, T0 + HOUR).stored == 2500
    aggregators = build_window_aggregators(config, sqlite_engine)
    assert list(aggregators) == ["pushed"]
    Scheduler(config, sqlite_engine, clock=lambda: T0 + 2 * HOUR, window_aggregators=aggregators).tick()

    with sqlite_engine.connect() as connection:
        runs = {r.monitor: r for r in connection.execute(select(Run)).all()}
        stored = connection.scalar(
            select(func.count()).select_from(Prediction).join(Run, Run.model_id == Prediction.model_id)
            .where(Run.monitor == "pushed-hourly")
        )  # fmt: skip
    assert {m: (r.status, r.row_count) for m, r in runs.items()} == {
        "copied-hourly": ("succeeded", 2500),
        "pushed-hourly": ("succeeded", 2500),
    }
    assert stored == 0  # nothing of the push-down model was copied

    copied, pushed = window_scores(sqlite_engine, "copied-hourly"), window_scores(sqlite_engine, "pushed-hourly")
    # Categorical drift (a feature and the prediction) and every quality count: equal.
    for key in [("drift", "plan", "jensenshannon"), ("drift", "prediction", "jensenshannon")]:
        assert pushed[key].value == pytest.approx(copied[key].value, rel=1e-12), key
        assert pushed[key].breached == copied[key].breached
    for method in ("missing_share", "unseen_category_share"):
        assert pushed[("quality", "plan", method)].value == copied[("quality", "plan", method)].value
    for method in ("missing_share", "out_of_range_share"):
        assert pushed[("quality", "tenure", method)].value == copied[("quality", "tenure", method)].value
    assert pushed[("quality", None, "volume")].value == copied[("quality", None, "volume")].value == 2500.0
    assert pushed[("quality", "tenure", "out_of_range_share")].value > 0  # the test has something to count
    # Numeric drift (a feature and the score): within the stated bound of the exact value.
    for feature in ("tenure", "score"):
        exact, binned = copied[("drift", feature, "wasserstein")], pushed[("drift", feature, "wasserstein")]
        bound = binned.details["binned"]["bound"]
        assert 0 < bound < 0.05
        assert abs(binned.value - exact.value) <= bound, feature
        assert binned.breached == exact.breached
    assert pushed[("drift", None, "share_drifted")].value == copied[("drift", None, "share_drifted")].value


def test_pushdown_config_is_checked_at_load() -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(
            {
                "models": {"m": {"features": {"x": "numeric"}, "task": "binary", "mode": "pushdown"}},
                "monitors": {"h": {"model": "m", "reference": {"range": [T0.isoformat(), (T0 + HOUR).isoformat()]}}},
            }
        )
    message = str(error.value)
    assert "models.m.mode" in message and "elasticsearch `source`" in message
    assert "monitors.h.start" in message
    assert "monitors.h.reference" in message and "`dataset` reference" in message
