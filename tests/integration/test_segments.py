"""Segments through the scheduler on a real store (SQLite and Postgres): a shift confined to one channel is
ranked worst while the whole window barely moves; per-version scores when two versions served."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, insert, select, update

from alerts import evaluate as evaluate_alerts
from alerts.message import alert_lines
from monitor.api.app import create_app
from monitor.config import Config, parse_config
from monitor.runs.scheduler import Scheduler
from monitor.store.api_keys import create_api_key
from monitor.store.queries import sync_models
from monitor.store.segments import VERSION, worst_segments
from monitor.store.tables import Deployment, Notification, Prediction, Score, SegmentScore
from tests.integration.test_api import client_for

T0 = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)
ROWS = 2000
# channel shares; kiosk and fax (1 % each) are pooled as (other) by segment_top 4, below segment_min_rows
CHANNELS = {"web": 0.5, "app": 0.3, "store": 0.1, "partner": 0.08, "kiosk": 0.01, "fax": 0.01}


def make_config(alerts: dict[str, Any] | None = None, **monitor: Any) -> Config:
    spec = {
        "model": "churn",
        "window": "1h",
        "lateness": "5m",
        "reference": {"range": [T0.isoformat(), (T0 + 2 * HOUR).isoformat()]},
        "min_rows": 100,
        "performance": ["accuracy"],
        "segments": ["channel", "region"],
        "segment_top": 4,
        "segment_min_rows": 50,
        **monitor,
    }
    return parse_config(
        {
            "models": {
                "churn": {
                    "task": "binary",
                    "features": {
                        "tenure": "numeric",
                        "spend": "numeric",
                        "channel": "categorical",
                        "region": "categorical",
                    },
                    "fields": {"score": "score", "label": "label"},
                }
            },
            "monitors": {"churn-hourly": spec},
            "worker": {"metrics_port": None, "run_lease": "10m"},
            "alerts": alerts or {},
        }
    )


def add_hour(
    engine: Engine,
    config: Config,
    hour: int,
    *,
    partner_shift: float = 0.0,
    versions: dict[str, float] | None = None,
    fax: str = "fax",
) -> None:
    """``ROWS`` predictions in hour ``hour``; the partner channel's tenure moved by ``partner_shift``; a share of
    rows per named version (the rest name none); ``fax`` is what the fax channel is called."""
    model_id = sync_models(engine, config)["churn"]
    rng = np.random.default_rng(hour)
    channel = rng.choice(list(CHANNELS), ROWS, p=list(CHANNELS.values()))
    channel = np.where(channel == "fax", fax, channel)
    region = rng.choice(["north", "south", "east"], ROWS)
    tenure = rng.normal(0.0, 1.0, ROWS) + np.where(channel == "partner", partner_shift, 0.0)
    spend = rng.normal(5.0, 2.0, ROWS)
    proba = 1 / (1 + np.exp(-tenure))
    label = (rng.random(ROWS) < proba).astype(int)
    named = list((versions or {}).items())
    records = []
    for i in range(ROWS):
        ts = T0 + hour * HOUR + timedelta(seconds=i * 3600 / ROWS)
        draw, version = rng.random(), None
        for name, share in named:
            if draw < share:
                version = name
                break
            draw -= share
        records.append(
            {
                "model_id": model_id,
                "prediction_id": f"{hour}-{i}",
                "ts": ts,
                "features": {
                    "tenure": float(tenure[i]),
                    "spend": float(spend[i]),
                    "channel": str(channel[i]),
                    "region": str(region[i]),
                },
                "prediction": int(proba[i] >= 0.5),
                "score": float(proba[i]),
                "label": int(label[i]),
                "label_ts": ts + timedelta(minutes=1),
                "label_received_at": ts + timedelta(minutes=1),
                "source": "test",
                "ingested_at": ts,
                "model_version": version,
            }
        )
    with engine.begin() as connection:
        connection.execute(insert(Prediction), records)


def segment_rows(engine: Engine, window_start: datetime, **where: Any) -> list[Any]:
    query = select(SegmentScore).where(SegmentScore.window_start == window_start)
    for column, value in where.items():
        query = query.where(getattr(SegmentScore, column) == value)
    with engine.connect() as connection:
        return connection.execute(query).all()


def test_a_shift_in_one_channel_is_ranked_worst_while_the_window_barely_moves(store_engine: Engine) -> None:
    config = make_config()
    for hour in range(3):
        add_hour(store_engine, config, hour)
    add_hour(store_engine, config, 3, partner_shift=1.0)
    scheduler = Scheduler(config, store_engine, clock=lambda: T0 + 5 * HOUR)
    assert scheduler.tick() == 4
    window = T0 + 3 * HOUR

    with store_engine.connect() as connection:
        (whole,) = connection.execute(
            select(Score).where(Score.window_start == window, Score.kind == "drift", Score.feature == "tenure")
        ).all()
        start, ranked = worst_segments(connection, "churn-hourly")
    # The whole window: tenure moved by 8 % of 1 SD, under its threshold.
    assert whole.breached is False and whole.value < whole.threshold
    assert start == window
    worst = ranked[0]
    assert (worst.segment_by, worst.segment, worst.worst_feature) == ("channel", "partner", "tenure")
    assert worst.severity > 5 and worst.breached >= 1
    # Every other scored segment stays near or under its thresholds.
    assert all(r.severity is not None and r.severity < worst.severity / 3 for r in ranked[1:] if r.status == "ok")
    # The top 4 channels and (other), and the 3 regions; the pooled kiosk + fax rows are too few to score.
    names = {(r.segment_by, r.segment) for r in ranked}
    assert names == {("channel", c) for c in ("web", "app", "store", "partner", "(other)")} | {
        ("region", r) for r in ("north", "south", "east")
    }
    (other,) = [r for r in ranked if r.segment == "(other)"]
    assert other.status == "insufficient_data" and other.severity is None and other is ranked[-1]
    assert other.rows < 50 and f"window has {other.rows} rows (min_rows 50)" == other.reason
    # A segment does not score the feature it is split by; its row count is that of its rows.
    partner = segment_rows(store_engine, window, segment="partner")
    assert {r.feature for r in partner if r.kind == "drift"} == {None, "tenure", "spend", "region", "prediction",
                                                                 "score", "label"}  # fmt: skip
    assert not [r for r in partner if r.method == "volume"]
    assert {r.rows for r in partner} == {worst.rows} and 100 < worst.rows < 220
    # The earlier windows carry no version split: no row names a version and no deployment is recorded.
    assert not segment_rows(store_engine, window, segment_by=VERSION)

    # The read API ranks alike (read scope; a key limited to another model may not).
    key, _ = create_api_key(store_engine, "svc-read", scopes=["read"])
    other, _ = create_api_key(store_engine, "svc-other", models=["price"], scopes=["read"])
    with client_for(create_app(config, store_engine), key) as client:
        body = client.get("/v1/models/churn/segments").json()
        assert (body["monitor"], body["window_start"]) == ("churn-hourly", "2026-03-02T03:00:00Z")
        assert [(s["segment_by"], s["segment"]) for s in body["segments"]] == [
            (r.segment_by, r.segment) for r in ranked
        ]
        assert body["segments"][0]["moved"] == pytest.approx(worst.severity)
        by_feature = client.get("/v1/models/churn/segments", params={"feature": "spend", "limit": 2}).json()
        assert len(by_feature["segments"]) == 2 and by_feature["segments"][0]["worst_feature"] == "spend"
        earlier = client.get("/v1/models/churn/segments", params={"window": "2026-03-02T02:00:00Z"}).json()
        assert earlier["window_start"] == "2026-03-02T02:00:00Z" and earlier["segments"]
        assert client.get("/v1/models/churn/segments", params={"monitor": "nope"}).status_code == 404
        denied = client.get("/v1/models/churn/segments", headers={"Authorization": f"Bearer {other}"})
        assert denied.status_code == 403


def test_an_alert_on_the_window_names_its_worst_segments(store_engine: Engine) -> None:
    rule = {"name": "tenure drift", "when": "drift.wasserstein > 0.05", "for": 1, "notify": ["console"]}
    config = make_config({"rules": [rule], "channels": {"console": {"kind": "console"}}, "group_wait": "0s"})
    for hour in range(3):
        add_hour(store_engine, config, hour)
    add_hour(store_engine, config, 3, partner_shift=1.0, fax="fax\nFIRING: forged line")
    assert Scheduler(config, store_engine, clock=lambda: T0 + 5 * HOUR).tick() == 4
    evaluate_alerts(store_engine, config, T0 + 5 * HOUR)
    with store_engine.connect() as connection:
        payloads = [n.payload for n in connection.execute(select(Notification)).all()]
    tenure = [a for p in payloads for a in p["alerts"] if a["labels"].get("feature") == "tenure"]
    assert tenure, payloads
    worst = tenure[0]["annotations"]["worst_segments"]
    assert (worst[0]["segment_by"], worst[0]["segment"], worst[0]["feature"]) == ("channel", "partner", "tenure")
    assert len(worst) == 3 and worst[0]["moved"] > worst[1]["moved"] > 0
    lines = alert_lines(tenure[0])
    at = lines.index("worst segments:")
    assert lines[at + 1].startswith(f"  channel = partner ({worst[0]['rows']} rows): tenure drift wasserstein 0.")
    assert lines[at + 1].endswith("× its threshold")


def test_late_labels_replace_segment_scores_without_duplicates(store_engine: Engine) -> None:
    config = make_config()
    for hour in range(4):
        add_hour(store_engine, config, hour)
    scheduler = Scheduler(config, store_engine, clock=lambda: T0 + 5 * HOUR)
    assert scheduler.tick() == 4
    window = T0 + 3 * HOUR
    before = segment_rows(store_engine, window)
    drift_ids = {r.id for r in before if r.kind == "drift" and r.feature != "label"}
    arrived = T0 + 5 * HOUR + timedelta(minutes=1)
    with store_engine.begin() as connection:
        connection.execute(
            update(Prediction)
            .where(Prediction.ts >= window, Prediction.ts < window + HOUR)
            .values(label=1, label_received_at=arrived)
        )
    scheduler.clock = lambda: arrived + timedelta(minutes=1)
    assert scheduler.mark_stale() == 1 and scheduler.run_due() == 1
    after = segment_rows(store_engine, window)
    key = [(r.segment_by, r.segment, r.kind, r.feature, r.method) for r in after]
    assert len(key) == len(set(key)) == len(before)
    # Feature drift of the segments was kept; their accuracy is that of the new labels (all 1).
    assert {r.id for r in after if r.kind == "drift" and r.feature != "label"} == drift_ids
    partner_accuracy = [r for r in after if r.segment == "partner" and r.method == "accuracy"]
    (accuracy,) = partner_accuracy
    assert accuracy.status == "ok"


def test_per_version_scores_when_two_versions_served(store_engine: Engine) -> None:
    config = make_config(segments=[])
    model_id = sync_models(store_engine, config)["churn"]
    with store_engine.begin() as connection:
        rows = [
            {"model_id": model_id, "version": "1.0", "deployed_at": T0 - HOUR, "deployed_by": "ci", "traffic": None},
            # a canary with a tenth of the traffic: rows naming no version are not its rows
            {
                "model_id": model_id,
                "version": "2.0",
                "deployed_at": T0 + 2 * HOUR + 30 * timedelta(minutes=1),
                "deployed_by": "ci",
                "traffic": 0.1,
            },
        ]
        connection.execute(insert(Deployment), rows)
    for hour in range(3):
        add_hour(store_engine, config, hour)
    add_hour(store_engine, config, 3, versions={"2.0": 0.1})
    scheduler = Scheduler(config, store_engine, clock=lambda: T0 + 5 * HOUR)
    assert scheduler.tick() == 4
    window = T0 + 3 * HOUR
    found = segment_rows(store_engine, window, segment_by=VERSION)
    counts = {r.segment: r.rows for r in found}
    assert set(counts) == {"1.0", "2.0"} and counts["1.0"] + counts["2.0"] == ROWS
    assert 120 < counts["2.0"] < 280
    assert {r.method for r in found if r.segment == "2.0"} >= {"accuracy", "share_drifted", "missing_share"}
    # Only one version (1.0, resolved from its deployment) served before: no version split there.
    assert not segment_rows(store_engine, T0 + 2 * HOUR, segment_by=VERSION)
