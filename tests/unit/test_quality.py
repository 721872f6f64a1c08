"""Data quality on hand-built frames with known answers."""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from detectors.quality import QualityReference, QualityThresholds, _parse, quality_scores

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


def test_volume_without_a_reference_rate_is_the_row_count_never_breached():
    uncompared = _get(quality_scores(_ref(), {"age": np.ones(2)}, window_seconds=100.0), "volume")
    assert (uncompared.status, uncompared.value, uncompared.breached) == ("ok", 2.0, False)
    assert uncompared.threshold is None and "reference row rate" in (uncompared.reason or "")


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


# --- the typed fast paths against the per-value parser they replaced --------------------------
# The oracle is the row-by-row parser as it was before the fast paths (issue 16), kept verbatim so
# that every column type must keep giving exactly today's counts, numbers and categories.


def _oracle_is_missing(values):
    missing = np.asarray(pd.isna(values), dtype=bool)
    is_str = np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values))
    if is_str.any():
        blank = np.fromiter((isinstance(v, str) and not v.strip() for v in values), dtype=bool, count=len(values))
        missing |= blank
    return missing


def _oracle_canonical_category(value):
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return None


def _oracle_parse(values, kind):
    """(n, missing, type errors, valid numbers, valid category counts) the way the old parser found them."""
    values = np.asarray(values, dtype=object)
    n = len(values)
    missing = _oracle_is_missing(values) if n else np.zeros(0, dtype=bool)
    if kind == "numeric":
        is_bool = np.fromiter((isinstance(v, bool | np.bool_) for v in values), dtype=bool, count=n)
        numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
        type_error = ~missing & (is_bool | ~np.isfinite(numbers))
        valid = ~missing & ~type_error
        return n, int(missing.sum()), int(type_error.sum()), numbers[valid], {}
    canon = [
        None if m else _oracle_canonical_category(v) for v, m in zip(values.tolist(), missing.tolist(), strict=True)
    ]
    type_error = ~missing & np.fromiter((c is None for c in canon), dtype=bool, count=n)
    valid = ~missing & ~type_error
    categories = np.array([c if c is not None else "" for c in canon], dtype=object)
    return n, int(missing.sum()), int(type_error.sum()), np.empty(0), dict(Counter(categories[valid].tolist()))


_ODD_VALUES = [
    None, np.nan, float("nan"), pd.NA, pd.NaT, "", "   ", "\t", "abc", "3", " 7 ", "2.5", "inf", "-inf", "nan",
    "1e3", np.str_("x"), True, False, np.bool_(True), 0, 1, -3, 2**70, np.int64(5), np.uint8(7), 1.0, 2.5, -0.0,
    np.inf, -np.inf, np.float32(3.0), np.float64(4.5), 1e300, Decimal("1"), Decimal("NaN"), {"x": 1}, [1],
    (2,), b"bytes",
]  # fmt: skip


def _random_columns(rng: np.random.Generator, n: int) -> dict[str, object]:
    """Columns of every type the detector meets: typed arrays, JSON-like objects, lists, Series."""
    floats = rng.normal(0, 100, n)
    floats[rng.random(n) < 0.1] = np.nan
    floats[rng.random(n) < 0.02] = rng.choice([np.inf, -np.inf, -0.0], 1)[0]
    integral = np.round(rng.normal(0, 3, n))
    integral[rng.random(n) < 0.1] = np.nan
    ints = rng.integers(-1000, 1000, n)
    words = rng.choice(np.array(["a", "b", "c", "", " ", "10", "2.0", " 3 ", "inf"], dtype=object), n)
    json_like = np.array(
        [None if r < 0.1 else (int(r * 1000) if r < 0.4 else float(r)) for r in rng.random(n)], dtype=object
    )
    strings_with_nan = words.copy()
    strings_with_nan[rng.random(n) < 0.15] = rng.choice(np.array([None, np.nan, pd.NA], dtype=object), 1)[0]
    string_and_numbers = np.array(
        [w if r < 0.5 else (int(r * 10) if r < 0.75 else r * 10) for w, r in zip(words, rng.random(n), strict=True)],
        dtype=object,
    )
    odd = np.array([_ODD_VALUES[i] for i in rng.integers(0, len(_ODD_VALUES), n)], dtype=object)
    bools_in_numbers = json_like.copy()
    bools_in_numbers[rng.random(n) < 0.1] = True
    return {
        "float64": floats,
        "float32": floats.astype(np.float32),
        "integral floats": integral,
        "int64": ints,
        "uint64": rng.integers(0, 2**64 - 1, n, dtype=np.uint64),
        "int8": ints.astype(np.int8),
        "bool": rng.random(n) < 0.5,
        "json numbers": json_like,
        "json numbers as list": json_like.tolist(),
        "floats as list": floats.tolist(),
        "floats with None": np.where(rng.random(n) < 0.1, None, floats.astype(object)),
        "bools in numbers": bools_in_numbers,
        # equal as Python objects (True == 1 == 1.0) but not as categories ("True" vs "1")
        "bools and 0/1": rng.choice(np.array([True, False, np.bool_(True), 0, 1, 1.0, 0.0, None], dtype=object), n),
        "strings": words,
        "strings as unicode array": words.astype(str),
        "strings with nan/None/NA": strings_with_nan,
        "strings as series": pd.Series(strings_with_nan),
        "strings and numbers": string_and_numbers,
        "mixed": odd,
        "mixed as list": odd.tolist(),
        "float series": pd.Series(floats),
        "empty": np.array([], dtype=np.float64),
    }


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_fast_paths_give_exactly_what_the_per_value_parser_gave(seed: int, kind: str) -> None:
    rng = np.random.default_rng(seed)
    for flavour, column in _random_columns(rng, int(rng.integers(1, 400))).items():
        n, n_missing, n_type_error, numbers, categories = _oracle_parse(column, kind)
        parsed = _parse(column, kind, flavour)
        assert (parsed.n, parsed.n_missing, parsed.n_type_error) == (n, n_missing, n_type_error), flavour
        # bit for bit, signed zeros included
        assert parsed.numbers.dtype == np.float64 and parsed.numbers.tobytes() == numbers.tobytes(), flavour
        assert dict(parsed.categories) == categories, flavour


def test_typed_and_object_columns_score_the_same() -> None:
    rng = np.random.default_rng(7)
    columns = _random_columns(rng, 300)
    kinds = {"float64": "numeric", "int64": "numeric", "bool": "categorical", "strings": "categorical"}
    ref = QualityReference.fit({k: columns[k][:150] for k in kinds}, kinds)
    typed = quality_scores(ref, {k: columns[k][150:] for k in kinds})
    as_objects = quality_scores(ref, {k: np.asarray(columns[k][150:], dtype=object) for k in kinds})
    assert typed == as_objects
    assert QualityReference.fit({k: list(columns[k]) for k in kinds}, kinds) == QualityReference.fit(
        {k: columns[k] for k in kinds}, kinds
    )
