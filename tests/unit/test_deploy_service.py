"""The demo model service of the compose stack: its drift timeline, and documents the stack's config accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from monitor.config import load_config
from monitor.demo.service import Timeline, label_document, log_document
from monitor.demo.traffic import MODEL, LoanTraffic
from monitor.ingest.records import validate_labels, validate_predictions

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_timeline_drifts_after_the_delay_and_ramps_to_full() -> None:
    timeline = Timeline(T0, drift_after=timedelta(minutes=5), ramp=timedelta(minutes=2))
    assert timeline.drift(T0) == 0.0
    assert timeline.drift(T0 + timedelta(minutes=5) - timedelta(microseconds=1)) == 0.0
    assert timeline.drift(T0 + timedelta(minutes=6)) == pytest.approx(0.5)
    assert timeline.drift(T0 + timedelta(minutes=7)) == 1.0
    assert timeline.drift(T0 + timedelta(hours=3)) == 1.0
    backfilled_drift = Timeline(T0, drift_after=timedelta(minutes=-4), ramp=timedelta(0))
    assert backfilled_drift.drift(T0 - timedelta(minutes=5)) == 0.0
    assert backfilled_drift.drift(T0 - timedelta(minutes=4)) == 1.0


def test_the_stack_config_accepts_every_document_the_service_logs() -> None:
    config = load_config(ROOT / "deploy" / "driftscope.yaml", env={"ELASTICSEARCH_PASSWORD": "x"})
    model = config.models[MODEL]
    times = [T0 + timedelta(seconds=i) for i in range(200)]
    applicants = LoanTraffic(seed=3).applicants(times, np.linspace(0, 1, len(times)))
    # Through JSON, as Elasticsearch returns them.
    documents = [json.loads(json.dumps(log_document(a, 40.0))) for a in applicants]
    predictions, rejected = validate_predictions(model, documents)
    assert rejected == [] and len(predictions) == len(documents)
    assert {p.id for p in predictions} == {a.id for a in applicants}
    assert [p.score for p in predictions] == [a.score for a in applicants]
    assert set(predictions[0].features) == set(model.features)

    outcomes = [json.loads(json.dumps(label_document(a, a.timestamp + timedelta(seconds=30)))) for a in applicants]
    labels, rejected = validate_labels(model, outcomes, now=T0 + timedelta(hours=1))
    assert rejected == [] and [label.label for label in labels] == [str(a.label) for a in applicants]
