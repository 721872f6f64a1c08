"""Data quality on hand-built frames with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.quality import QualityReference, QualityThresholds, quality_scores

KINDS = {"age": "numeric", "plan": "categorical"}


def _ref(**kw):
    reference = {
        "age": np.array([20.0, 30.0, 40.0, np.nan, 50.0, 60.0, 25.0, 35.0, 45.0, 55.0]),
        "plan": np.array(["basic", "pro", "basic", "pro", "team", None, "basic", "pro", "basic", "pro"], dtype=object),
    }
    return QualityReference.fit(reference, KINDS, **kw)


def _get(scores, method, feature=None):
    (hit,) = [s for s in scores if s.method == method and s.feature == feature]
    return hit


def test_reference_profile_and_round_trip():
    ref = _ref(reference_seconds=100.0)
    assert ref.columns["age"].minimum == 20.0 and ref.columns["age"].maximum == 60.0
    assert ref.columns["age"].missing_share == pytest.approx(0.1)
    assert ref.columns["plan"].categories == frozenset({"basic", "pro", "team"})
    assert ref.rate_per_second == pytest.approx(0.1)
    assert QualityReference.from_dict(ref.to_dict()) == ref


def test_known_answers_on_a_hand_built_window():
    current = {
        # 8 rows: 2 missing (None, ""), 1 type error ("abc"), 1 inf (type error); 4 valid: 10 out, 70 out
        "age": np.array([25.0, None, "", "abc", np.inf, 10, 70, "33.5"], dtype=object),
        # 8 rows: 1 missing, 1 type error (a dict), 6 valid of which "enterprise" x2 unseen
        "plan": np.array(["basic", "enterprise", "pro", None, {"x": 1}, "enterprise", "team", "basic"], dtype=object),
    }
    scores = quality_scores(_ref(), current, ids=[1, 2, 3, 3, 4, 5, 5, 5])
    assert all(s.kind == "quality" and s.status == "ok" for s in scores if s.method != "volume")

    missing = _get(scores, "missing_share", "age")
    assert missing.value == pytest.approx(2 / 8)
    assert missing.threshold == pytest.approx(0.1 + 0.05) and missing.breached
    assert _get(scores, "type_error_share", "age").value == pytest.approx(2 / 6)
    out = _get(scores, "out_of_range_share", "age")
    assert out.value == pytest.approx(2 / 4) and out.breached and out.details["count"] == 2

    assert _get(scores, "missing_share", "plan").value == pytest.approx(1 / 8)
    assert _get(scores, "type_error_share", "plan").value == pytest.approx(1 / 7)
    unseen = _get(scores, "unseen_category_share", "plan")
    assert unseen.value == pytest.approx(2 / 6) and unseen.details["unseen_examples"] == ["enterprise"]

    dup = _get(scores, "duplicate_ids")
    assert dup.value == 3 and dup.breached and dup.details["examples"] == ["3", "5"]


def test_clean_window_breaches_nothing():
    current = {"age": np.array([21.0, 59.0, 30.0, 44.0]), "plan": np.array(["pro", "basic", "team", "pro"])}
    scores = quality_scores(_ref(reference_seconds=100.0), current, ids=["a", "b", "c", "d"], window_seconds=40.0)
    assert [s for s in scores if s.breached] == []
    assert all(s.value == 0 for s in scores if s.method.endswith("share"))


def test_categorical_canonical_forms():
    ref = QualityReference.fit({"c": np.array([1, 2, True], dtype=object)}, {"c": "categorical"})
    scores = quality_scores(ref, {"c": np.array([1.0, "2", True, 2.5, 3], dtype=object)})
    # 1.0 == 1, "2" == 2, True == True; 2.5 is a type error; 3 unseen
    assert _get(scores, "type_error_share", "c").value == pytest.approx(1 / 5)
    assert _get(scores, "unseen_category_share", "c").value == pytest.approx(1 / 4)


def test_numeric_booleans_are_type_errors_and_numeric_strings_parse():
    ref = QualityReference.fit({"x": np.array([0.0, 10.0])}, {"x": "numeric"})
    scores = quality_scores(ref, {"x": np.array([True, "5", 5, "-inf"], dtype=object)})
    assert _get(scores, "type_error_share", "x").value == pytest.approx(2 / 4)
    assert _get(scores, "out_of_range_share", "x").value == 0.0


def test_volume_expected_count_and_ratio():
    ref = _ref(reference_seconds=100.0)  # 10 rows in 100 s -> 0.1 rows/s
    low = _get(quality_scores(ref, {"age": np.ones(2), "plan": np.array(["pro"] * 2)}, window_seconds=100.0), "volume")
    assert low.value == 2 and low.details["expected"] == pytest.approx(10.0)
    assert low.details["ratio"] == pytest.approx(0.2) and low.breached and low.threshold == 0.5
    high = _get(
        quality_scores(ref, {"age": np.ones(30), "plan": np.array(["pro"] * 30)}, window_seconds=100.0), "volume"
    )
    assert high.details["ratio"] == pytest.approx(3.0) and high.breached and high.threshold == 2.0
    ok = _get(quality_scores(ref, {"age": np.ones(12), "plan": np.array(["pro"] * 12)}, window_seconds=100.0), "volume")
    assert not ok.breached
    assert _get(quality_scores(_ref(), {"age": np.ones(2)}), "volume").status == "insufficient_data"


def test_empty_window_is_insufficient_per_column_but_volume_is_zero():
    ref = _ref(reference_seconds=100.0)
    scores = quality_scores(ref, {"age": np.array([]), "plan": np.array([])}, ids=[], window_seconds=60.0)
    for s in scores:
        if s.method == "volume":
            assert s.value == 0 and s.breached  # no rows at all is itself the alert
        else:
            assert s.status == "insufficient_data" and s.value is None and s.reason


def test_all_missing_column_is_fully_missing_and_the_rest_insufficient():
    scores = quality_scores(_ref(), {"age": np.full(5, np.nan), "plan": np.array(["pro"] * 5)})
    assert _get(scores, "missing_share", "age").value == 1.0 and _get(scores, "missing_share", "age").breached
    assert _get(scores, "type_error_share", "age").status == "insufficient_data"
    assert _get(scores, "out_of_range_share", "age").status == "insufficient_data"
    # a column the window lacks entirely counts as all missing
    absent = quality_scores(_ref(), {"plan": np.array(["pro"] * 3)})
    assert _get(absent, "missing_share", "age").value == 1.0


def test_all_missing_reference_and_constant_column():
    ref = QualityReference.fit({"x": np.full(4, np.nan), "k": np.full(4, 7.0)}, {"x": "numeric", "k": "numeric"})
    scores = quality_scores(ref, {"x": np.array([1.0, 2.0]), "k": np.array([7.0, 8.0])})
    assert _get(scores, "out_of_range_share", "x").status == "insufficient_data"
    # a constant reference still defines a (degenerate) range: 8 is outside it
    assert _get(scores, "out_of_range_share", "k").value == 0.5


def test_one_row_window():
    scores = quality_scores(_ref(), {"age": np.array([99.0]), "plan": np.array(["pro"])}, ids=[1])
    assert _get(scores, "out_of_range_share", "age").value == 1.0
    assert _get(scores, "duplicate_ids").value == 0 and not _get(scores, "duplicate_ids").breached


def test_custom_thresholds():
    th = QualityThresholds(out_of_range_share=0.6, duplicate_ids=5)
    scores = quality_scores(
        _ref(), {"age": np.array([10.0, 30.0]), "plan": np.array(["pro", "pro"])}, ids=[1, 1], thresholds=th
    )
    assert not _get(scores, "out_of_range_share", "age").breached
    assert not _get(scores, "duplicate_ids").breached


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="reference has no column 'plan'"):
        QualityReference.fit({"age": np.ones(3)}, KINDS)
    with pytest.raises(ValueError, match="kind must be 'numeric' or 'categorical'"):
        QualityReference.fit({"age": np.ones(3)}, {"age": "text"})
    with pytest.raises(ValueError, match="differ in length"):
        quality_scores(_ref(), {"age": np.ones(3), "plan": np.array(["pro"])})


def test_large_window_is_vectorized_enough():
    rng = np.random.default_rng(0)
    ref = QualityReference.fit(
        {"x": rng.normal(size=1000), "c": rng.choice(["a", "b"], 1000)}, {"x": "numeric", "c": "categorical"}
    )
    cur = {"x": rng.normal(size=50_000) * 2, "c": rng.choice(["a", "b", "z"], 50_000)}
    scores = quality_scores(ref, cur)
    assert 0.0 < _get(scores, "out_of_range_share", "x").value < 0.5
    assert _get(scores, "unseen_category_share", "c").value == pytest.approx(1 / 3, abs=0.02)
