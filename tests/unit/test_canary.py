"""The canary gate's pure core (monitor/runs/canary.py) and the statistics under it, against SciPy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from detectors.comparison import distribution_difference
from detectors.performance import counts_of_draws, metric_difference, metric_values
from monitor.config import ConfigError, ModelConfig, parse_config
from monitor.runs.canary import EXIT_PROMOTE, EXIT_WAIT, EXIT_WORSE, CanaryVerdict, compare
from monitor.runs.windows import Batch

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
REGIONS = ("eu", "us", "apac")


def _model(**canary: object) -> ModelConfig:
    return ModelConfig(
        task="binary", features={"tenure": "numeric", "region": "categorical"}, canary={"n_resamples": 500, **canary}
    )


def _batch(n: int, seed: int, *, bad_region: str | None = None, labelled: float = 0.0) -> Batch:
    """A binary model's rows; in ``bad_region`` the scores are inverted (the candidate's defect)."""
    rng = np.random.default_rng(seed)
    region = rng.choice(REGIONS, n)
    tenure = rng.gamma(2.0, 12.0, n)
    p = 1 / (1 + np.exp(-(-1.5 + 0.04 * (tenure - 24) + (region == "us") * 0.5)))
    y = (rng.random(n) < p).astype(int)
    score = np.clip(p + rng.normal(0, 0.05, n), 0.001, 0.999)
    if bad_region is not None:
        score = np.where(region == bad_region, 1 - score, score)
    label = np.empty(n, dtype=object)
    label[:] = [int(v) if rng.random() < labelled else None for v in y]

    def obj(values: np.ndarray) -> np.ndarray:
        out = np.empty(n, dtype=object)
        out[:] = values.tolist()
        return out

    return Batch(
        n=n,
        features={"tenure": obj(tenure), "region": obj(region)},
        ts=np.array([np.datetime64("2026-03-01T12:00") + np.timedelta64(i, "s") for i in range(n)]),
        prediction=obj((score >= 0.5).astype(int)),
        score=score,
        label=label,
    )


def _compare(model: ModelConfig, candidate: Batch, baseline: Batch) -> CanaryVerdict:
    return compare("churn", model, ("2.1", "2.0"), candidate, baseline, start=T0, end=T0 + timedelta(hours=1))


# ----------------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy"])
def test_metric_difference_is_scipy_bootstrap_value_for_value(metric: str) -> None:
    rng = np.random.default_rng(3)
    rows = []
    for n, shift in ((180, 0.0), (400, 0.4)):
        y = rng.integers(0, 2, n)
        s = np.clip(0.5 + (y - 0.5) * (0.6 - shift) + rng.normal(0, 0.25, n), 0, 1)
        rows.append((y, (s >= 0.5).astype(int), s))
    ours = metric_difference("binary", metric, rows[0], rows[1], confidence=0.9, n_resamples=999, seed=11)

    def statistic(i_cand: np.ndarray, i_base: np.ndarray, axis: int = -1) -> np.ndarray:
        values = []
        for draws, (y, pred, s) in ((i_cand, rows[0]), (i_base, rows[1])):
            w = counts_of_draws(np.atleast_2d(draws), len(y))
            values.append(np.array([metric_values("binary", y[r > 0].repeat(r[r > 0].astype(int)),
                                                  pred[r > 0].repeat(r[r > 0].astype(int)),
                                                  s[r > 0].repeat(r[r > 0].astype(int)), metrics=[metric])[metric]
                                    for r in w]))  # fmt: skip
        return values[0] - values[1]

    ref = stats.bootstrap(
        (np.arange(180), np.arange(400)),
        statistic,
        paired=False,
        vectorized=True,
        method="percentile",
        confidence_level=0.9,
        n_resamples=999,
        rng=np.random.default_rng(11),
    )
    full = (
        metric_values("binary", *rows[0], metrics=[metric])[metric]
        - metric_values("binary", *rows[1], metrics=[metric])[metric]
    )
    assert ours.difference == pytest.approx(full, abs=1e-12)
    assert (ours.ci_lower, ours.ci_upper) == pytest.approx(
        (ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-12
    )
    assert ours.ci_lower < ours.difference < ours.ci_upper


def test_metric_difference_regression_and_undefined() -> None:
    rng = np.random.default_rng(0)
    y1, y2 = rng.normal(size=300), rng.normal(size=200)
    d = metric_difference("regression", "mae", (y1, y1 + rng.normal(0, 2, 300), None), (y2, y2 + 0.1, None))
    assert d.lower_is_better and d.difference > 1 and d.ci_lower > 0
    with pytest.raises(ValueError, match="roc_auc is undefined on the candidate's rows: ROC AUC needs both classes"):
        metric_difference("binary", "roc_auc", (np.zeros(50, int), None, rng.random(50)),
                          (rng.integers(0, 2, 50), None, rng.random(50)))  # fmt: skip


def test_distribution_difference_against_scipy() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.3, 1, 300), rng.normal(0, 1, 500)
    d = distribution_difference("numeric", np.r_[a, np.nan], b)
    ks = stats.ks_2samp(a, b)
    assert (d.method, d.effect, d.p_value, d.n_candidate) == ("ks", ks.statistic, ks.pvalue, 300)
    ca = np.array(["x"] * 60 + ["y"] * 40 + [None] * 5, dtype=object)
    cb = np.array(["x"] * 30 + ["y"] * 50 + ["z"] * 20, dtype=object)
    d = distribution_difference("categorical", ca, cb)
    table = np.array([[60, 40, 0], [30, 50, 20]])
    assert d.p_value == pytest.approx(stats.chi2_contingency(table).pvalue, rel=1e-12)
    assert d.effect == pytest.approx(0.5 * (0.3 + 0.1 + 0.2))
    assert d.candidate_summary == {"x": 0.6, "y": 0.4, "z": 0.0}


# ------------------------------------------------------------------------------------- verdicts


def test_too_few_candidate_rows_waits_and_says_how_many_more() -> None:
    verdict = _compare(_model(min_rows=200), _batch(50, 1), _batch(2000, 2))
    assert verdict.exit_code == EXIT_WAIT and verdict.verdict == "not enough data"
    (need,) = verdict.needs
    assert (need.role, need.what, need.have, need.more) == ("candidate", "rows", 50, 150)
    assert need.eta_seconds == pytest.approx(3600 * 150 / 50)
    assert verdict.reasons == ("candidate 2.1 has 50 rows, needs 200: 150 more (about 3.0 h at its current "
                               "0.833 rows/min)",)  # fmt: skip
    assert verdict.findings == ()


def test_alike_versions_promote() -> None:
    verdict = _compare(_model(), _batch(600, 1, labelled=0.5), _batch(3000, 2, labelled=0.5))
    assert verdict.exit_code == EXIT_PROMOTE, verdict.reasons
    assert not verdict.needs
    assert {f.check for f in verdict.findings} >= {"prediction_drift", "feature_drift", "realized_performance"}
    assert "service metrics: not compared (no canary.service_metrics configured)" in verdict.notes
    assert "estimated performance: skipped (no monitor reference for this model)" in verdict.notes


def test_a_candidate_worse_on_one_region_fails_naming_the_region_before_labels() -> None:
    verdict = _compare(_model(), _batch(600, 1, bad_region="eu"), _batch(3000, 2))
    assert verdict.exit_code == EXIT_WORSE
    slices = {f.slice for f in verdict.worse if f.check == "prediction_drift"}
    assert "region=eu" in slices and not slices & {"region=us", "region=apac"}
    eu = "score distribution in region=eu of 2.1 differs from 2.0's: KS D "
    assert any(r.startswith(eu) for r in verdict.reasons)
    # Without labels realized performance waits, and says for how long.
    assert [n.what for n in verdict.needs] == ["labels", "labels"]
    waiting = "realized performance: not yet compared (candidate 2.1 has 0 labels"
    assert any(n.startswith(waiting) for n in verdict.notes)


def test_realized_performance_with_an_interval_once_labels_arrive() -> None:
    verdict = _compare(_model(), _batch(900, 1, bad_region="eu", labelled=0.8), _batch(3000, 2, labelled=0.8))
    assert verdict.exit_code == EXIT_WORSE
    realized = {f.slice: f for f in verdict.findings if f.check == "realized_performance"}
    overall, eu = realized[None], realized["region=eu"]
    assert overall.worse and overall.ci is not None and overall.ci[1] < 0 < overall.baseline - overall.candidate
    assert eu.worse and eu.difference < overall.difference  # the slice is where it is worse
    assert not realized["region=us"].worse
    assert any(r.startswith("realized roc_auc in region=eu of 2.1 ") and "CI [" in r for r in verdict.reasons)


def test_a_regression_candidate_with_larger_errors_fails_on_its_interval() -> None:
    rng = np.random.default_rng(5)

    def rows(n: int, noise: float) -> Batch:
        x = rng.normal(size=n)
        values = {"x": x, "prediction": 2 * x + rng.normal(0, noise, n), "label": 2 * x + rng.normal(0, 0.5, n)}
        obj = {name: np.array(v.tolist(), dtype=object) for name, v in values.items()}
        return Batch(n=n, features={"x": obj["x"]}, prediction=obj["prediction"], label=obj["label"])

    model = ModelConfig(task="regression", features={"x": "numeric"}, canary={"n_resamples": 300})
    verdict = compare("price", model, ("2.1", "2.0"), rows(400, 2.0), rows(2000, 0.1), start=T0,
                      end=T0 + timedelta(hours=1))  # fmt: skip
    (mae,) = [f for f in verdict.findings if f.check == "realized_performance"]
    assert mae.name == "mae" and mae.worse and mae.ci is not None and mae.ci[0] > 0  # larger error is worse
    assert verdict.exit_code == EXIT_WORSE
    assert not any("per slice" in note for note in verdict.notes)  # no categorical feature: nothing to slice


def test_require_labels_waits_for_them() -> None:
    verdict = _compare(_model(require_labels=True), _batch(600, 1), _batch(3000, 2, labelled=1.0))
    assert verdict.exit_code == EXIT_WAIT
    assert [(n.role, n.what, n.more) for n in verdict.needs] == [("candidate", "labels", 100)]


def test_service_metrics_compared_per_version() -> None:
    model = ModelConfig(
        task="binary",
        features={"tenure": "numeric", "region": "categorical"},
        metrics={"error_rate": {"source": "prom", "query": "rate(errors[5m])"}},
        canary={"service_metrics": ["error_rate"], "n_resamples": 200},
    )
    service = {"error_rate": (np.array([0.05, 0.06]), np.array([0.01, 0.012, 0.011]))}
    verdict = compare("churn", model, ("2.1", "2.0"), _batch(600, 1), _batch(3000, 2), start=T0,
                      end=T0 + timedelta(hours=1), service=service)  # fmt: skip
    (found,) = [f for f in verdict.findings if f.check == "service_metric"]
    assert found.worse and found.candidate == pytest.approx(0.055)
    assert verdict.exit_code == EXIT_WORSE
    empty = compare("churn", model, ("2.1", "2.0"), _batch(600, 1), _batch(3000, 2), start=T0,
                    end=T0 + timedelta(hours=1), service={})  # fmt: skip
    assert "service metric error_rate: no points labelled version=<version> for both versions" in empty.notes


def test_verdict_json_shape() -> None:
    body = _compare(_model(), _batch(600, 1, bad_region="eu"), _batch(3000, 2)).to_dict()
    assert body["verdict"] == "worse" and body["exit_code"] == 1 and body["reasons"]
    assert body["rows"] == {"candidate": 600, "baseline": 3000}
    assert body["candidate_traffic_share"] == pytest.approx(600 / 3600)
    assert {"check", "name", "slice", "ci", "p_value", "worse", "message"} <= set(body["findings"][0])


def test_canary_config_errors_name_their_key() -> None:
    raw = {
        "models": {
            "churn": {
                "task": "binary",
                "features": {"tenure": "numeric", "region": "categorical"},
                "canary": {"metrics": ["roc_acu"], "slices": ["tenure"], "service_metrics": ["errors"]},
            }
        }
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    paths = dict(info.value.errors)
    assert "did you mean 'roc_auc'" in paths["models.churn.canary.metrics[0]"]
    assert paths["models.churn.canary.slices[0]"] == "not a categorical feature (categorical features: region)"
    assert "not one of the model's metrics" in paths["models.churn.canary.service_metrics[0]"]
