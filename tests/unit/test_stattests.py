"""Every drift test against SciPy and against Evidently's own implementation, value for value."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from detectors.profile import make_sample, profile_column
from detectors.stattests import (
    StatTest,
    UnknownStatTestError,
    get_stattest,
    jensenshannon_distance,
    register_stattest,
    stattest_keys,
    sturges_edges,
    wasserstein_sorted,
)
from tests.unit.evidently_reference import ColumnType, evidently_stattest

TOL = 1e-9


def _numeric_pair(seed: int, n: int = 600, m: int = 400, shift: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=n), rng.normal(shift, 1.2, size=m)


def _categorical_pair(seed: int, n: int = 600, m: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]), rng.choice(["a", "b", "c", "e"], m)


def _value(key: str, ref: np.ndarray, cur: np.ndarray, kind: str = "numeric") -> float:
    return get_stattest(key).compute(profile_column("x", ref, kind), make_sample(kind, cur, "x"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numeric_tests_equal_scipy(seed: int) -> None:
    ref, cur = _numeric_pair(seed)
    assert _value("ks", ref, cur) == pytest.approx(stats.ks_2samp(ref, cur).pvalue, abs=TOL)
    expected_wd = stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)
    assert _value("wasserstein", ref, cur) == pytest.approx(expected_wd, abs=TOL)
    assert _value("cramer_von_mises", ref, cur) == pytest.approx(stats.cramervonmises_2samp(ref, cur).pvalue, abs=TOL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy warns when it caps the p-value; ours must not (see below)
        expected_ad = stats.anderson_ksamp([ref, cur], variant="midrank").pvalue
    assert _value("anderson", ref, cur) == pytest.approx(expected_ad, abs=TOL)


def test_anderson_capped_p_value_is_not_a_warning() -> None:
    ref, _ = _numeric_pair(0)
    assert _value("anderson", ref, ref[::-1].copy()) == 0.25  # SciPy's documented cap


@pytest.mark.parametrize("seed", [0, 1])
def test_numeric_binned_tests_equal_numpy_histograms(seed: int) -> None:
    ref, cur = _numeric_pair(seed)
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    p = np.histogram(ref, edges)[0] / ref.size
    q = np.histogram(cur, edges)[0] / cur.size
    assert _value("jensenshannon", ref, cur) == pytest.approx(distance.jensenshannon(p, q), abs=TOL)
    p[p == 0] = min(p[p > 0].min() / 1e6 if p[p > 0].min() <= 1e-4 else 1e-4, 1)
    q[q == 0] = min(q[q > 0].min() / 1e6 if q[q > 0].min() <= 1e-4 else 1e-4, 1)
    assert _value("psi", ref, cur) == pytest.approx(np.sum((p - q) * np.log(p / q)), abs=TOL)


@pytest.mark.parametrize(
    ("ref", "cur", "integer"),
    [
        (np.random.default_rng(3).normal(size=1000), np.random.default_rng(4).normal(2, size=37), False),
        (np.arange(30.0), np.arange(5.0, 12.0), False),
        (np.random.default_rng(5).exponential(size=5000) * 1e6, np.array([-3.0, 1e9]), False),
        (np.arange(25), np.arange(600_000) % 25, True),  # integer data: NumPy floors the width at 1
    ],
)
def test_sturges_edges_equal_numpy(ref: np.ndarray, cur: np.ndarray, integer: bool) -> None:
    profile = profile_column("x", ref, "numeric")
    expected = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    np.testing.assert_array_equal(sturges_edges(profile, cur.astype(np.float64), cur_integer=integer), expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_chisquare_equals_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.choice(["a", "b", "c"], 500, p=[0.5, 0.3, 0.2])
    cur = rng.choice(["a", "b", "c"], 300)
    keys = ["a", "b", "c"]
    f_obs = [np.sum(cur == k) for k in keys]
    f_exp = [np.sum(ref == k) * cur.size / ref.size for k in keys]
    assert _value("chisquare", ref, cur, "categorical") == pytest.approx(stats.chisquare(f_obs, f_exp).pvalue, abs=TOL)


def test_categorical_jensenshannon_and_hellinger_equal_formulas() -> None:
    ref, cur = _categorical_pair(7)
    keys = sorted(set(ref) | set(cur))
    p = np.array([np.mean(ref == k) for k in keys])
    q = np.array([np.mean(cur == k) for k in keys])
    assert _value("jensenshannon", ref, cur, "categorical") == pytest.approx(distance.jensenshannon(p, q), abs=TOL)
    assert _value("hellinger", ref, cur, "categorical") == pytest.approx(np.sqrt(1 - np.sum(np.sqrt(p * q))), abs=TOL)
    assert _value("unseen_share", ref, cur, "categorical") == pytest.approx(np.mean(cur == "e"), abs=TOL)


def _with_ties_and_nan(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    if kind == "ties":  # few distinct values, many equal across both sides
        return rng.integers(0, 6, size).astype(np.float64)
    values = rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 2), size)
    if kind == "nan":
        values[rng.random(size) < 0.1] = np.nan
    return values


@pytest.mark.parametrize("kind", ["continuous", "ties", "nan"])
@pytest.mark.parametrize("seed", range(4))
def test_wasserstein_of_sorted_samples_equals_scipy(kind: str, seed: int) -> None:
    """The quantile-function merge (no search, no value comparison) against SciPy's CDF area, on
    unequal, equal, tiny and coprime sizes; missing values reach it only through the sample."""
    rng = np.random.default_rng(seed)
    for n, m in [(1, 1), (1, 7), (5, 3), (600, 400), (997, 1000), (512, 512), (2000, 30)]:
        ref, cur = _with_ties_and_nan(rng, n, kind), _with_ties_and_nan(rng, m, kind)
        u, v = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
        if not (u.size and v.size):
            continue
        expected = stats.wasserstein_distance(u, v)
        assert wasserstein_sorted(np.sort(u), np.sort(v)) == pytest.approx(expected, rel=1e-12, abs=1e-15)
        assert wasserstein_sorted(np.sort(v), np.sort(u)) == pytest.approx(expected, rel=1e-12, abs=1e-15)
        if u.size > 1:
            normed = expected / max(np.std(u), 0.001)
            assert _value("wasserstein", ref, cur) == pytest.approx(normed, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("seed", range(20))
def test_jensenshannon_distance_equals_scipy(seed: int) -> None:
    """Zero shares on either side (unseen and vanished categories), unnormalized counts, identical sides."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 30))
    p, q = rng.random(size), rng.random(size)
    p[rng.random(size) < 0.3] = 0.0
    q[rng.random(size) < 0.3] = 0.0
    p[0], q[-1] = p[0] + 0.5, q[-1] + 0.5  # neither side all zero
    counts = np.round(p * 1000)
    assert jensenshannon_distance(p, q) == pytest.approx(distance.jensenshannon(p, q), rel=1e-12, abs=1e-15)
    assert jensenshannon_distance(counts, q) == pytest.approx(distance.jensenshannon(counts, q), rel=1e-12, abs=1e-15)
    assert jensenshannon_distance(p, p) == distance.jensenshannon(p, p) == 0.0


NUMERIC_KEYS = ["ks", "wasserstein", "psi", "jensenshannon", "anderson", "cramer_von_mises"]
CATEGORICAL_KEYS = ["chisquare", "z", "psi", "jensenshannon", "hellinger"]


@pytest.mark.parametrize("key", NUMERIC_KEYS)
@pytest.mark.parametrize("shift", [0.0, 0.05, 0.5])
def test_numeric_tests_equal_evidently_value_and_verdict(key: str, shift: float) -> None:
    ref, cur = _numeric_pair(11, shift=shift)
    expected = evidently_stattest(key, ref, cur, ColumnType.Numerical)
    test = get_stattest(key)
    value = test.compute(profile_column("x", ref, "numeric"), make_sample("numeric", cur, "x"))
    assert value == pytest.approx(expected.drift_score, abs=TOL)
    assert test.default_threshold == expected.actual_threshold
    assert test.breached(value, test.default_threshold) == expected.drifted


@pytest.mark.parametrize("key", CATEGORICAL_KEYS)
@pytest.mark.parametrize("unseen", [False, True])
def test_categorical_tests_equal_evidently_value_and_verdict(key: str, unseen: bool) -> None:
    rng = np.random.default_rng(12)
    values = ["a", "b"] if key == "z" else ["a", "b", "c"]
    ref = rng.choice(values, 700)
    cur = rng.choice([*values[:-1], "new"] if unseen else values, 300)
    expected = evidently_stattest(key, ref, cur, ColumnType.Categorical)
    test = get_stattest(key)
    value = test.compute(profile_column("x", ref, "categorical"), make_sample("categorical", cur, "x"))
    assert value == pytest.approx(expected.drift_score, abs=TOL)
    assert test.default_threshold == expected.actual_threshold
    assert test.breached(value, test.default_threshold) == expected.drifted


@pytest.mark.parametrize(
    ("key", "at_threshold_breached"),
    [
        ("ks", True),
        ("cramer_von_mises", True),
        ("chisquare", False),
        ("z", False),
        ("anderson", False),
        ("wasserstein", True),
        ("psi", True),
        ("jensenshannon", True),
        ("hellinger", True),
        ("unseen_share", False),
    ],
)
def test_comparison_direction_at_the_threshold(key: str, at_threshold_breached: bool) -> None:
    test = get_stattest(key)
    t = test.default_threshold
    assert test.breached(t, t) is at_threshold_breached
    bad, good = (t / 2, t * 2) if test.is_p_value else (t * 2, t / 2)
    assert test.breached(bad, t) and not test.breached(good, t)


def test_registry_keys_and_errors() -> None:
    assert stattest_keys("numeric") == sorted(
        ["ks", "wasserstein", "psi", "jensenshannon", "anderson", "cramer_von_mises"]
    )
    assert stattest_keys("categorical") == sorted(
        ["chisquare", "z", "psi", "jensenshannon", "hellinger", "unseen_share"]
    )
    with pytest.raises(UnknownStatTestError, match=r"valid:.*wasserstein"):
        get_stattest("wasserstien")
    with pytest.raises(ValueError, match="already registered"):
        register_stattest(get_stattest("ks"))
    with pytest.raises(UnknownStatTestError, match="does not apply"):
        get_stattest("hellinger").compute(
            profile_column("x", np.arange(5.0), "numeric"), make_sample("numeric", np.arange(3.0), "x")
        )
    assert isinstance(get_stattest("ks"), StatTest)
