"""Dataset-level drift: ``auto`` equals Evidently's DataDriftPreset; edge cases never raise or NaN."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detectors.drift import ColumnPolicy, drift_scores, infer_kind
from detectors.profile import ProfileError, ReferenceProfile, profile_reference
from detectors.stattests import UnknownStatTestError
from detectors.types import Score
from tests.unit.evidently_reference import evidently_drift

TOL = 1e-9
DATA = Path(__file__).resolve().parents[1] / "data" / "nannyml"  # NannyML sample, see its README


def _frames(n: int, m: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Columns that make auto choose every test: continuous, few-valued numeric, 3+ and 2 categories."""
    rng = np.random.default_rng(seed)

    def frame(size: int, shift: float, cats: list[str]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "cont": rng.normal(shift, 1.0, size),
                "cont_same": rng.exponential(2.0, size),
                "few3": rng.integers(0, 3, size).astype(float),
                "few2": rng.integers(0, 2, size).astype(float),
                "cat3": rng.choice(cats, size),
                "bin": rng.choice(["yes", "no"], size, p=[0.3 + shift / 4, 0.7 - shift / 4]),
            }
        )

    return frame(n, 0.0, ["x", "y", "z"]), frame(m, 0.4, ["x", "y", "w"])


NUMERIC = ["cont", "cont_same", "few3", "few2"]
CATEGORICAL = ["cat3", "bin"]
POLICIES = [ColumnPolicy(c, "numeric") for c in NUMERIC] + [ColumnPolicy(c, "categorical") for c in CATEGORICAL]


def _arrays(df: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: df[c].to_numpy() for c in df.columns}


def _by_feature(scores: list[Score]) -> dict[str | None, Score]:
    return {s.feature if s.feature is not None else s.method: s for s in scores}


@pytest.mark.parametrize(
    ("n", "m", "expected_methods"),
    [
        (
            600,
            250,
            {"cont": "ks", "cont_same": "ks", "few3": "chisquare", "few2": "z", "cat3": "chisquare", "bin": "z"},
        ),
        (
            1000,
            400,
            {"cont": "ks", "cont_same": "ks", "few3": "chisquare", "few2": "z", "cat3": "chisquare", "bin": "z"},
        ),
        (
            1001,
            400,
            {
                "cont": "wasserstein",
                "cont_same": "wasserstein",
                "few3": "jensenshannon",
                "few2": "jensenshannon",
                "cat3": "jensenshannon",
                "bin": "jensenshannon",
            },
        ),
        (
            3000,
            2000,
            {
                "cont": "wasserstein",
                "cont_same": "wasserstein",
                "few3": "jensenshannon",
                "few2": "jensenshannon",
                "cat3": "jensenshannon",
                "bin": "jensenshannon",
            },
        ),
    ],
)
def test_auto_equals_evidently_data_drift_preset(n: int, m: int, expected_methods: dict[str, str]) -> None:
    ref, cur = _frames(n, m, seed=n)
    expected = evidently_drift(ref, cur, NUMERIC, CATEGORICAL)
    scores = _by_feature(drift_scores(_arrays(ref), _arrays(cur), POLICIES))
    for column, method in expected_methods.items():
        ev_method, ev_value, ev_threshold = expected.columns[column]
        score = scores[column]
        assert (score.method, ev_method) == (method, method)
        assert score.value == pytest.approx(ev_value, abs=TOL), column
        assert score.threshold == ev_threshold
    assert scores["count_drifted"].value == expected.count
    assert scores["share_drifted"].value == pytest.approx(expected.share, abs=TOL)
    assert 0 < expected.count < len(POLICIES)  # the data must exercise both verdicts


def test_numeric_with_few_values_uses_the_union_of_both_sides() -> None:
    """Reference with 3 values, window adding 3 more: 6 distinct → KS, as Evidently decides."""
    ref = pd.DataFrame({"v": np.tile([1.0, 2.0, 3.0], 100)})
    cur = pd.DataFrame({"v": np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 20)})
    expected = evidently_drift(ref, cur, ["v"], [])
    score = drift_scores(_arrays(ref), _arrays(cur), [ColumnPolicy("v", "numeric")])[0]
    assert (score.method, expected.columns["v"][0]) == ("ks", "ks")
    assert score.value == pytest.approx(expected.columns["v"][1], abs=TOL)


@pytest.mark.parametrize("method", ["psi", "jensenshannon", "anderson", "cramer_von_mises", "hellinger"])
def test_explicit_method_equals_evidently_preset(method: str) -> None:
    ref, cur = _frames(1500, 500, seed=3)
    numeric = [] if method == "hellinger" else ["cont", "cont_same", "few3"]
    categorical = ["cat3", "bin"] if method in ("psi", "jensenshannon", "hellinger") else []
    expected = evidently_drift(
        ref[numeric + categorical], cur[numeric + categorical], numeric, categorical, method=method
    )
    policies = [ColumnPolicy(c, "numeric", method) for c in numeric] + [
        ColumnPolicy(c, "categorical", method) for c in categorical
    ]
    scores = _by_feature(drift_scores(_arrays(ref), _arrays(cur), policies))
    for column in numeric + categorical:
        assert scores[column].value == pytest.approx(expected.columns[column][1], abs=TOL), column
        assert scores[column].threshold == expected.columns[column][2]
    assert scores["count_drifted"].value == expected.count


def test_missing_and_infinite_values_are_dropped_as_evidently_does() -> None:
    ref, cur = _frames(800, 300, seed=9)
    ref.loc[::7, "cont"] = np.nan
    cur.loc[::5, "cont"] = np.inf
    cur.loc[1::5, "cont"] = -np.inf
    cur.loc[::3, "cat3"] = None
    expected = evidently_drift(ref, cur, NUMERIC, CATEGORICAL)
    scores = _by_feature(drift_scores(_arrays(ref), _arrays(cur), POLICIES))
    for column in ("cont", "cat3"):
        assert scores[column].value == pytest.approx(expected.columns[column][1], abs=TOL)
    assert scores["cont"].details["reference_missing"] == int(ref["cont"].isna().sum())
    assert scores["cont"].details["current_missing"] == 120
    assert scores["cat3"].details["current_missing"] == 100
    assert "dropped" in scores["cont"].details["missing_values"]


@pytest.fixture(scope="module")
def nannyml() -> tuple[ReferenceProfile, pd.DataFrame, pd.DataFrame, list[ColumnPolicy]]:
    ref = pd.read_csv(DATA / "synthetic_sample_reference.csv.gz")
    analysis = pd.read_csv(DATA / "synthetic_sample_analysis.csv.gz")
    features = [
        "distance_from_office",
        "salary_range",
        "gas_price_per_litre",
        "public_transportation_cost",
        "wfh_prev_workday",
        "workday",
        "tenure",
    ]
    policies = [ColumnPolicy(c, infer_kind(ref[c].to_numpy())) for c in features]
    profile = profile_reference(_arrays(ref[features]), {p.name: p.kind for p in policies})
    return profile, ref, analysis, policies


def test_nannyml_drift_flagged_in_drifted_chunks_only(nannyml) -> None:
    profile, ref, analysis, policies = nannyml
    chunk = 5000
    for frame, drifted_chunks in ((ref, set()), (analysis, {5, 6, 7, 8, 9})):
        for i in range(len(frame) // chunk):
            window = frame.iloc[i * chunk : (i + 1) * chunk]
            scores = _by_feature(drift_scores(profile, _arrays(window), policies))
            drifted = {c for c, s in scores.items() if s.feature is not None and s.breached}
            if i in drifted_chunks:
                assert {
                    "distance_from_office",
                    "salary_range",
                    "public_transportation_cost",
                    "wfh_prev_workday",
                } <= drifted, i
                assert scores["share_drifted"].breached
            else:
                assert drifted == set(), i
                assert not scores["share_drifted"].breached


def test_nannyml_chunk_equals_evidently(nannyml) -> None:
    _, ref, analysis, policies = nannyml
    # Evidently on 50,000 × 7 rows takes seconds; a 1,500-row reference keeps auto's large-sample choice.
    small_ref = ref.iloc[:1500]
    window = analysis.iloc[30_000:31_000]
    names = [p.name for p in policies]
    expected = evidently_drift(
        small_ref[names],
        window[names],
        [p.name for p in policies if p.kind == "numeric"],
        [p.name for p in policies if p.kind == "categorical"],
    )
    scores = _by_feature(drift_scores(_arrays(small_ref[names]), _arrays(window), policies))
    for name in names:
        assert scores[name].method == expected.columns[name][0]
        assert scores[name].value == pytest.approx(expected.columns[name][1], abs=TOL), name
    assert scores["share_drifted"].value == pytest.approx(expected.share, abs=TOL)


def test_infer_kind_matches_evidently() -> None:
    from evidently.core.datasets import infer_column_type
    from evidently.legacy.core import ColumnType

    samples = [np.arange(50.0), np.arange(11), np.arange(10), np.array([True, False]), np.array(["a", "b", "a"])]
    for values in samples:
        expected = infer_column_type(pd.Series(values))
        assert infer_kind(values) == ("numeric" if expected == ColumnType.Numerical else "categorical")


# --- edge cases: a Score with a reason, never an exception or a NaN --------------------------------


def _one(reference: np.ndarray, current: np.ndarray, kind: str = "numeric", method: str = "auto") -> Score:
    scores = drift_scores({"x": reference}, {"x": current}, [ColumnPolicy("x", kind, method)])
    for score in scores:
        assert score.value is None or math.isfinite(score.value)
        assert (score.value is None) == (score.status != "ok")
    return scores[0]


REF = np.random.default_rng(0).normal(size=300)


@pytest.mark.parametrize(
    ("current", "reason"),
    [
        (np.array([], dtype=float), "0 non-missing"),
        (np.array([0.3]), "1 non-missing"),
        (np.full(50, np.nan), "0 non-missing"),
        (np.array([np.inf, -np.inf, np.nan]), "0 non-missing"),
    ],
)
def test_too_little_data_in_the_window(current: np.ndarray, reason: str) -> None:
    score = _one(REF, current)
    assert score.status == "insufficient_data" and reason in score.reason and "'x'" in score.reason


def test_all_missing_reference_and_column_absent_from_window() -> None:
    assert _one(np.full(10, np.nan), REF).status == "insufficient_data"
    scores = drift_scores({"x": REF}, {}, [ColumnPolicy("x", "numeric")])
    assert scores[0].status == "insufficient_data" and "not in the window" in scores[0].reason
    assert scores[1].status == "insufficient_data"  # no column tested: no share either


def test_constant_column() -> None:
    assert _one(np.full(100, 3.0), np.full(40, 3.0)).status == "insufficient_data"
    assert _one(np.full(100, "a"), np.full(40, "a"), "categorical").status == "insufficient_data"
    stuck = _one(REF, np.zeros(50))  # a stuck sensor against a varied reference is drift, not missing data
    assert stuck.status == "ok" and stuck.breached
    moved = _one(np.full(100, 3.0), np.full(40, 4.0))
    assert moved.status == "ok" and moved.breached


def test_single_category_with_chisquare_is_insufficient_not_nan() -> None:
    score = _one(np.full(100, "a"), np.array(["a", "a", "a"]), "categorical", "chisquare")
    assert score.status == "insufficient_data"


def test_unseen_categories() -> None:
    ref = np.array(["a", "b", "c"] * 100)
    cur = np.array(["a", "b", "d", "d"] * 20)
    assert _one(ref, cur, "categorical").value == 0.0  # chi-square: unseen category → p = 0, as Evidently
    assert _one(ref, cur, "categorical", "unseen_share").value == pytest.approx(0.5)
    assert math.isfinite(_one(ref, cur, "categorical", "jensenshannon").value)


@pytest.mark.parametrize("method", ["auto", "wasserstein", "psi", "jensenshannon", "ks"])
def test_huge_values(method: str) -> None:
    ref = np.random.default_rng(1).normal(size=2000) * 1e307
    score = _one(ref, ref[:500] * 1.5, method=method)
    assert score.status in ("ok", "insufficient_data")
    if score.status == "insufficient_data":
        assert "too large" in score.reason


def test_histograms_for_the_dashboard() -> None:
    score = _one(REF, REF[:100] + 1)
    hist = score.details["histogram"]
    assert len(hist["edges"]) == 11 and sum(hist["reference"]) == pytest.approx(1)
    assert sum(hist["current"]) == pytest.approx(1)
    cat = _one(np.array([f"c{i % 30}" for i in range(900)]), np.array(["c1", "new"] * 10), "categorical")
    assert cat.details["histogram"]["categories"][-1] == "(other)"
    assert sum(cat.details["histogram"]["current"]) == pytest.approx(1)


# --- profile and policy ----------------------------------------------------------------------------


def test_profile_round_trip_gives_identical_scores() -> None:
    ref, cur = _frames(2000, 500, seed=5)
    kinds = {p.name: p.kind for p in POLICIES}
    profile = profile_reference(_arrays(ref), kinds)
    loaded = ReferenceProfile.from_bytes(profile.to_bytes())
    assert drift_scores(loaded, _arrays(cur), POLICIES) == drift_scores(profile, _arrays(cur), POLICIES)
    with pytest.raises(ProfileError, match="cannot load"):
        ReferenceProfile.from_bytes(b"not a profile")


def test_policy_validation_names_the_column() -> None:
    with pytest.raises(UnknownStatTestError, match="valid"):
        ColumnPolicy("age", "numeric", "kolmogorov")
    with pytest.raises(ValueError, match=r"'age'.*does not apply"):
        ColumnPolicy("age", "numeric", "hellinger")
    with pytest.raises(ValueError, match=r"'age'.*kind"):
        ColumnPolicy("age", "ordinal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'age'.*finite"):
        ColumnPolicy("age", "numeric", threshold=float("nan"))


def test_threshold_override_and_share_threshold() -> None:
    ref, cur = _frames(600, 250, seed=600)
    scores = _by_feature(
        drift_scores(
            _arrays(ref), _arrays(cur), [ColumnPolicy("cont", "numeric", "ks", 1e-300)], drift_share_threshold=0.9
        )
    )
    assert scores["cont"].threshold == 1e-300 and not scores["cont"].breached
    assert scores["share_drifted"].threshold == 0.9
