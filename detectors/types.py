"""Typed values shared by every detector.

Detectors are pure: arrays in, :class:`Score` values out. The scheduler persists scores, the
alert rules read them, the dashboard renders them; none of those ever reach back into a detector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ColumnKind = Literal["numeric", "categorical"]
ScoreKind = Literal["drift", "quality", "performance", "estimated_performance", "labels"]
ScoreStatus = Literal["ok", "insufficient_data", "error"]


class ProfileError(ValueError):
    """A reference profile could not be built or loaded; the message names the column or what was loaded."""


@dataclass(frozen=True, slots=True)
class Score:
    """One number computed for one window (or one reference/current pair).

    ``feature`` is ``None`` for dataset-level scores (share of drifted columns, volume, ...).
    ``value`` is ``None`` exactly when ``status`` is not ``"ok"``; ``reason`` then says why,
    so a window with too little data is explicit instead of a NaN.
    ``breached`` tells whether ``value`` crossed ``threshold`` in the direction the method
    treats as bad (a p-value below it, a distance above it).
    """

    kind: ScoreKind
    method: str
    value: float | None
    feature: str | None = None
    threshold: float | None = None
    breached: bool | None = None
    status: ScoreStatus = "ok"
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def insufficient(cls, kind: ScoreKind, method: str, reason: str, feature: str | None = None) -> Score:
        return cls(kind=kind, method=method, value=None, feature=feature, status="insufficient_data", reason=reason)
