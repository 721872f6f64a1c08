"""A window scored per segment: per value of each ``segments:`` feature, and per model version.

Each segment is the window's rows with one value (the ``segment_top`` values with the most rows, the rest
pooled as ``(other)``), scored by :func:`monitor.runs.evaluation.evaluate` — the same detectors and the
same baseline as the whole window — with ``segment_min_rows`` as its minimum. Left out of a segment's
scores: the split feature itself (within ``channel = web`` every row is ``web``, which says nothing),
volume (the reference's rate is the whole window's), multivariate and slow drift (per window only).
Per version: when more than one version served in the window, each version is a segment too
(``segment_by`` = ``model_version``); a row without a version belongs to the version of the latest full
deployment at or before it, and to none when there is none. Under ``reference: {version: current}`` each
version is scored against its own version's reference (``version_baseline``), and a version without an
approved one gets an ``insufficient_data`` row saying which command to run; ``(other)``, which pools several
versions, keeps the window's baseline.

Segment names are data (hostile: they go to HTML, logs and URLs); readers escape them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from detectors.types import Score
from monitor.config import ModelConfig, MonitorConfig, as_utc
from monitor.runs.evaluation import ALL_PARTS, Baseline, Part, evaluate
from monitor.runs.references import InsufficientReference
from monitor.runs.windows import Batch
from monitor.store.segments import VERSION

OTHER = "(other)"
MISSING = "(missing)"
# segment_score.segment is VARCHAR(200)
MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class SegmentResult:
    """The scores of one segment of one window."""

    segment_by: str
    segment: str
    rows: int
    scores: list[Score]
    status: str = "succeeded"  # or insufficient_data: too few rows, ``reason`` says how many
    reason: str | None = None


def segment_name(value: object) -> str | None:
    """A feature value as a segment's name: its text (at most 200 characters), ``(missing)`` for null or NaN.

    A value that reads like one of the markers is quoted, so ``"(other)"`` sent as data never merges
    with the pooled segment.
    """
    if value is None or (isinstance(value, float) and value != value):
        return MISSING
    text = "true" if value is True else "false" if value is False else str(value)
    if text in (OTHER, MISSING):
        text = repr(text)
    return text[:MAX_NAME]


def split(names: Sequence[str | None], top: int) -> list[tuple[str, np.ndarray]]:
    """Segments of ``names`` (one per row; ``None``: in no segment), as ``(name, row mask)``: the ``top``
    names with the most rows (ties by name), then the rest pooled as ``(other)`` when there is a rest."""
    codes, uniques = pd.factorize(pd.Series(np.asarray(names, dtype=object)), use_na_sentinel=True)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    ordered = sorted(range(len(uniques)), key=lambda i: (-counts[i], uniques[i]))
    out = [(str(uniques[i]), codes == i) for i in ordered[:top]]
    if len(ordered) > top:
        out.append((OTHER, np.isin(codes, ordered[top:])))
    return out


def resolve_versions(
    versions: np.ndarray, ts: np.ndarray, deployed: Sequence[tuple[datetime, str, float | None]]
) -> np.ndarray:
    """Each row's version: its own, else the version of the latest full deployment at or before its time
    (``deployed``: ``(deployed_at, version, traffic)`` oldest first; a canary's partial traffic does not
    make it the version of rows that name none), else ``None``."""
    out = versions.copy()
    unnamed = np.flatnonzero(out == None)  # noqa: E711  (element-wise on an object array)
    full = [(at, version) for at, version, traffic in deployed if traffic is None or traffic >= 1]
    if len(unnamed) == 0 or not full:
        return out
    times = np.array([np.datetime64(as_utc(at).replace(tzinfo=None), "us") for at, _ in full])
    names = np.array([version for _, version in full] + [None], dtype=object)
    # index of the latest deployment at or before each row; -1 (→ None) before the first
    at = np.searchsorted(times, ts[unnamed], side="right") - 1
    out[unnamed] = names[np.where(at < 0, len(full), at)]
    return out


def _segment(
    model: ModelConfig,
    monitor: MonitorConfig,
    baseline: Baseline,
    window: Batch,
    segment_by: str,
    segment: str,
    parts: Collection[Part],
    window_seconds: float | None,
) -> SegmentResult:
    evaluation = evaluate(model, monitor, baseline, window, window_seconds=window_seconds, parts=parts)
    if evaluation.status != "succeeded":
        return SegmentResult(segment_by, segment, window.n, [], evaluation.status, evaluation.reason)
    split_by = None if segment_by == VERSION else segment_by
    scores = [s for s in evaluation.scores if s.method != "volume" and (split_by is None or s.feature != split_by)]
    return SegmentResult(segment_by, segment, window.n, scores)


def evaluate_segments(
    model: ModelConfig,
    monitor: MonitorConfig,
    baseline: Baseline,
    window: Batch,
    *,
    window_seconds: float | None,
    versions: np.ndarray | None = None,
    parts: Collection[Part] = ALL_PARTS,
    version_baseline: Callable[[str], Baseline] | None = None,
) -> list[SegmentResult]:
    """The scores of every segment of ``window`` (none when the monitor has no ``segments:`` and at most one
    version served); ``versions`` are the rows' resolved versions (:func:`resolve_versions`);
    ``version_baseline``: each version's own baseline (raising InsufficientReference when it has none),
    else every version is compared with ``baseline``."""
    drift = monitor.drift.model_copy(update={"multivariate": False, "slow_drift": None})
    scored = monitor.model_copy(update={"min_rows": monitor.segment_rows, "drift": drift})
    out = []
    for column in monitor.segments:
        # The split feature is not a drift column of its own segments (see the module docstring). Estimated
        # regression performance (DLE) needs every feature: left to the whole window and the versions.
        features = {name: kind for name, kind in model.features.items() if name != column}
        by_value = model.model_copy(update={"features": features})
        on_value = scored.model_copy(update={"estimated_performance": False}) if model.task == "regression" else scored
        names = [segment_name(v) for v in window.features[column]]
        for name, mask in split(names, monitor.segment_top):
            out.append(_segment(by_value, on_value, baseline, window.take(mask), column, name, parts, window_seconds))
    if versions is not None:
        names = [None if v is None else str(v)[:MAX_NAME] for v in versions]
        if len({n for n in names if n is not None}) > 1:
            for name, mask in split(names, monitor.segment_top):
                rows = window.take(mask)
                own = baseline
                if version_baseline is not None and name != OTHER:
                    try:
                        own = version_baseline(name)
                    except InsufficientReference as exc:
                        out.append(SegmentResult(VERSION, name, rows.n, [], "insufficient_data", str(exc)))
                        continue
                out.append(_segment(model, scored, own, rows, VERSION, name, parts, window_seconds))
    return out
