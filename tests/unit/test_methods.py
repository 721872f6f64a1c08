"""One table of method and metric names (monitor.methods) behind both the config and the detectors."""

from __future__ import annotations

import doctest

import pytest

from detectors.drift import ColumnPolicy
from detectors.estimation import ESTIMATED_METRICS
from detectors.stattests import StatTest, get_stattest, register_stattest, stattest_keys
from monitor import methods
from monitor.methods import DRIFT_METHODS, UNSUPPORTED_DRIFT_METHODS, UnknownMethodError, resolve_drift_method
from monitor.runs.evaluation import evaluate, fit_baseline
from tests.unit.test_windows import MODEL, make_batch, monitor


def test_every_declared_method_has_exactly_one_detector() -> None:
    assert stattest_keys() == sorted(DRIFT_METHODS)
    for key, method in DRIFT_METHODS.items():
        assert get_stattest(key).kinds == method.kinds
        for alias in method.aliases:
            assert get_stattest(alias).key == key
    with pytest.raises(ValueError, match="not declared"):
        register_stattest(StatTest("kl_div", lambda ref, cur: 0.0, 0.1, "ge", False))


def test_no_name_is_both_an_alias_and_unsupported() -> None:
    names = [name for method in DRIFT_METHODS.values() for name in (method.key, *method.aliases)]
    assert len(names) == len(set(names))
    assert not set(names) & set(UNSUPPORTED_DRIFT_METHODS)


def test_aliases_resolve_and_typos_suggest() -> None:
    assert resolve_drift_method("chi2") == "chisquare"
    assert resolve_drift_method("Jensen_Shannon") == "jensenshannon"
    with pytest.raises(UnknownMethodError, match=r"did you mean 'ks'\?"):
        resolve_drift_method("kss")
    with pytest.raises(UnknownMethodError, match="not implemented"):
        resolve_drift_method("TVD")


def test_a_detector_policy_takes_an_alias_under_our_key() -> None:
    assert ColumnPolicy("plan", "categorical", "chi2").method == "chisquare"
    with pytest.raises(ValueError, match=r"'plan'.*'ks' does not apply to categorical"):
        ColumnPolicy("plan", "categorical", "ks")


def test_estimated_metrics_are_those_the_config_asks_for() -> None:
    """Regression: precision and recall were estimated even when `performance` did not list them."""
    mon = monitor(performance=["accuracy", "roc_auc"], estimated_performance=True)
    baseline = fit_baseline(MODEL, mon, make_batch(1000), reference_seconds=3600)
    scores = evaluate(MODEL, mon, baseline, make_batch(200, seed=4), window_seconds=3600).scores
    assert sorted(s.method for s in scores if s.kind == "estimated_performance") == ["accuracy", "roc_auc"]
    everything = monitor(estimated_performance=True)
    baseline = fit_baseline(MODEL, everything, make_batch(1000), reference_seconds=3600)
    scores = evaluate(MODEL, everything, baseline, make_batch(200, seed=4), window_seconds=3600).scores
    assert sorted(s.method for s in scores if s.kind == "estimated_performance") == sorted(ESTIMATED_METRICS)


def test_module_examples_run() -> None:
    assert doctest.testmod(methods).failed == 0
