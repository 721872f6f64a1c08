"""The unreliable-estimate marker end to end on a real store (SQLite and the Postgres fixture): windows whose
realized value falls outside the estimate's interval, read back through the read API (health and scores)
and in the message of an alert on the estimated metric; a later agreeing window clears it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from alerts import evaluate
from alerts.message import render_text
from monitor.api.app import create_app
from monitor.config import Config, parse_config
from monitor.store.api_keys import create_api_key
from monitor.store.engine import transaction
from monitor.store.queries import sync_models
from monitor.store.reads import estimate_marks
from monitor.store.tables import Alert, Notification, Run, Score
from tests.alert_support import FEATURES, HOUR, MONITOR, T0, add_window
from tests.integration.test_api import bearer, serving

pytestmark = pytest.mark.integration

RULE = {"name": "estimated auc low", "when": "estimated.roc_auc < 0.8", "for": 1, "notify": ["console"]}


def make_config() -> Config:
    return parse_config(
        {
            "models": {"churn": {"task": "binary", "features": {f: "numeric" for f in FEATURES}}},
            "monitors": {
                MONITOR: {
                    "model": "churn",
                    "reference": {"range": ["2026-01-01", "2026-02-01"]},
                    "performance": ["roc_auc"],
                    "estimated_performance": True,
                }
            },
            "alerts": {"rules": [RULE], "channels": {"console": {"kind": "console"}}, "group_wait": "0s"},
            "dashboard": {"public_url": "https://driftscope.example.test"},
        },
        env={},
    )


def scores(estimate: float, lo: float, hi: float, realized: float | None = None) -> list[dict[str, Any]]:
    """An estimated roc_auc with its interval on 1000 rows, and the realized one on 800 labelled rows when given."""
    out: list[dict[str, Any]] = [
        {
            "kind": "estimated_performance",
            "method": "roc_auc",
            "value": estimate,
            "details": {"n": 1000, "sampling_error": (hi - lo) / 6, "ci_lower": lo, "ci_upper": hi},
        }
    ]
    if realized is not None:
        details = {"n": 800, "ci_lower": realized - 0.02, "ci_upper": realized + 0.02}
        out.append({"kind": "performance", "method": "roc_auc", "value": realized, "details": details})
    return out


def _alert(engine: Engine) -> Alert:
    with transaction(engine) as session:
        (alert,) = session.scalars(select(Alert))
        session.expunge(alert)
        return alert


def test_realized_outside_the_interval_marks_the_estimate_until_a_labelled_window_agrees(store_engine: Engine) -> None:
    config = make_config()
    model = sync_models(store_engine, config)["churn"]
    key = create_api_key(store_engine, "reader", scopes=["read"])[0]
    # w0 agrees; w1 unlabelled; w2: the estimate falls to 0.78 while labels say 0.93; w3 unlabelled.
    for i, spec in enumerate(
        [
            scores(0.85, 0.82, 0.88, 0.86),
            scores(0.84, 0.81, 0.87),
            scores(0.78, 0.75, 0.81, 0.93),
            scores(0.76, 0.73, 0.79),
        ]
    ):
        add_window(store_engine, model, T0 + i * HOUR, extra=spec)
    with store_engine.connect() as conn:
        marks = [m is not None for _, m in estimate_marks(conn, model, MONITOR, "roc_auc", T0)]
    assert marks == [False, False, True, True]

    evaluate(store_engine, config, T0 + 4 * HOUR)
    alert = _alert(store_engine)
    assert alert.state == "firing" and alert.window_start == T0 + 3 * HOUR
    doubt = alert.annotations["estimate_unreliable"]
    assert doubt["since"] == "2026-03-02T10:00:00Z" and doubt["window_start"] == "2026-03-02T10:00:00Z"
    assert (doubt["realized"], doubt["ci_lower"], doubt["ci_upper"]) == (0.93, 0.75, 0.81)
    assert alert.annotations["summary"] == (
        "estimated auc low: estimated.roc_auc on churn = 0.76 < 0.8; "
        "estimate unreliable since 2026-03-02T10:00:00Z (realized 0.93 outside 0.75–0.81)"
    )
    with transaction(store_engine) as session:
        (notification,) = session.scalars(select(Notification))
        text = render_text(notification.payload)
    assert "labelled windows refute the estimate, read the realized metric" in text

    app = create_app(config, store_engine)
    with serving(app) as url:
        health = httpx.get(f"{url}/v1/models/churn/health", headers=bearer(key), timeout=30).json()
        assert health["estimated_performance"] == {"roc_auc": 0.76}
        assert health["estimate_unreliable"] == {
            "roc_auc": {
                "since": "2026-03-02T10:00:00Z",
                "window_start": "2026-03-02T10:00:00Z",
                "realized": 0.93,
                "ci_lower": 0.75,
                "ci_upper": 0.81,
            }
        }
        page = httpx.get(
            f"{url}/v1/models/churn/scores", params={"kind": "estimated_performance"}, headers=bearer(key), timeout=30
        ).json()
        assert [s["estimate_unreliable"] for s in page["scores"]] == [False, False, True, True]
        # A page that starts inside the stretch still sees where it began (the labelled windows before it).
        late = httpx.get(
            f"{url}/v1/models/churn/scores",
            params={"since": "2026-03-02T11:00:00Z"},
            headers=bearer(key),
            timeout=30,
        ).json()
        assert [(s["kind"], s["estimate_unreliable"]) for s in late["scores"]] == [("estimated_performance", True)]
        realized = httpx.get(
            f"{url}/v1/models/churn/scores", params={"kind": "performance"}, headers=bearer(key), timeout=30
        ).json()
        assert {s["estimate_unreliable"] for s in realized["scores"]} == {None}

        # Labels of a later window agree with its estimate: trusted again, and the alert no longer says otherwise.
        add_window(store_engine, model, T0 + 4 * HOUR, extra=scores(0.77, 0.74, 0.80, 0.78))
        health = httpx.get(f"{url}/v1/models/churn/health", headers=bearer(key), timeout=30).json()
        assert health["estimate_unreliable"] == {}
    evaluate(store_engine, config, T0 + 5 * HOUR)
    alert = _alert(store_engine)
    assert alert.state == "firing" and "estimate_unreliable" not in alert.annotations
    assert alert.annotations["summary"] == "estimated auc low: estimated.roc_auc on churn = 0.77 < 0.8"


def test_late_labels_change_the_marker_without_any_state(store_engine: Engine) -> None:
    """A window computed before its labels arrived is recomputed with them: the next read sees the mark."""
    config = make_config()
    model = sync_models(store_engine, config)["churn"]
    add_window(store_engine, model, T0, extra=scores(0.95, 0.90, 0.97))
    add_window(store_engine, model, T0 + HOUR, extra=scores(0.95, 0.91, 0.97))
    with store_engine.connect() as conn:
        assert [m for _, m in estimate_marks(conn, model, MONITOR, "roc_auc", T0)] == [None, None]
    # The labels of the first window arrive; the recompute writes its realized score (here: added to it).
    with transaction(store_engine) as session:
        run = session.scalars(select(Run).where(Run.window_start == T0)).one()
        spec = scores(0.95, 0.90, 0.97, 0.77)[1]
        session.add(Score(run_id=run.id, monitor=MONITOR, model_id=model, window_start=T0, status="ok", **spec))
    with store_engine.connect() as conn:
        marks = [m for _, m in estimate_marks(conn, model, MONITOR, "roc_auc", T0 + timedelta(minutes=30))]
    assert len(marks) == 1 and marks[0] is not None
    assert marks[0].since == T0 and marks[0].text() == "realized 0.77 outside 0.90–0.97"
