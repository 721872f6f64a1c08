"""Push-down statistics from counts (detectors/binned.py) against the exact tests on the same values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors.binned import (
    OTHER_CATEGORY,
    BinnedError,
    BinnedSample,
    bin_width,
    categorical_sample,
)
from detectors.drift import ColumnPolicy, column_drift
from detectors.profile import make_sample, profile_column

rng = np.random.default_rng(16)


def _cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, reference, window): no drift, shifts, scale changes, tails beyond the reference on both sides, ties."""
    out = []
    for seed in range(8):
        r = np.random.default_rng(seed)
        n, m = int(r.integers(200, 20_000)), int(r.integers(50, 20_000))
        out += [
            (f"same-{seed}", r.normal(size=n), r.normal(size=m)),
            (f"shift-{seed}", r.normal(size=n), r.normal(r.uniform(-1, 1), size=m)),
            (f"wider-{seed}", r.normal(size=n), r.normal(scale=r.uniform(1.5, 4), size=m)),
            (f"narrow-{seed}", r.lognormal(size=n), r.lognormal(sigma=0.3, size=m)),
            (f"ties-{seed}", r.integers(0, 40, n).astype(float), r.integers(-5, 50, m).astype(float)),
            (f"outside-{seed}", r.uniform(0, 1, n), r.uniform(-2, 3, m)),
        ]
    return out


@pytest.mark.parametrize(("name", "ref_values", "cur_values"), _cases(), ids=[c[0] for c in _cases()])
def test_ks_and_wasserstein_stay_within_their_stated_bounds(
    name: str, ref_values: np.ndarray, cur_values: np.ndarray
) -> None:
    ref = profile_column("x", ref_values, "numeric")
    sample = BinnedSample.from_values(bin_width(ref), cur_values)
    exact_d = stats.ks_2samp(ref_values, cur_values).statistic
    assert abs(sample.ks_statistic(ref) - exact_d) <= sample.ks_bound() + 1e-12
    exact_w = stats.wasserstein_distance(ref_values, cur_values) / max(np.std(ref_values), 0.001)
    assert abs(sample.statistic("wasserstein", ref) - exact_w) <= sample.wasserstein_bound(ref) + 1e-12
    # The p-value of the exact D (SciPy's asymptotic one) lies in the reported range.
    low, high = sample.details("ks", ref)["p_value_range"]
    exact_p = stats.ks_2samp(ref_values, cur_values, method="asymp").pvalue
    assert low - 1e-12 <= exact_p <= high + 1e-12


def test_bounds_are_tight_enough_to_use() -> None:
    """On a normal column both bounds are a small part of what drift looks like (KS D, Wasserstein's 0.1)."""
    ref_values, cur_values = rng.normal(size=50_000), rng.normal(size=50_000)
    ref = profile_column("x", ref_values, "numeric")
    sample = BinnedSample.from_values(bin_width(ref), cur_values)
    assert sample.ks_bound() < 0.005
    assert sample.wasserstein_bound(ref) < 0.01
    assert sample.statistic("wasserstein", ref) < 0.02


def test_binned_window_keeps_no_values_and_counts_missing() -> None:
    sample = BinnedSample.from_values(0.5, np.array([1.0, np.nan, 150.0, -3.0, 1.25, np.inf]))
    assert sample.values is None
    assert (sample.n, sample.n_missing) == (4, 2)
    assert dict(zip(sample.keys.tolist(), sample.bin_counts.tolist(), strict=True)) == {-6: 1, 2: 2, 300: 1}


def test_bin_width_is_a_power_of_two_cutting_the_range_into_enough_bins() -> None:
    for span in (1e-3, 1.0, 37.0, 1e9):
        ref = profile_column("x", np.array([5.0, 5.0 + span]), "numeric")
        width = bin_width(ref, bins=1000)
        assert np.log2(width).is_integer()
        assert 1000 <= span / width <= 2000
    assert bin_width(profile_column("x", np.array([3.0, 3.0]), "numeric")) > 0  # constant reference


def test_bad_counts_name_the_column() -> None:
    with pytest.raises(BinnedError, match=r"'age'.*3 counts for 2 bins"):
        BinnedSample(0.5, np.array([0, 1]), np.array([1, 2, 3]), 0, column="age")
    with pytest.raises(BinnedError, match="'age': negative"):
        BinnedSample(0.5, np.array([0, 1]), np.array([1, -2]), 0, column="age")
    with pytest.raises(BinnedError, match="'age': bins must be distinct"):
        BinnedSample(0.5, np.array([1, 0]), np.array([1, 2]), 0, column="age")


@pytest.mark.parametrize("method", ["ks", "wasserstein", "auto"])
def test_column_drift_scores_a_binned_window_with_its_bound(method: str) -> None:
    ref_values = rng.normal(size=5000)
    cur_values = rng.normal(0.5, size=3000)
    ref = profile_column("x", ref_values, "numeric")
    policy = ColumnPolicy("x", "numeric", method)
    exact = column_drift(ref, cur_values, policy)
    binned = column_drift(ref, BinnedSample.from_values(bin_width(ref), cur_values), policy)
    assert binned.status == "ok" and binned.method == exact.method
    assert binned.breached == exact.breached
    assert binned.details["binned"]["exact"] is False
    if exact.method == "wasserstein":
        assert abs(binned.value - exact.value) <= binned.details["binned"]["bound"]
    assert len(binned.details["histogram"]["current"]) == len(binned.details["histogram"]["edges"]) - 1


@pytest.mark.parametrize("method", ["anderson", "cramer_von_mises", "psi", "jensenshannon"])
def test_tests_that_need_the_values_say_so(method: str) -> None:
    ref = profile_column("x", rng.normal(size=500), "numeric")
    sample = BinnedSample.from_values(bin_width(ref), rng.normal(size=500))
    score = column_drift(ref, sample, ColumnPolicy("x", "numeric", method))
    assert score.status == "insufficient_data"
    assert "copy mode" in (score.reason or "")


def test_few_distinct_numeric_values_under_auto_need_copy_mode() -> None:
    ref = profile_column("x", rng.integers(0, 3, 2000).astype(float), "numeric")
    sample = BinnedSample.from_values(bin_width(ref), rng.integers(0, 3, 2000).astype(float))
    score = column_drift(ref, sample, ColumnPolicy("x", "numeric"))
    assert score.status == "insufficient_data"
    assert "declare the column categorical" in (score.reason or "")


CATEGORICAL_METHODS = ["auto", "psi", "jensenshannon", "chisquare", "z", "hellinger", "unseen_share"]


@pytest.mark.parametrize("method", CATEGORICAL_METHODS)
def test_categorical_counts_give_exactly_the_copy_mode_score(method: str) -> None:
    ref_values = rng.choice(["a", "b", "c", "d"], size=3000, p=[0.4, 0.3, 0.2, 0.1])
    cur_values = rng.choice(["a", "b", "c", "e", None], size=2000, p=[0.3, 0.3, 0.2, 0.1, 0.1])
    ref = profile_column("plan", ref_values, "categorical")
    copy = make_sample("categorical", cur_values, "plan")
    keys, counts = copy.counts()
    pushed = categorical_sample(dict(zip(keys.tolist(), counts.tolist(), strict=True)), copy.n_missing)
    policy = ColumnPolicy("plan", "categorical", method)
    assert column_drift(ref, pushed, policy) == column_drift(ref, cur_values, policy)


@pytest.mark.parametrize("method", ["jensenshannon", "hellinger", "chisquare", "unseen_share"])
def test_new_categories_folded_into_other_leave_these_unchanged(method: str) -> None:
    ref = profile_column("plan", rng.choice(["a", "b", "c"], size=3000), "categorical")
    cur_values = np.concatenate([rng.choice(["a", "b", "c"], size=1000), [f"new{i}" for i in range(50)] * 3])
    copy = make_sample("categorical", cur_values, "plan")
    keys, counts = copy.counts()
    known = {k: c for k, c in zip(keys.tolist(), counts.tolist(), strict=True) if not k.startswith("new")}
    pushed = categorical_sample(known, 0, other=150)
    assert OTHER_CATEGORY in pushed.counts()[0].tolist()
    policy = ColumnPolicy("plan", "categorical", method)
    assert column_drift(ref, pushed, policy).value == pytest.approx(column_drift(ref, cur_values, policy).value)
