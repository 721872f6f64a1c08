"""The window report the dashboard process wires in: Evidently's HTML for a stored window, served by the app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, insert

from dashboard import create_app
from monitor.cli.dashboard import report_renderer
from monitor.config import Config
from monitor.store.queries import sync_models
from monitor.store.tables import Prediction

T0 = datetime(2026, 11, 1, tzinfo=UTC)
WINDOW = T0 + timedelta(days=2)


def config() -> Config:
    return Config.model_validate(
        {
            "models": {"m": {"task": "binary", "features": {"x": "numeric", "plan": "categorical"}}},
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


def test_report_of_a_stored_window(sqlite_engine: Engine) -> None:
    cfg = config()
    seed_predictions(sqlite_engine, cfg)
    render = report_renderer(cfg, sqlite_engine)
    html = render("m-hourly", WINDOW)
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert '"x"' in html and '"plan"' in html
    with pytest.raises(LookupError, match="unknown monitor 'nope'"):
        render("nope", WINDOW)

    client = create_app(cfg, sqlite_engine, render_report=render).server.test_client()
    response = client.get("/_report/m-hourly/" + WINDOW.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.get_data(as_text=True) == html
    missing = client.get("/_report/nope/" + WINDOW.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert missing.status_code == 404 and "unknown monitor" in missing.get_data(as_text=True)
    empty = client.get("/_report/m-hourly/2026-12-01T00:00:00Z")  # no predictions in that window
    assert empty.status_code == 404
