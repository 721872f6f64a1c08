"""Label-free estimation wired into the monitors for every task: multiclass CBPE and regression DLE."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.rules import computed_methods
from monitor.config import ModelConfig, MonitorConfig
from monitor.runs.evaluation import Baseline, evaluate, fit_baseline
from monitor.runs.windows import Batch

CLASSES = ("a", "b", "c")
MULTICLASS = ModelConfig(task="multiclass", classes=list(CLASSES), features={"x": "numeric", "c": "categorical"})
REGRESSION = ModelConfig(task="regression", features={"x": "numeric", "c": "categorical"})


def _batch(task: str, n: int, seed: int) -> Batch:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    c = rng.choice(["u", "v"], n)
    ts = np.datetime64("2026-03-02T00:00:00", "us") + np.arange(n) * np.timedelta64(1, "s")
    if task == "multiclass":
        logits = np.column_stack([-2 * x, np.ones(n), 2 * x])  # "b" wins for |x| < 0.5
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        label = np.array([rng.choice(CLASSES, p=p) for p in proba], dtype=object)
        prediction, score = np.asarray(CLASSES, dtype=object)[proba.argmax(axis=1)], proba
    else:
        # noisier for category "v": DLE must learn where the errors are large
        target = 2 * x + rng.normal(0.0, np.where(c == "v", 2.0, 0.5))
        prediction, score, label = (2 * x).astype(object), None, target.astype(object)
    return Batch(
        n=n,
        features={"x": x.astype(object), "c": c.astype(object)},
        ids=np.array([str(i) for i in range(n)], dtype=object),
        ts=ts,
        prediction=prediction,
        score=score,
        label=label,
        label_ts=ts + np.timedelta64(60, "s"),
    )


def _monitor(**settings) -> MonitorConfig:
    return MonitorConfig(model="m", reference={"previous_windows": 1}, min_rows=20, **settings)


def _estimates(model: ModelConfig, mon: MonitorConfig, baseline: Baseline, window: Batch) -> dict[str, float]:
    scores = evaluate(model, mon, baseline, window, window_seconds=3600).scores
    estimated = [s for s in scores if s.kind == "estimated_performance"]
    assert all(s.status == "ok" for s in estimated), [s.reason for s in estimated]
    return {s.method: s.value for s in estimated}


@pytest.mark.parametrize(
    ("model", "expected"),
    [(MULTICLASS, {"roc_auc", "accuracy", "precision", "recall", "f1"}), (REGRESSION, {"mae", "mse", "rmse"})],
)
def test_estimation_is_wired_for_the_task_and_survives_a_round_trip_through_bytes(model, expected) -> None:
    mon = _monitor(estimated_performance=True)
    reference, window = _batch(model.task, 3000, seed=0), _batch(model.task, 500, seed=1)
    baseline = fit_baseline(model, mon, reference, reference_seconds=3600 * 6)
    assert "estimated_performance" not in baseline.notes
    got = _estimates(model, mon, baseline, window)
    assert set(got) == expected and all(np.isfinite(v) for v in got.values())
    if model.task == "regression":
        assert 0 < got["mae"] < got["rmse"] and got["mse"] == pytest.approx(got["rmse"] ** 2)
    else:
        assert 0.5 < got["roc_auc"] < 1

    loaded = Baseline.from_bytes(baseline.to_bytes())
    assert loaded.needs_dle == (model.task == "regression")
    assert _estimates(model, mon, loaded.with_dle(model, reference), window) == got


def test_a_loaded_regression_baseline_without_its_dle_says_so() -> None:
    mon = _monitor(estimated_performance=True)
    baseline = fit_baseline(REGRESSION, mon, _batch("regression", 3000, seed=0), reference_seconds=3600 * 6)
    scores = evaluate(REGRESSION, mon, Baseline.from_bytes(baseline.to_bytes()), _batch("regression", 500, seed=1),
                      window_seconds=3600).scores  # fmt: skip
    assert {(s.method, s.status) for s in scores if s.kind == "estimated_performance"} == {
        ("mae", "insufficient_data"), ("mse", "insufficient_data"), ("rmse", "insufficient_data")
    }  # fmt: skip


def test_estimated_metrics_follow_the_task_and_performance() -> None:
    assert _monitor(performance=["mae", "r2"], estimated_performance=True).estimated_metrics("regression") == ("mae",)
    mon = _monitor(performance=["accuracy", "f1"], estimated_performance=True)
    assert mon.estimated_metrics("multiclass") == ("accuracy", "f1")
    assert computed_methods(REGRESSION, _monitor(estimated_performance=True))["estimated"] == {"mae", "mse", "rmse"}
