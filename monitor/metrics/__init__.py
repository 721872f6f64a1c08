"""Driftscope's own Prometheus metrics: process-local counters (:mod:`.process`) and the
``/metrics`` endpoint that adds the store-backed gauges (:mod:`.exporter`)."""
