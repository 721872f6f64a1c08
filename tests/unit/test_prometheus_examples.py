"""examples/prometheus only uses metrics Driftscope exports (a renamed gauge must break this test)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from sqlalchemy import Engine

from monitor.metrics.exporter import build_registry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "prometheus"
METRIC = re.compile(r"\bdriftscope_[a-z_]+\b")


def exported_names(engine: Engine) -> set[str]:
    """Every series name /metrics can show: families, plus their _total/_bucket/... samples."""
    names: set[str] = set()
    for family in build_registry(engine).collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
    return names


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exprs += [var["definition"] for var in dashboard["templating"]["list"] if "definition" in var]
    return exprs


def rule_exprs() -> list[str]:
    exprs = []
    for path in EXAMPLES.glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            exprs += [rule["expr"] for rule in group["rules"]]
    return exprs


def test_rules_and_dashboard_reference_only_exported_metrics(sqlite_engine: Engine) -> None:
    exported = exported_names(sqlite_engine)
    used = {name for expr in rule_exprs() + dashboard_exprs() for name in METRIC.findall(expr)}
    assert used - exported == set()
    # The headline gauges of issue 4 are in both the rules and the dashboard.
    for name in ("driftscope_drift_share_drifted", "driftscope_collector_lag_seconds"):
        assert any(name in expr for expr in rule_exprs())
        assert any(name in expr for expr in dashboard_exprs())


def test_dashboard_panels_are_unique_and_on_the_grid() -> None:
    panels = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        assert [t["refId"] for t in panel["targets"]] == [chr(65 + i) for i in range(len(panel["targets"]))]
