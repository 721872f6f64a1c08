"""Traffic of a churn model served by two versions, for the canary gate's tests (integration and end to end).

Version 2.0 is the model as its reference knows it; 2.1, the candidate, is the same model except in one
region, where its scores are inverted: worse on a known slice, alike everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

REGIONS = ("eu", "us", "apac")
BAD_REGION = "eu"
MODEL = {
    "task": "binary",
    "features": {"tenure": "numeric", "region": "categorical"},
    "canary": {"n_resamples": 500},
}


@dataclass(frozen=True)
class Row:
    id: str
    ts: datetime
    features: dict[str, Any]
    prediction: int
    score: float
    label: int
    version: str | None  # None: the record names no version (the one deployed then served it)

    def record(self) -> dict[str, Any]:
        """As the push API takes it (canonical field names)."""
        out: dict[str, Any] = {
            "id": self.id,
            "timestamp": self.ts.isoformat(),
            "features": self.features,
            "prediction": self.prediction,
            "score": self.score,
        }
        if self.version is not None:
            out["model_version"] = self.version
        return out


def traffic(
    n: int, start: datetime, span: timedelta, *, seed: int, prefix: str, canary_share: float = 0.0
) -> list[Row]:
    """``n`` predictions spread over ``[start, start + span)``; a ``canary_share`` of them served by 2.1
    (tagged), the others by the deployed version (untagged)."""
    rng = np.random.default_rng(seed)
    region = rng.choice(REGIONS, n)
    tenure = np.round(rng.gamma(2.0, 12.0, n), 1)
    p = 1 / (1 + np.exp(-(-1.5 + 0.04 * (tenure - 24) + (region == "us") * 0.5)))
    label = (rng.random(n) < p).astype(int)
    score = np.clip(p + rng.normal(0, 0.05, n), 0.001, 0.999)
    canary = rng.random(n) < canary_share
    score = np.where(canary & (region == BAD_REGION), 1 - score, score).round(4)
    offsets = np.sort(rng.random(n)) * span.total_seconds()
    return [
        Row(
            id=f"{prefix}-{i}",
            ts=start + timedelta(seconds=float(offsets[i])),
            features={"tenure": float(tenure[i]), "region": str(region[i])},
            prediction=int(score[i] >= 0.5),
            score=float(score[i]),
            label=int(label[i]),
            version="2.1" if canary[i] else None,
        )
        for i in range(n)
    ]
