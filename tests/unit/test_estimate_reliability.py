"""The unreliable-estimate marker (monitor.store.reliability): a pure function over one metric's windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.store.reliability import EstimatePoint, Unreliable, unreliable_marks

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def w(i: int) -> datetime:
    return T0 + timedelta(minutes=i)


def est(
    i: int, value: float, lo: float, hi: float, realized: float | None = None, n: float = 1000, labelled: float = 1000
) -> EstimatePoint:
    return EstimatePoint(w(i), value, lo, hi, realized, n, labelled)


def flags(points: list[EstimatePoint]) -> list[bool]:
    return [m is not None for m in unreliable_marks(points)]


def test_agree_disagree_agree_with_unlabelled_windows_between() -> None:
    points = [
        est(0, 0.90, 0.87, 0.93),  # no labels yet: nothing refutes it
        est(1, 0.90, 0.87, 0.93, realized=0.91),  # agrees
        est(2, 0.92, 0.89, 0.95),
        est(3, 0.95, 0.90, 0.97, realized=0.77),  # disagrees: unreliable from here
        est(4, 0.95, 0.91, 0.98),  # unlabelled: still unreliable
        est(5, 0.96, 0.92, 0.98, realized=0.80),  # disagrees again: same stretch
        est(6, 0.95, 0.92, 0.98),
        est(7, 0.90, 0.87, 0.93, realized=0.89),  # agrees: trusted again
        est(8, 0.90, 0.87, 0.93),
    ]
    marks = unreliable_marks(points)
    assert [m is not None for m in marks] == [False, False, False, True, True, True, True, False, False]
    assert marks[3] == Unreliable(since=w(3), window_start=w(3), realized=0.77, ci_lower=0.90, ci_upper=0.97)
    assert marks[4] == marks[3]
    # The stretch keeps its start; the evidence is the newest labelled window that disagreed.
    assert marks[6] == Unreliable(since=w(3), window_start=w(5), realized=0.80, ci_lower=0.92, ci_upper=0.98)
    assert marks[3].text() == "realized 0.77 outside 0.90–0.97"


def test_a_new_stretch_after_agreement_starts_anew() -> None:
    points = [est(0, 0.9, 0.85, 0.95, 0.5), est(1, 0.9, 0.85, 0.95, 0.9), est(2, 0.9, 0.85, 0.95, 0.99)]
    marks = unreliable_marks(points)
    assert marks[1] is None
    assert marks[2] is not None and marks[2].since == w(2)  # above the interval counts as well as below


def test_windows_that_cannot_judge_leave_the_verdict_as_it_is() -> None:
    points = [
        est(0, 0.95, 0.90, 0.97, realized=0.77),
        EstimatePoint(w(1), 0.95, None, None, 0.99),  # no interval (no sampling error for this metric)
        EstimatePoint(w(2), None, None, None, 0.99),  # no estimate in this window
        EstimatePoint(w(3), 0.95, 0.90, 0.97, float("nan")),  # realized undefined
    ]
    assert flags(points) == [True, True, True, True]
    assert flags([EstimatePoint(w(0), 0.95, None, None, 0.2)]) == [False]


def test_interval_ends_are_inside() -> None:
    assert flags([est(0, 0.93, 0.90, 0.97, 0.90), est(1, 0.93, 0.90, 0.97, 0.97)]) == [False, False]
    assert flags([est(0, 0.93, 0.90, 0.97, 0.8999)]) == [True]


def test_fewer_labelled_rows_widen_the_interval_by_the_square_root_of_the_share() -> None:
    # 0.86 is 0.04 below the interval 0.90–0.97 around 0.93 (0.03 below it). With a quarter of the rows
    # labelled the realized value's sampling error doubles, so the lower side reaches 0.93 - 2 × 0.03 = 0.87.
    assert flags([est(0, 0.93, 0.90, 0.97, 0.86, n=1000, labelled=250)]) == [True]
    assert flags([est(0, 0.93, 0.90, 0.97, 0.875, n=1000, labelled=250)]) == [False]
    assert flags([est(0, 0.93, 0.90, 0.97, 0.875, n=1000, labelled=1000)]) == [True]
    # Each side scales by itself: an interval clipped at 1 above stays tighter above than below.
    assert flags([est(0, 0.98, 0.95, 1.0, 0.935, n=400, labelled=100)]) == [False]
    # No row counts (or more labelled rows than estimated ones): the estimate's own interval.
    assert flags([EstimatePoint(w(0), 0.93, 0.90, 0.97, 0.875)]) == [True]
    assert flags([est(0, 0.93, 0.90, 0.97, 0.875, n=1000, labelled=2000)]) == [True]


@pytest.mark.parametrize(
    ("metric", "points", "expected"),
    [
        # multiclass accuracy (CBPE per class, averaged): bounded by 0 and 1 like binary metrics
        ("accuracy", [est(0, 0.71, 0.68, 0.74, 0.70), est(1, 0.72, 0.69, 0.75, 0.55), est(2, 0.7, 0.67, 0.73)],
         [False, True, True]),
        # regression MAE (DLE): lower is better, unbounded above; a realized error above the band refutes it
        ("mae", [est(0, 3.1, 2.8, 3.4, 3.0), est(1, 3.0, 2.7, 3.3, 5.2), est(2, 3.0, 2.7, 3.3, 2.9)],
         [False, True, False]),
        # regression RMSE with an interval clipped at 0 below (DLE clips ci_lower to 0)
        ("rmse", [est(0, 0.1, 0.0, 0.4, 0.0), est(1, 0.1, 0.0, 0.4, 0.41)], [False, True]),
    ],
)  # fmt: skip
def test_other_tasks_metrics(metric: str, points: list[EstimatePoint], expected: list[bool]) -> None:
    assert flags(points) == expected, metric


def test_text_keeps_small_and_large_values_readable() -> None:
    mark = Unreliable(since=w(0), window_start=w(0), realized=0.0012, ci_lower=0.0, ci_upper=0.0009)
    assert mark.text() == "realized 0.0012 outside 0–0.0009"
    assert Unreliable(w(0), w(0), 3.1, 1250.0, 1301.4).text() == "realized 3.10 outside 1250–1301"


def test_empty_series() -> None:
    assert unreliable_marks([]) == []


def test_a_carried_mark_holds_until_the_first_labelled_window() -> None:
    carried = Unreliable(since=w(-5), window_start=w(-2), realized=0.77, ci_lower=0.90, ci_upper=0.97)
    marks = unreliable_marks(
        [est(0, 0.95, 0.9, 0.97), est(1, 0.95, 0.9, 0.97, 0.6), est(2, 0.95, 0.9, 0.97, 0.94)], carried
    )
    assert marks[0] == carried
    assert marks[1] is not None and marks[1].since == w(-5) and marks[1].window_start == w(1)
    assert marks[2] is None
