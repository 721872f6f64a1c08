"""When an estimated performance metric cannot be trusted: judged at read time from the stored series.

Confidence-based estimation (CBPE) and direct loss estimation (DLE) assume that what the model learnt
about its own errors on the reference still holds. Under concept drift it does not, and the estimate
can rise while the realized value falls. Labels say so, late: a window whose realized value lies
outside the estimate's interval (``details.ci_lower``/``ci_upper``, the estimate ± 3 sampling errors)
shows the estimate is off.

:func:`unreliable_marks` turns one metric's ordered per-window values into a mark per window: an
estimate is unreliable when the newest window at or before it that has both a realized value and an
estimate with an interval disagreed, and reliable again once a later labelled window agrees. Nothing
of it is stored: labels that arrive late recompute a window's realized score, and the next read sees
the new marks.

The estimate's interval is the band the realized value of a fully labelled window falls in: its
sampling error is the metric's at the window's row count (``details.n`` of the estimate). A realized
value computed on fewer labelled rows (``details.n`` of the realized score) varies more, by
``sqrt(rows / labelled rows)``; so that this noise alone does not refute the estimate, each side of the
interval is widened by that factor before the comparison. The interval shown to people is the
estimate's own, which a refuting realized value lies outside all the more. (The realized score's
bootstrap standard error is not used instead: under concept drift it grows with the drift itself, and
widening by it hid most of the refutations the labels showed — see docs/detectors.md.)

Pure: no SQL here; :mod:`monitor.store.reads` feeds it from the store, and the dashboard and the
alerts import it from the core.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class EstimatePoint:
    """One window of one metric: the estimate with its interval, and the realized value when labelled."""

    window_start: datetime
    estimate: float | None
    ci_lower: float | None
    ci_upper: float | None
    realized: float | None = None
    n: float | None = None  # rows the estimate is computed on
    n_realized: float | None = None  # labelled rows the realized value is computed on

    @property
    def comparable(self) -> bool:
        """Both an estimate with its interval and a realized value: the window can confirm or refute it."""
        return all(_finite(v) for v in (self.estimate, self.ci_lower, self.ci_upper, self.realized))

    def disagrees(self) -> bool:
        """The realized value lies outside the estimate's interval, each side widened by
        ``sqrt(n / n_realized)`` when fewer rows are labelled. Only meaningful when :attr:`comparable`."""
        assert self.estimate is not None and self.realized is not None
        assert self.ci_lower is not None and self.ci_upper is not None
        n, labelled = self.n, self.n_realized
        widen = 1.0
        if n is not None and labelled is not None and math.isfinite(n) and 0 < labelled < n:
            widen = math.sqrt(n / labelled)
        lower = self.estimate - (self.estimate - self.ci_lower) * widen
        upper = self.estimate + (self.ci_upper - self.estimate) * widen
        return not (lower <= self.realized <= upper)


@dataclass(frozen=True, slots=True)
class Unreliable:
    """Why an estimate is not to be trusted: the newest labelled window that disagreed, and since when."""

    since: datetime  # the first disagreeing window of the current stretch
    window_start: datetime  # the newest labelled window that disagreed (at or before the estimate)
    realized: float
    ci_lower: float
    ci_upper: float

    def text(self) -> str:
        """``realized 0.77 outside 0.90–0.97``."""
        return f"realized {_number(self.realized)} outside {_number(self.ci_lower)}–{_number(self.ci_upper)}"


def unreliable_marks(points: Sequence[EstimatePoint], carried: Unreliable | None = None) -> list[Unreliable | None]:
    """One mark per point of one metric's series (oldest first): why its estimate is unreliable, or None.

    The verdict of each labelled, comparable window holds for it and every later window up to the next
    labelled one. ``carried`` is the mark the windows before ``points`` left (None: nothing refuted the
    estimate yet); it holds until the first labelled point.
    """
    marks: list[Unreliable | None] = []
    current = carried
    for point in points:
        if point.comparable:
            if not point.disagrees():
                current = None
            else:
                assert point.realized is not None and point.ci_lower is not None and point.ci_upper is not None
                since = current.since if current is not None else point.window_start
                current = Unreliable(since, point.window_start, point.realized, point.ci_lower, point.ci_upper)
        marks.append(current)
    return marks


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _number(value: float) -> str:
    """Two decimals at the usual scale of a metric (0.77, 3.14); errors in large units whole (1250), tiny
    ones to three significant digits (0.0012)."""
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) >= 0.01 else f"{value:.3g}"
