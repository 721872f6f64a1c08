"""A baseline per version without a store: the config's `reference: {version: current}` checked at load, each
version's segment scored against its own baseline (and said so when it has none), the approval states, the
comparison page's URL and the page's text for a version named with markup."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from alerts.message import describe_reference
from dashboard.pages.compare import CompareData, Side, render
from dashboard.state import Location, PageQuery, TimeRange, compare_url
from monitor.config import ConfigError, parse_config
from monitor.runs.evaluation import Baseline, evaluate, fit_baseline
from monitor.runs.references import InsufficientReference
from monitor.runs.segments import evaluate_segments
from monitor.runs.windows import Batch
from monitor.store.references import ReferenceRow
from monitor.store.segments import VERSION

MODEL = {"task": "binary", "features": {"tenure": "numeric", "plan": "categorical"}}
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def _config(reference: dict[str, object]):
    spec = {"model": "churn", "reference": reference, "min_rows": 30, "segment_min_rows": 30, "drift": {"method": "ks"}}
    return parse_config({"models": {"churn": MODEL}, "monitors": {"m": spec}}, env={})


def _errors(reference: dict[str, object]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        _config(reference)
    return dict(caught.value.errors)


def test_version_current_is_one_kind_of_reference_checked_at_load() -> None:
    spec = _config({"version": "current", "approval": "required"}).monitors["m"].reference
    assert (spec.version, spec.approval, spec.dataset) == ("current", "required", None)
    assert _config({"version": "current"}).monitors["m"].reference.approval is None
    both = _errors({"version": "current", "previous_windows": 3})["monitors.m.reference"]
    assert "give exactly one of range, dataset, previous_windows, version (got ['previous_windows', 'version'])" in both
    assert (
        "approval applies to `version: current` references only"
        in _errors({"dataset": "x", "approval": "none"})["monitors.m.reference"]
    )
    assert "monitors.m.reference.version" in _errors({"version": "latest"})
    assert "monitors.m.reference.approval" in _errors({"version": "current", "approval": "maybe"})
    assert describe_reference(spec) == "the reference of the model's current version"


def _batch(n: int, shift: float, seed: int) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(n, {"tenure": rng.normal(shift, 1, n), "plan": rng.choice(["a", "b"], n).astype(object)})


def test_each_version_is_scored_against_its_own_baseline_or_says_why_not() -> None:
    config = _config({"version": "current"})
    model, monitor = config.models["churn"], config.monitors["m"]
    v1 = fit_baseline(model, monitor, _batch(2000, 0.0, 1), reference_seconds=None)
    v2 = fit_baseline(model, monitor, _batch(2000, 1.5, 2), reference_seconds=None)
    first, second, third = _batch(300, 0.0, 3), _batch(300, 1.5, 8), _batch(300, 0.0, 5)
    window = Batch(
        900,
        {k: np.concatenate([first.features[k], second.features[k], third.features[k]]) for k in first.features},
    )
    versions = np.array(["1.0"] * 300 + ["2.0"] * 300 + ["3.0"] * 300, dtype=object)
    asked: list[str] = []

    def own(version: str) -> Baseline:
        asked.append(version)
        if version == "3.0":
            raise InsufficientReference("no reference for version 3.0 of model 'churn'; run `driftscope …`")
        return {"1.0": v1, "2.0": v2}[version]

    results = {r.segment: r for r in evaluate_segments(model, monitor, v1, window, window_seconds=None,
                                                        versions=versions, version_baseline=own)}  # fmt: skip
    assert sorted(asked) == ["1.0", "2.0", "3.0"]
    assert (results["3.0"].segment_by, results["3.0"].status, results["3.0"].rows) == (
        VERSION,
        "insufficient_data",
        300,
    )
    assert results["3.0"].reason == "no reference for version 3.0 of model 'churn'; run `driftscope …`"
    # 2.0's rows against 2.0's baseline: the same scores as evaluate() of those rows alone against it.
    alone = evaluate(model, monitor, v2, window.take(versions == "2.0"), window_seconds=None)
    expected = {(s.feature, s.method): s.value for s in alone.scores if s.method != "volume"}
    assert {(s.feature, s.method): s.value for s in results["2.0"].scores} == expected
    tenure = next(s for s in results["2.0"].scores if s.feature == "tenure")
    against_v1 = evaluate(model, monitor, v1, window.take(versions == "2.0"), window_seconds=None)
    assert not tenure.breached and next(s for s in against_v1.scores if s.feature == "tenure").breached
    # Without version_baseline every version is compared with the window's baseline, as before.
    plain = {r.segment: r for r in evaluate_segments(model, monitor, v1, window, window_seconds=None,
                                                      versions=versions)}  # fmt: skip
    assert next(s for s in plain["2.0"].scores if s.feature == "tenure").breached


def test_approval_states() -> None:
    def row(approved_at: datetime | None, by: str | None) -> ReferenceRow:
        return ReferenceRow(1, "train.csv@2.0", "2.0", 10, "abc", NOW, approved_at, by)

    assert row(None, None).approval == "waiting"
    assert row(NOW, None).approval == "at upload"
    assert row(NOW, "ana").approval == "approved"
    assert row(NOW, "ana").to_dict()["approval"] == "approved"


HOSTILE = '<img src=x onerror=alert(1)>&baseline=x"'


def test_compare_url_quotes_versions_and_the_page_shows_them_as_text() -> None:
    url = compare_url("churn/eu", HOSTILE, "2.0")
    assert (
        url == "/models/churn%2Feu/compare?candidate=%3Cimg+src%3Dx+onerror%3Dalert%281%29%3E%26baseline%3Dx%22"
        "&baseline=2.0"
    )
    query = PageQuery.parse(url.split("?", 1)[1])
    assert (query.candidate, query.baseline) == (HOSTILE, "2.0")

    side = Side(HOSTILE, 0, 0, [], [])
    data = CompareData(
        model=None, known=("churn",), range=TimeRange(NOW, NOW), sides=(side, Side("2.0", 5, 5, [], [])),
    )  # fmt: skip
    location = Location({"model": "churn"}, query)
    assert "Unknown model" in str(render(location, data).to_plotly_json())
    from dashboard.queries import ModelInfo

    known = CompareData(
        ModelInfo(1, "churn", "binary", {}), (), [], TimeRange(NOW, NOW), "m", data.sides, pd.DataFrame(), None,
        "Not judged: candidate has 0 rows",
    )  # fmt: skip
    page = render(location, known)
    texts: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            texts.append(node)
        elif isinstance(node, list | tuple):
            for child in node:
                walk(child)
        elif hasattr(node, "children"):
            walk(node.children)

    walk(page)
    # Text children only (React escapes them): the version whole, in the heading and its upload command.
    assert HOSTILE in texts
    assert f"driftscope reference upload --model churn --version {shlex.quote(HOSTILE)} FILE" in texts
