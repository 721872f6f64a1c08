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

A realized value computed on few labels is noisy in its own right. So that such noise alone does not
mark an estimate unreliable, the interval is widened by 3 of the realized value's own standard errors
(``details.std_error`` of the realized score, from its bootstrap) before the comparison; the interval
shown to people is the estimate's, which the realized value then lies outside all the more.

Pure: no SQL here; :mod:`monitor.store.reads` feeds it from the store, and the dashboard and the
alerts import it from the core.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Width of the realized value's own uncertainty, in its standard errors (as the estimate's ± 3).
REALIZED_ERROR_RANGE = 3.0


@dataclass(frozen=True, slots=True)
class EstimatePoint:
    """One window of one metric: the estimate with its interval, and the realized value when labelled."""

    window_start: datetime
    estimate: float | None
    ci_lower: float | None
    ci_upper: float | None
    realized: float | None = None
    realized_std_error: float | None = None

    @property
    def comparable(self) -> bool:
        """Both an estimate with its interval and a realized value: the window can confirm or refute it."""
        return all(_finite(v) for v in (self.estimate, self.ci_lower, self.ci_upper, self.realized))

    def disagrees(self) -> bool:
        """The realized value lies outside the estimate's interval, beyond its own sampling error.

        Only meaningful when :attr:`comparable`.
        """
        assert self.realized is not None and self.ci_lower is not None and self.ci_upper is not None
        se = self.realized_std_error
        slack = REALIZED_ERROR_RANGE * se if se is not None and math.isfinite(se) else 0.0
        return not (self.ci_lower - slack <= self.realized <= self.ci_upper + slack)


@dataclass(frozen=True, slots=True)
class Unreliable:
    """Why an estimate is not to be trusted: the newest labelled window that disagreed, and since when."""

    since: datetime  # the first disagreeing window of the current stretch
    window_start: datetime  # the newest labelled window that disagreed (at or before the estimate)
    realized: float
    ci_lower: float
    ci_upper: float

    def text(self, fmt: str = ".2f") -> str:
        """``realized 0.77 outside 0.90–0.97``."""
        return f"realized {self.realized:{fmt}} outside {self.ci_lower:{fmt}}–{self.ci_upper:{fmt}}"

    def document(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "window_start": self.window_start,
            "realized": self.realized,
            "ci_lower": self.ci_lower,
            "ci_upper": self.ci_upper,
        }


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
