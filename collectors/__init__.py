"""Sources → store. Every collector implements :class:`collectors.base.Collector`."""

from __future__ import annotations

from sqlalchemy import Engine

from collectors.base import Collector
from collectors.elasticsearch import build_elasticsearch_collectors
from collectors.prometheus import build_prometheus_collectors
from monitor.config import Config


def build_collectors(config: Config, engine: Engine) -> list[Collector]:
    """Every collector the config asks for; the worker calls ``collect()`` on each on its schedule."""
    collectors: list[Collector] = []
    collectors += build_elasticsearch_collectors(config, engine)
    collectors += build_prometheus_collectors(config, engine)
    return collectors
