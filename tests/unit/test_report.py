"""Evidently drill-down report: renders, names the columns, shows quality when labels exist, needs no network."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from detectors.report import evidently_report_html

KINDS = {"tenure_days": "numeric", "plan_tier": "categorical"}


def _frames(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    return pd.DataFrame(
        {
            "tenure_days": rng.normal(100 + shift, 20, n),
            "plan_tier": rng.choice(["basic", "pro", "team"], n),
            "proba": p,
            "pred": (p >= 0.5).astype(int),
            "label": (rng.random(n) < p).astype(int),
        }
    )


def _data_part(html: str) -> str:
    """The report's own data: everything before Evidently's inlined JS bundle (which names every metric)."""
    return html[: html.index("var global = globalThis")]


def _assert_self_contained(html: str) -> None:
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]+src=", html, re.I)
    assert not re.search(r"<link[^>]+href=[\"']?https?:", html, re.I)


def test_drift_only_report_without_labels():
    html = evidently_report_html(
        _frames(300, 0),
        _frames(300, 1, shift=30).drop(columns="label"),
        KINDS,
        "binary",
        target="label",
        prediction="pred",
        score_columns="proba",
    )
    _assert_self_contained(html)
    data = _data_part(html)
    assert "tenure_days" in data and "plan_tier" in data
    assert "ROC AUC" not in data and "Accuracy" not in data


def test_binary_report_with_labels_shows_classification_quality():
    html = evidently_report_html(
        _frames(300, 0), _frames(300, 1), KINDS, "binary", target="label", prediction="pred", score_columns="proba"
    )
    _assert_self_contained(html)
    data = _data_part(html)
    for text in ("tenure_days", "plan_tier", "Accuracy", "ROC AUC"):
        assert text in data, text


def test_regression_report():
    ref, cur = _frames(200, 0), _frames(200, 1)
    for frame in (ref, cur):
        frame["y"] = frame["tenure_days"] * 2 + 1
        frame["y_hat"] = frame["y"] + np.random.default_rng(0).normal(0, 1, len(frame))
    html = evidently_report_html(ref, cur, KINDS, "regression", target="y", prediction="y_hat")
    data = _data_part(html)
    assert "R2 Score (current)" in data and "tenure_days" in data


def test_partially_labelled_window_renders():
    cur = _frames(200, 1)
    cur.loc[::2, "label"] = np.nan
    html = evidently_report_html(
        _frames(200, 0), cur, KINDS, "binary", target="label", prediction="pred", score_columns="proba"
    )
    assert "Accuracy" in _data_part(html)


def test_bad_inputs():
    with pytest.raises(ValueError, match="needs rows"):
        evidently_report_html(_frames(10, 0), _frames(0, 1), KINDS)
    with pytest.raises(ValueError, match=r"current frame lacks feature columns \['plan_tier'\]"):
        evidently_report_html(_frames(10, 0), _frames(10, 1).drop(columns="plan_tier"), KINDS)
