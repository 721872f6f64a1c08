"""Driftscope's own Prometheus metrics (prometheus-client).

Counters that only the process that did the work can know (records ingested, collector runs)
live here as module-level metrics. Values that are facts of the store (current drift scores,
firing alerts, pending notifications) are read from the store at scrape time by a custom
collector instead, so every process and every uvicorn worker exposes the same truth.
"""

from __future__ import annotations

from prometheus_client import Counter

RECORDS_INGESTED = Counter(
    "driftscope_records_ingested",
    "Prediction and label records received, by model, source (api, sdk, elasticsearch, demo) and outcome.",
    ["model", "source", "kind", "outcome"],  # kind: prediction | label; outcome: accepted | rejected
)
