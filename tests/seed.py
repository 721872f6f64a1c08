"""Seed a store with demo-like monitoring history, inserted directly with the SQLAlchemy models.

The shapes are the ones the scheduler and detectors write (and the demo's traffic generator produces):
hourly runs; per window a drift score per feature with small reference/current histograms in
``details``, ``share_drifted``/``count_drifted``, data-quality shares, volume, realized performance
(once labels arrived, a day later) and estimated performance with confidence intervals; Prometheus
metric points; alerts.

The story of :func:`seed_store`'s main model ``churn`` (7 days by default):

- day 3, 10:00–13:00: a service incident — p99 latency and error rate spike, volume drops; a
  critical "volume drop" alert fires and resolves. No drift: it is the service, not the data.
- from day 5, 14:00 on: ``monthly_charges``, ``data_usage_gb`` and ``contract`` drift, the score
  distribution follows, estimated and (where labels arrived) realized ROC AUC drop; the "feature drift"
  alert (warning) and "performance drop" alert (critical) fire and are still firing.

A second model (``fraud-detector``) stays healthy and a third (``pricing``) has no data yet.

Each model has two monitors over the same hourly windows, as a real deployment often has: ``<model>-hourly``
(a dataset reference; KS and chi-square p-values) and ``<model>-rolling`` (a rolling reference;
Wasserstein and Jensen-Shannon distances, blind to the weak drift of ``total_charges``). The firing
"feature drift" alert is on the rolling monitor and reports its newest share of drifted features. The
predictions of the last two days are stored too (what the overview's "Rows, 24 h" counts).
Used by the unit and e2e tests of the dashboard and by ``bench/dashboard.py`` (90 days × 50 features).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, insert

from monitor.store.tables import Alert, MetricPoint, MetricSeries, Model, Prediction, Run, Score

SEED_START = datetime(2026, 11, 18, tzinfo=UTC)
WINDOW = timedelta(hours=1)
LABEL_DELAY = timedelta(days=1)
MONITOR = "churn-hourly"
ROLLING_MONITOR = "churn-rolling"
MODEL = "churn"
STORED_PREDICTIONS = timedelta(days=2)

CHURN_FEATURES: dict[str, str] = {
    "tenure": "numeric",
    "monthly_charges": "numeric",
    "total_charges": "numeric",
    "contract": "categorical",
    "payment_method": "categorical",
    "internet_service": "categorical",
    "age": "numeric",
    "support_calls": "numeric",
    "data_usage_gb": "numeric",
    "region": "categorical",
}
DRIFTING = {"monthly_charges": 1.0, "data_usage_gb": 0.8, "contract": 0.7, "total_charges": 0.25}
CATEGORIES = {
    "contract": ["month-to-month", "one-year", "two-year"],
    "payment_method": ["card", "bank transfer", "check", "e-wallet"],
    "internet_service": ["fiber", "dsl", "none"],
    "region": ["north", "south", "east", "west", "central"],
}
HIST_BINS = 12
P_THRESHOLD = 0.05
DISTANCE_THRESHOLD = 0.1
CHUNK = 5000


@dataclass(frozen=True)
class SeededModel:
    name: str
    id: int
    monitor: str  # the primary monitor (hourly, p-values)
    rolling_monitor: str  # the second one (hourly, distances)
    features: dict[str, str]
    first_window: datetime
    last_window: datetime
    last_share: dict[str, float]  # monitor → share_drifted of the newest window
    predictions_24h: int  # stored predictions in the 24 h before the newest window's end


@dataclass(frozen=True)
class SeedInfo:
    churn: SeededModel
    healthy: SeededModel
    empty_model: str
    drift_start: datetime
    drifting_features: tuple[str, ...]
    incident: tuple[datetime, datetime]
    firing_alert_ids: tuple[int, ...]
    resolved_alert_id: int


def feature_names(count: int) -> dict[str, str]:
    """The 10 churn features, then ``feature_NN`` (every third categorical) up to ``count``."""
    names = dict(list(CHURN_FEATURES.items())[:count])
    for i in range(len(names), count):
        names[f"feature_{i:02d}"] = "categorical" if i % 3 == 2 else "numeric"
    return names


def seed_store(
    engine: Engine, *, start: datetime = SEED_START, days: int = 7, n_features: int = 10, seed: int = 7
) -> SeedInfo:
    """Insert the demo story into an empty, migrated store; returns what was seeded."""
    rng = np.random.default_rng(seed)
    end = start + timedelta(days=days)
    drift_start = start + timedelta(days=min(4, days - 1), hours=14 if days > 1 else 0)
    incident = (start + timedelta(days=min(2, days - 1), hours=10), start + timedelta(days=min(2, days - 1), hours=13))
    with engine.begin() as conn:
        churn = _seed_model(
            conn, rng, MODEL, feature_names(n_features), start, end, drift_start, incident, base_auc=0.86
        )
        healthy = _seed_model(
            conn,
            rng,
            "fraud-detector",
            {"amount": "numeric", "merchant": "categorical", "hour": "numeric", "country": "categorical"},
            start,
            end,
            None,
            None,
            base_auc=0.93,
        )
        conn.execute(insert(Model), [{"name": "pricing", "task": "regression", "feature_schema": {"sqft": "numeric"}}])
        firing, resolved = _seed_alerts(conn, churn, drift_start, incident, end)
    return SeedInfo(churn, healthy, "pricing", drift_start, tuple(DRIFTING), incident, firing, resolved)


def _seed_model(
    conn: Connection,
    rng: np.random.Generator,
    name: str,
    features: dict[str, str],
    start: datetime,
    end: datetime,
    drift_start: datetime | None,
    incident: tuple[datetime, datetime] | None,
    base_auc: float,
) -> SeededModel:
    model_id = conn.execute(
        insert(Model).returning(Model.id), [{"name": name, "task": "binary", "feature_schema": features}]
    ).scalar_one()
    windows = [start + i * WINDOW for i in range(int((end - start) / WINDOW))]
    # Both monitors read the same predictions: the same row count per window.
    volumes = [_volume(rng, ws, incident) for ws in windows]
    monitors = {f"{name}-hourly": False, f"{name}-rolling": True}  # monitor → scores distances
    last_share = {}
    for monitor, distances in monitors.items():
        runs = []
        for ws, rows in zip(windows, volumes, strict=True):
            labelled = ws + WINDOW + LABEL_DELAY <= end
            runs.append(
                {
                    "monitor": monitor,
                    "model_id": model_id,
                    "window_start": ws,
                    "window_end": ws + WINDOW,
                    "status": "succeeded",
                    "attempts": 1,
                    "row_count": rows,
                    "label_count": rows if labelled else 0,
                    "started_at": ws + WINDOW + timedelta(minutes=5),
                    "finished_at": ws + WINDOW + timedelta(minutes=5, seconds=2),
                    "duration_ms": float(rng.uniform(300, 2500)),
                }
            )
        run_ids = conn.execute(insert(Run).returning(Run.id, sort_by_parameter_order=True), runs).scalars().all()
        scores = _score_rows(rng, model_id, monitor, features, runs, run_ids, drift_start, base_auc, distances)
        for chunk in _chunks(scores):
            conn.execute(insert(Score), chunk)
        last_share[monitor] = next(s["value"] for s in reversed(scores) if s["method"] == "share_drifted")
    _seed_metrics(conn, rng, model_id, name, start, end, incident)
    stored = _seed_predictions(conn, model_id, windows, volumes, end)
    hourly, rolling = monitors
    return SeededModel(name, model_id, hourly, rolling, features, windows[0], windows[-1], last_share, stored)


def _seed_predictions(
    conn: Connection, model_id: int, windows: list[datetime], volumes: list[int], end: datetime
) -> int:
    """Store the predictions of the windows in the last :data:`STORED_PREDICTIONS` (the seeded store is
    big enough without the rest); returns how many fall in the last 24 h."""
    rows: list[dict[str, Any]] = []
    last_day = 0
    for ws, n in zip(windows, volumes, strict=True):
        if ws < end - STORED_PREDICTIONS:
            continue
        last_day += n if ws >= end - timedelta(days=1) else 0
        step = WINDOW / n
        rows.extend(
            {
                "model_id": model_id,
                "prediction_id": f"{ws:%Y%m%d%H}-{i}",
                "ts": ws + i * step,
                "features": {},
                "source": "seed",
            }
            for i in range(n)
        )
    for chunk in _chunks(rows):
        conn.execute(insert(Prediction), chunk)
    return last_day


def _volume(rng: np.random.Generator, ws: datetime, incident: tuple[datetime, datetime] | None) -> int:
    daily = 1.0 + 0.45 * math.sin((ws.hour - 9) / 24 * 2 * math.pi)  # busier in the afternoon
    rows = int(rng.normal(420 * daily, 25))
    if incident and incident[0] <= ws < incident[1]:
        rows = int(rows * 0.3)  # requests fail during the incident, fewer predictions are logged
    return max(rows, 40)


def _drift_strength(feature: str, ws: datetime, drift_start: datetime | None) -> float:
    if drift_start is None or ws < drift_start or feature not in DRIFTING:
        return 0.0
    ramp = min(1.0, (ws - drift_start) / timedelta(hours=6))  # drift builds up over a few hours
    return DRIFTING[feature] * ramp


def _numeric_hist(rng: np.random.Generator, shift: float, n: int) -> dict[str, Any]:
    edges = np.linspace(-3.0, 3.0, HIST_BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    ref = np.exp(-(centres**2) / 2)
    cur = np.exp(-((centres - shift) ** 2) / 2) * rng.uniform(0.9, 1.1, HIST_BINS)
    cur_counts = rng.multinomial(n, cur / cur.sum())
    return {
        "edges": edges.round(4).tolist(),
        "reference": (ref / ref.sum()).round(5).tolist(),
        "current": (cur_counts / n).round(5).tolist(),
    }


def _categorical_hist(rng: np.random.Generator, categories: list[str], shift: float, n: int) -> dict[str, Any]:
    ref = np.linspace(1.0, 0.4, len(categories))
    ref = ref / ref.sum()
    cur = ref.copy()
    cur[0] = max(cur[0] - 0.35 * shift, 0.02)
    cur[-1] += 0.35 * shift
    counts = rng.multinomial(n, cur / cur.sum())
    return {"categories": categories, "reference": ref.round(5).tolist(), "current": (counts / n).round(5).tolist()}


def _distance(rng: np.random.Generator, strength: float) -> float:
    """A distance that crosses :data:`DISTANCE_THRESHOLD` only for a strong drift (strength above ~0.3)."""
    return float(rng.uniform(0.01, 0.05) + 0.2 * strength * rng.uniform(0.8, 1.2))


def _p_value(rng: np.random.Generator, strength: float) -> float:
    if strength <= 0.05:
        return float(rng.uniform(0.08, 1.0) if rng.random() < 0.99 else rng.uniform(0.01, 0.05))
    return float(10 ** -(2 + 10 * strength * rng.uniform(0.7, 1.3)))


def _score_rows(
    rng: np.random.Generator,
    model_id: int,
    monitor: str,
    features: dict[str, str],
    runs: list[dict[str, Any]],
    run_ids: Sequence[int],
    drift_start: datetime | None,
    base_auc: float,
    distances: bool,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for run, run_id in zip(runs, run_ids, strict=True):
        ws, n = run["window_start"], run["row_count"]

        score = partial(
            _add_score, rows, {"run_id": run_id, "monitor": monitor, "model_id": model_id, "window_start": ws}
        )
        drifted = 0
        for feature, kind in features.items():
            strength = _drift_strength(feature, ws, drift_start)
            if distances:
                value, threshold = _distance(rng, strength), DISTANCE_THRESHOLD
                breached = value > threshold
            else:
                value, threshold = _p_value(rng, strength), P_THRESHOLD
                breached = value < threshold
            drifted += breached
            if kind == "numeric":
                method, hist = ("wasserstein" if distances else "ks"), _numeric_hist(rng, 1.4 * strength, n)
            else:
                cats = CATEGORIES.get(feature, ["a", "b", "c", "d"])
                method = "jensenshannon" if distances else "chisquare"
                hist = _categorical_hist(rng, cats, strength, n)
            score(
                "drift",
                method,
                value,
                feature,
                threshold=threshold,
                breached=breached,
                p_value=not distances,
                n_reference=5000,
                n_current=n,
                histogram=hist,
            )
            missing = round(float(rng.beta(1, 200)) * n) / n  # a share of whole rows, as its count says
            score(
                "quality",
                "missing_share",
                missing,
                feature,
                threshold=0.05,
                breached=missing > 0.05,
                count=round(missing * n),
                of=n,
            )
            score("quality", "type_error_share", 0.0, feature, threshold=0.01, breached=False, count=0, of=n)
            outside = round(float(rng.beta(1, 300) + 0.08 * strength) * n) / n
            method = "out_of_range_share" if kind == "numeric" else "unseen_category_share"
            score(
                "quality",
                method,
                outside,
                feature,
                threshold=0.1,
                breached=outside > 0.1,
                count=round(outside * n),
                of=n,
            )
        output_strength = 0.6 * _drift_strength("monthly_charges", ws, drift_start)
        p = _p_value(rng, output_strength)
        score(
            "drift",
            "ks",
            p,
            "score",
            threshold=P_THRESHOLD,
            breached=p < P_THRESHOLD,
            p_value=True,
            n_reference=5000,
            n_current=n,
            histogram=_numeric_hist(rng, output_strength, n),
        )
        p = _p_value(rng, 0.5 * output_strength)
        score(
            "drift",
            "z",
            p,
            "prediction",
            threshold=P_THRESHOLD,
            breached=p < P_THRESHOLD,
            p_value=True,
            n_reference=5000,
            n_current=n,
            histogram=_categorical_hist(rng, ["0", "1"], 0.5 * output_strength, n),
        )
        share = drifted / len(features)
        score(
            "drift",
            "share_drifted",
            share,
            threshold=0.5,
            breached=share >= 0.5,
            n_columns=len(features),
            n_tested=len(features),
            not_tested=[],
        )
        score("drift", "count_drifted", float(drifted), n_columns=len(features), n_tested=len(features))
        expected = 420 * (1.0 + 0.45 * math.sin((ws.hour - 9) / 24 * 2 * math.pi))
        ratio = n / expected
        score(
            "quality",
            "volume",
            float(n),
            threshold=None,
            breached=not 0.5 <= ratio <= 2.0,
            expected=round(expected, 1),
            ratio=round(ratio, 3),
            ratio_low=0.5,
            ratio_high=2.0,
        )
        score("quality", "duplicate_ids", 0.0, threshold=0.0, breached=False, share=0.0, n_ids=n, examples=[])
        degradation = 0.12 * _drift_strength("monthly_charges", ws, drift_start)
        half_width = 0.6 / math.sqrt(n)
        band = {"band_lower": round(base_auc - 0.03, 3), "band_upper": round(base_auc + 0.03, 3)}
        estimated = base_auc - 0.85 * degradation + float(rng.normal(0, 0.008))
        score(
            "estimated_performance",
            "roc_auc",
            estimated,
            threshold=band["band_lower"],
            breached=estimated < band["band_lower"],
            ci_lower=estimated - half_width,
            ci_upper=estimated + half_width,
            **band,
        )
        if run["label_count"]:
            auc = base_auc - degradation + float(rng.normal(0, 0.012))
            score(
                "performance",
                "roc_auc",
                auc,
                threshold=band["band_lower"],
                breached=auc < band["band_lower"],
                n=n,
                ci_lower=auc - half_width,
                ci_upper=auc + half_width,
                confidence=0.95,
                **band,
            )
            f1 = 0.71 - 1.4 * degradation + float(rng.normal(0, 0.015))
            score(
                "performance",
                "f1",
                f1,
                threshold=0.66,
                breached=f1 < 0.66,
                n=n,
                ci_lower=f1 - 1.5 * half_width,
                ci_upper=f1 + 1.5 * half_width,
                confidence=0.95,
                band_lower=0.66,
                band_upper=0.76,
            )
        coverage = 1.0 if run["label_count"] else 0.0
        score("labels", "coverage", coverage, threshold=None, n=n, labelled=run["label_count"])
    return rows


def _add_score(
    rows: list[dict[str, Any]],
    base: dict[str, Any],
    kind: str,
    method: str,
    value: float | None,
    feature: str | None = None,
    **extra: Any,
) -> None:
    """One score row; ``threshold``/``breached`` come from ``extra``, the rest of it is ``details``."""
    threshold, breached = extra.pop("threshold", None), extra.pop("breached", None)
    rows.append(
        {
            **base,
            "kind": kind,
            "method": method,
            "value": value,
            "feature": feature,
            "threshold": threshold,
            "breached": breached,
            "status": "ok",
            "details": extra,
        }
    )


def _seed_metrics(
    conn: Connection,
    rng: np.random.Generator,
    model_id: int,
    model: str,
    start: datetime,
    end: datetime,
    incident: tuple[datetime, datetime] | None,
) -> None:
    series = {
        "p99_latency_seconds": f"histogram_quantile(0.99, sum by (le) (rate({model}_latency_seconds_bucket[5m])))",
        "error_rate": f'sum(rate({model}_requests_total{{code=~"5.."}}[5m])) / sum(rate({model}_requests_total[5m]))',
        "requests_per_second": f"sum(rate({model}_requests_total[5m]))",
    }
    step = timedelta(minutes=15)
    times = [start + i * step for i in range(int((end - start) / step))]
    for name, query in series.items():
        series_id = conn.execute(
            insert(MetricSeries).returning(MetricSeries.id),
            [{"model_id": model_id, "name": name, "query": query, "labels": {}, "labels_hash": name[:64]}],
        ).scalar_one()
        points = []
        for ts in times:
            hit = incident is not None and incident[0] <= ts < incident[1]
            daily = 1.0 + 0.45 * math.sin((ts.hour - 9) / 24 * 2 * math.pi)
            if name == "p99_latency_seconds":
                value = (0.9 if hit else 0.12 + 0.03 * daily) * float(rng.uniform(0.9, 1.1))
            elif name == "error_rate":
                value = 0.06 * float(rng.uniform(0.8, 1.2)) if hit else float(rng.uniform(0.0005, 0.002))
            else:
                value = 420 * daily / 3600 * 60 * (0.3 if hit else 1.0) * float(rng.uniform(0.95, 1.05))
            points.append({"series_id": series_id, "ts": ts, "value": value})
        for chunk in _chunks(points):
            conn.execute(insert(MetricPoint), chunk)


def _seed_alerts(
    conn: Connection,
    churn: SeededModel,
    drift_start: datetime,
    incident: tuple[datetime, datetime],
    end: datetime,
) -> tuple[tuple[int, ...], int]:
    base = {"model": churn.name, "monitor": churn.monitor}
    last = churn.last_window
    share = churn.last_share[churn.rolling_monitor]
    rows = [
        {
            "rule": "feature drift",
            "fingerprint": "fp-feature-drift",
            "labels": {**base, "monitor": churn.rolling_monitor, "rule": "feature drift"},
            "annotations": {
                "summary": f"share of drifted features {share:.2f} > 0.25 for 2 windows",
                "selector": "drift.share_drifted",
                "since": _iso(drift_start + WINDOW),
            },
            "severity": "warning",
            "state": "firing",
            "value": share,
            "consecutive": int((last - drift_start) / WINDOW),
            "window_start": last,
            "started_at": drift_start + 2 * WINDOW,
            "fired_at": drift_start + 4 * WINDOW,
            "resolved_at": None,
        },
        {
            "rule": "performance drop",
            "fingerprint": "fp-performance-drop",
            "labels": {**base, "rule": "performance drop"},
            "annotations": {
                "summary": "estimated roc_auc 0.77 below the reference band (0.83–0.89)",
                "selector": "estimated_performance.roc_auc",
                "since": _iso(drift_start + 4 * WINDOW),
            },
            "severity": "critical",
            "state": "firing",
            "value": 0.77,
            "consecutive": int((last - drift_start) / WINDOW) - 6,
            "window_start": last,
            "started_at": drift_start + 6 * WINDOW,
            "fired_at": drift_start + 8 * WINDOW,
            "resolved_at": None,
        },
        {
            "rule": "volume drop",
            "fingerprint": "fp-volume-drop",
            "labels": {**base, "rule": "volume drop"},
            "annotations": {
                "summary": "volume at 30% of the expected rate",
                "selector": "quality.volume",
                "since": _iso(incident[0]),
            },
            "severity": "critical",
            "state": "resolved",
            "value": 0.3,
            "consecutive": 0,
            "window_start": incident[1],  # the window that resolved it
            "started_at": incident[0] + WINDOW,
            "fired_at": incident[0] + WINDOW,
            "resolved_at": incident[1] + WINDOW,
        },
    ]
    ids = conn.execute(insert(Alert).returning(Alert.id, sort_by_parameter_order=True), rows).scalars().all()
    return (ids[0], ids[1]), ids[2]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), CHUNK):
        yield rows[i : i + CHUNK]
