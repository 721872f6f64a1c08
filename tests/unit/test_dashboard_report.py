"""The window report, Evidently's HTML for a stored window: served by the dashboard app and written by
``driftscope report``, both through :func:`monitor.runs.drilldown.window_report_html`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, insert

from dashboard import create_app
from dashboard.pages import report
from dashboard.state import Location, PageQuery
from monitor.cli.dashboard import report_renderer
from monitor.config import Config
from monitor.runs.drilldown import ReportError, window_report_html
from monitor.store.queries import sync_models
from monitor.store.tables import Prediction

T0 = datetime(2026, 11, 1, tzinfo=UTC)
WINDOW = T0 + timedelta(days=2)


def config(**model: str) -> Config:
    return Config.model_validate(
        {
            "models": {"m": {"task": "binary", "features": {"x": "numeric", "plan": "categorical"}, **model}},
            "monitors": {
                "m-hourly": {"model": "m", "window": "1h", "reference": {"range": [T0, T0 + timedelta(days=1)]}}
            },
        }
    )


def seed_predictions(engine: Engine, cfg: Config) -> None:
    model_id = sync_models(engine, cfg)["m"]
    rng = np.random.default_rng(3)
    rows = []
    for start, shift, n in ((T0, 0.0, 400), (WINDOW, 1.5, 200)):
        x = rng.normal(shift, 1.0, n)
        for i in range(n):
            score = float(1 / (1 + np.exp(-x[i])))
            rows.append(
                {
                    "model_id": model_id,
                    "prediction_id": f"{start:%d}-{i}",
                    "ts": start + timedelta(seconds=i * 3600 // n),
                    "features": {"x": float(x[i]), "plan": "pro" if x[i] > 1 else "basic"},
                    "prediction": int(score > 0.5),
                    "score": score,
                    "label": int(rng.random() < score),
                    "label_ts": start + timedelta(hours=2),
                    "source": "test",
                }
            )
    with engine.begin() as conn:
        conn.execute(insert(Prediction), rows)


def report_data(html: str) -> str:
    """The report's own data, before Evidently's inlined JS bundle (which names every metric)."""
    return html[: html.index("var global = globalThis")]


def test_report_of_a_stored_window(sqlite_engine: Engine) -> None:
    cfg = config()
    seed_predictions(sqlite_engine, cfg)
    render = report_renderer(cfg, sqlite_engine)
    html = render("m-hourly", WINDOW)
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert '"x"' in html and '"plan"' in html
    with pytest.raises(ReportError, match="unknown monitor 'nope'"):
        render("nope", WINDOW)

    client = create_app(cfg, sqlite_engine, render_report=render).server.test_client()
    response = client.get("/_report/m-hourly/" + WINDOW.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.get_data(as_text=True) == html
    missing = client.get("/_report/nope/" + WINDOW.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert missing.status_code == 404 and "unknown monitor" in missing.get_data(as_text=True)
    empty = client.get("/_report/m-hourly/2026-12-01T00:00:00Z")  # no predictions in that window
    assert empty.status_code == 404


def test_string_positive_class_with_int_labels_in_both_paths(sqlite_engine: Engine) -> None:
    """``positive_class: "1"`` (YAML quotes it) while the SDK stored labels 1 and 0: the dashboard answered
    404 "'1'" where ``driftscope report`` rendered; both now read the classes the same way."""
    cfg = config(positive_class="1")
    seed_predictions(sqlite_engine, cfg)
    start, cli_html = window_report_html(cfg, sqlite_engine, "m-hourly", WINDOW + timedelta(minutes=30))
    assert start == WINDOW and "ROC AUC" in report_data(cli_html)

    client = create_app(cfg, sqlite_engine, render_report=report_renderer(cfg, sqlite_engine)).server.test_client()
    response = client.get("/_report/m-hourly/" + WINDOW.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "ROC AUC" in report_data(response.get_data(as_text=True))


def test_report_is_served_sandboxed(sqlite_engine: Engine) -> None:
    """Whatever the report's data holds runs in an opaque origin: the sandbox policy on every answer of
    the route (the report and its 404s), ``sandbox`` on the iframe, never ``allow-same-origin``."""
    app = create_app(config(), sqlite_engine, render_report=lambda m, w: "<!DOCTYPE html><p>report</p>")
    client = app.server.test_client()
    window = WINDOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    for path, status in ((f"/_report/m-hourly/{window}", 200), ("/_report/m-hourly/not-a-time", 404)):
        response = client.get(path)
        assert response.status_code == status
        policy = [d.strip() for d in response.headers["Content-Security-Policy"].split(";")]
        assert "sandbox allow-scripts" in policy and "default-src 'none'" in policy, policy
        assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    page = report.render(
        Location({"monitor": "m-hourly", "window": window}, PageQuery.parse("")), report.ReportData("m", True)
    )
    (frame,) = [c for c in page.children if getattr(c, "id", None) == "report-frame"]
    assert frame.sandbox == "allow-scripts"


def test_multiclass_model_without_scores_reports_drift_and_classification(sqlite_engine: Engine) -> None:
    """A multiclass model whose service logs no probabilities: the report used to add empty probability
    columns, and Evidently failed with "Found empty input array"."""
    cfg = Config.model_validate(
        {
            "models": {
                "m": {
                    "task": "multiclass",
                    "classes": ["a", "b", "c"],
                    "features": {"x": "numeric", "plan": "categorical"},
                }
            },
            "monitors": {
                "m-hourly": {"model": "m", "window": "1h", "reference": {"range": [T0, T0 + timedelta(days=1)]}}
            },
        }
    )
    model_id = sync_models(sqlite_engine, cfg)["m"]
    rng = np.random.default_rng(5)
    rows = []
    for start, shift, n in ((T0, 0.0, 300), (WINDOW, 1.0, 150)):
        for i, x in enumerate(rng.normal(shift, 1.0, n)):
            predicted = "a" if x < -0.5 else "b" if x < 0.5 else "c"
            rows.append(
                {
                    "model_id": model_id,
                    "prediction_id": f"{start:%d}-{i}",
                    "ts": start + timedelta(seconds=i * 3600 // n),
                    "features": {"x": float(x), "plan": "pro" if x > 1 else "basic"},
                    "prediction": predicted,
                    "label": predicted if rng.random() < 0.8 else "a",
                    "label_ts": start + timedelta(hours=2),
                    "source": "test",
                }
            )
    with sqlite_engine.begin() as conn:
        conn.execute(insert(Prediction), rows)
    start, html = window_report_html(cfg, sqlite_engine, "m-hourly", WINDOW)
    assert start == WINDOW and '"plan"' in report_data(html)
