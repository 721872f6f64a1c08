"""What a notification says: the explanation of each alert and the group payload every channel renders.

An alert's explanation (its ``annotations``) is built when it fires and refreshed while it fires: what
crossed which threshold (value vs threshold), since when, the window and the reference, the sample size,
for drift the top drifting features ranked by how far past their threshold they are (the drift of the
model's outputs — prediction, score, label — listed apart, so they never push a feature out of the top),
the estimated performance of the same window when the monitor has it, and a deep link to the dashboard page.
An estimate that labelled windows refute (:mod:`monitor.store.reliability`) is said to be unreliable, in the
summary of an alert on it and beside it in the list of a drift alert.
Every alert names its monitor: a model with several monitors gets one alert per monitor. A monitor with
``segments:`` names the window's segments that moved furthest (per-version segments among them)
(:mod:`monitor.store.segments` ranks them), each name on one line with its control characters escaped.
A breach that began after the model's latest deployment (or in the window it fell in; docs/versions.md)
says so in its summary — "since deployment of 2.1 at …" and how long after it — and its message names the
deployment's traffic, commit, author and pipeline run.

The payload stored in the outbox is channel-neutral JSON (typed as :class:`alerts.payload.NotificationPayload`);
each channel module renders it (Block Kit, e-mail, Alertmanager alerts...). It never holds a secret: it is
built from scores and labels only.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.observe import Series
from alerts.payload import AlertView, NotificationPayload
from alerts.rules import EXTRA_DRIFT_COLUMNS, CompiledRule, Observation
from monitor.config import Config, ReferenceSpec
from monitor.methods import SEQUENTIAL_METHODS
from monitor.store.deployments import latest_deployment
from monitor.store.reads import estimate_marks
from monitor.store.reliability import Unreliable
from monitor.store.segments import worst_segments
from monitor.store.tables import Alert, Score

TOP_FEATURES = 5
WORST_SEGMENTS = 3  # named in a message: the segments of the window that moved furthest (docs/detectors.md)
SEGMENT_CHARS = 80  # of a segment's name in a message (it is data)
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def deep_link(
    config: Config,
    model: str,
    window_start: datetime | None,
    feature: str | None = None,
    monitor: str | None = None,
) -> str:
    """``{dashboard.public_url}/models/{model}?window=...&monitor=...`` — the page that shows what the alert
    is about (``/models/{model}/features/{feature}?...`` for a per-feature alert). The monitor is named:
    without it the page shows the model's primary monitor, which need not be the one that alerted."""
    base = f"{config.dashboard.public_url.rstrip('/')}/models/{quote(model, safe='')}"
    if feature is not None:
        base += f"/features/{quote(feature, safe='')}"
    params = {"window": iso(window_start), "monitor": monitor} if window_start else {}
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{base}?{query}" if query else base


def describe_reference(spec: ReferenceSpec | None) -> str | None:
    if spec is None:
        return None
    if spec.range is not None:
        return f"range {iso(spec.range[0])} → {iso(spec.range[1])}"
    if spec.dataset is not None:
        return f"dataset {spec.dataset}"
    if spec.version is not None:
        return "the reference of the model's current version"
    return f"previous {spec.previous_windows} windows"


def _badness(value: float, threshold: float | None, p_value: bool) -> float:
    """How far past its threshold a drift score is, comparable across methods (>1 means past it)."""
    if threshold is None or threshold == 0:
        return value
    if p_value:
        return threshold / max(value, 1e-300)
    return value / threshold


def ranked_drift(session: Session, run_id: int) -> list[dict[str, Any]]:
    """The run's per-column drift scores, most drifted first."""
    rows = session.execute(
        select(Score.feature, Score.method, Score.value, Score.threshold, Score.breached, Score.details).where(
            Score.run_id == run_id,
            Score.kind == "drift",
            Score.feature.is_not(None),
            Score.method.not_in(SEQUENTIAL_METHODS),  # each column once, by the window's own test
            Score.status == "ok",
            Score.value.is_not(None),
        )
    ).all()
    ranked = sorted(
        rows,
        key=lambda r: (
            not r.breached,
            -_badness(r.value, r.threshold, bool((r.details or {}).get("p_value"))),
            r.feature,
        ),
    )
    return [
        {
            "feature": r.feature,
            "method": r.method,
            "value": r.value,
            "threshold": r.threshold,
            "breached": bool(r.breached),
            "n_current": (r.details or {}).get("n_current"),
            "n_reference": (r.details or {}).get("n_reference"),
        }
        for r in ranked
    ]


def split_outputs(
    ranked: list[dict[str, Any]], features: Collection[str] | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(top features, output drift)``: the model's outputs are scored beside its features, but are no feature."""
    outputs = {c for c in EXTRA_DRIFT_COLUMNS if c not in (features or ())}
    return (
        [r for r in ranked if r["feature"] not in outputs][:TOP_FEATURES],
        [r for r in ranked if r["feature"] in outputs],
    )


def estimated_performance(session: Session, monitor: str, window_start: datetime) -> list[dict[str, Any]]:
    """The window's estimated metrics, each with why it is not to be trusted (``unreliable``) when it is not."""
    rows = session.execute(
        select(Score.model_id, Score.method, Score.value, Score.threshold).where(
            Score.monitor == monitor,
            Score.window_start == window_start,
            Score.kind == "estimated_performance",
            Score.status == "ok",
        )
    ).all()
    return [
        {
            "method": r.method,
            "value": r.value,
            "threshold": r.threshold,
            "unreliable": _unreliable_note(unreliable_at(session, r.model_id, monitor, r.method, window_start)),
        }
        for r in rows
    ]


def unreliable_at(
    session: Session, model_id: int, monitor: str, method: str, window_start: datetime
) -> Unreliable | None:
    """Why ``method``'s estimate of that window is not to be trusted, or None (see monitor.store.reliability)."""
    marked = estimate_marks(session.connection(), model_id, monitor, method, window_start, window_start)
    return marked[-1][1] if marked else None


def _unreliable_note(mark: Unreliable | None) -> dict[str, Any] | None:
    if mark is None:
        return None
    return {
        "since": iso(mark.since),
        "window_start": iso(mark.window_start),
        "realized": mark.realized,
        "ci_lower": mark.ci_lower,
        "ci_upper": mark.ci_upper,
        "text": f"estimate unreliable since {iso(mark.since)} ({mark.text()})",
    }


def explain(
    session: Session,
    config: Config,
    rule: CompiledRule,
    series: Series,
    latest: Observation,
    since: datetime | None,
    *,
    resolved: bool = False,
) -> dict[str, Any]:
    """The annotations of an alert: everything a message needs, as plain JSON."""
    context = series.context
    model = str(context.get("model"))
    limit = rule.when.threshold_for(latest)
    condition = rule.when.op or "breached"
    subject = series.labels.get("feature") or series.labels.get("metric")
    where = f"{model} ({subject})" if subject else model
    if rule.when.op is None:
        value_text = "breached" if not resolved else "no longer breached"
    elif resolved:
        back = rule.resolve_when.text if rule.resolve_when else f"not {rule.when.text}"
        value_text = f"{_fmt(latest.value)}, resolved ({back})"
    else:
        value_text = f"{_fmt(latest.value)} {rule.when.op} {_fmt(limit)}"
    # An estimate that labelled windows refute still pages (the refutation itself means the model no longer
    # behaves as on its reference), but says so first: the realized metric is the one to read.
    doubt = None
    if rule.selector.source == "estimated" and context.get("monitor") and context.get("model_id") is not None:
        doubt = _unreliable_note(
            unreliable_at(
                session, int(context["model_id"]), str(context["monitor"]), str(context["method"]), latest.window_start
            )
        )
    if doubt is not None:
        value_text += f"; {doubt['text']}"
    deployed = None
    if since is not None and context.get("model_id") is not None:
        monitor_config = config.monitors.get(str(context.get("monitor")))
        deployed = deployment_note(
            session,
            int(context["model_id"]),
            since,
            monitor_config.window if monitor_config is not None else timedelta(0),
            latest.window_end or latest.window_start,
        )
    if deployed is not None:
        value_text += f", {deployed['text']}"
    annotations: dict[str, Any] = {
        "summary": f"{rule.name}: {rule.selector} on {where} = {value_text}",
        "condition": rule.when.text,
        "resolve_condition": rule.resolve_when.text if rule.resolve_when else None,
        "selector": str(rule.selector),
        "op": condition,
        "value": latest.value,
        "threshold": limit,
        "since": iso(since),
        "window_start": iso(latest.window_start),
        "window_end": iso(latest.window_end),
        "link": deep_link(
            config,
            model,
            latest.window_start if rule.selector.score_kind else None,
            series.labels.get("feature") if rule.selector.score_kind else None,
            str(context["monitor"]) if rule.selector.score_kind and context.get("monitor") else None,
        ),
    }
    monitor = context.get("monitor")
    if doubt is not None:
        annotations["estimate_unreliable"] = doubt
    if deployed is not None:
        annotations["deployment"] = deployed
    if monitor is not None:
        annotations["monitor"] = monitor
        monitor_config = config.monitors.get(monitor)
        annotations["reference"] = describe_reference(monitor_config.reference if monitor_config else None)
        details = latest.details
        # A realised metric is computed on the labelled rows only, which can be far fewer than the window's.
        labelled = rule.selector.source == "performance" and details.get("n") is not None
        annotations["sample_size"] = details["n"] if labelled else context.get("row_count")
        annotations["sample_unit"] = "labelled rows" if labelled else "rows"
        if details.get("n_current") is not None:
            annotations["n_current"] = details.get("n_current")
            annotations["n_reference"] = details.get("n_reference")
    if rule.selector.source == "drift" and context.get("run_id") is not None:
        model_config = config.models.get(model)
        annotations["top_features"], annotations["output_drift"] = split_outputs(
            ranked_drift(session, int(context["run_id"])), model_config.features if model_config else None
        )
    if monitor is not None and rule.selector.source in ("drift", "quality"):
        annotations["estimated_performance"] = estimated_performance(session, monitor, latest.window_start)
    segmented = config.monitors.get(str(monitor)) if monitor is not None else None
    if segmented is not None and segmented.segments and rule.selector.score_kind:
        annotations["worst_segments"] = segment_notes(session, str(monitor), latest.window_start)
    if rule.selector.source == "staleness":
        annotations["last_prediction"] = context.get("last_prediction")
    return annotations


def segment_notes(session: Session, monitor: str, window_start: datetime) -> list[dict[str, Any]]:
    """The window's segments that moved furthest (at most ``WORST_SEGMENTS``, scored ones only), worst first."""
    _, ranked = worst_segments(session.connection(), monitor, window_start)
    return [
        {
            "segment_by": r.segment_by,
            "segment": r.segment,
            "rows": r.rows,
            "moved": r.severity,
            "kind": r.worst_kind,
            "feature": r.worst_feature,
            "method": r.worst_method,
            "value": r.worst_value,
            "threshold": r.worst_threshold,
        }
        for r in ranked
        if r.severity is not None
    ][:WORST_SEGMENTS]


def _printable(text: str) -> str:
    """A data value on one line of a message: control characters escaped (no forged lines), cut."""
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return shown if len(shown) <= SEGMENT_CHARS else shown[: SEGMENT_CHARS - 1] + "…"


def _segment_line(segment: Mapping[str, Any]) -> str:
    score = f"{segment['method']} {_fmt(segment['value'])} (threshold {_fmt(segment['threshold'])})"
    what = f"{segment['feature']} drift {score}" if segment["kind"] == "drift" else score
    if segment["kind"] == "estimated_performance":
        what = f"estimated {what}"
    return (
        f"  {_printable(segment['segment_by'])} = {_printable(segment['segment'])} ({segment['rows']} rows): "
        f"{what}, {segment['moved']:.2f}× its threshold"
    )


def deployment_note(
    session: Session, model_id: int, since: datetime, window: timedelta, until: datetime
) -> dict[str, Any] | None:
    """The model's latest deployment (at or before ``until``) when the breach began after it, or in the
    window the deployment fell in (``since`` is that window's start); None otherwise, and when there is none.

    Its ``text`` says how long after it the breach began, so a deployment of weeks ago does not read as the
    cause: "since deployment of 2.1 at 2026-03-02T09:40:00Z (the breach began 20 min after it)".
    """
    latest = latest_deployment(session.connection(), model_id, until)
    if latest is None or not (latest.deployed_at <= since or latest.deployed_at < since + window):
        return None
    gap = since - latest.deployed_at
    when = (
        "in the window it was deployed in"
        if gap < timedelta(0)
        else "at once"
        if gap == timedelta(0)
        else f"{_duration(gap)} after it"
    )
    traffic = "all traffic" if latest.full else f"{latest.traffic:.0%} canary"
    return {
        "version": latest.version,
        "deployed_at": iso(latest.deployed_at),
        "traffic": latest.traffic,
        "commit": latest.commit,
        "deployed_by": latest.deployed_by,
        "url": latest.url,
        "text": f"since deployment of {latest.version} at {iso(latest.deployed_at)} (the breach began {when})",
        "detail": f"deployed {latest.version} ({traffic}"
        + (f", commit {latest.commit}" if latest.commit else "")
        + f", by {latest.deployed_by})"
        + (f": {latest.url}" if latest.url else ""),
    }


def _duration(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.0f} h" if minutes < 48 * 60 else f"{minutes / 1440:.0f} days"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def alert_view(alert: Alert) -> AlertView:
    """One alert inside a notification payload."""
    return {
        "id": alert.id,
        "rule": alert.rule,
        "state": alert.state,
        "severity": alert.severity,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations or {}),
        "value": alert.value,
        "started_at": iso(alert.started_at),
        "fired_at": iso(alert.fired_at),
        "resolved_at": iso(alert.resolved_at),
        "acknowledged_by": alert.acknowledged_by,
    }


def group_payload(
    event: str,
    channel: str,
    key: str,
    group_labels: Mapping[str, str],
    firing: Sequence[Alert],
    resolved: Sequence[Alert],
    now: datetime,
) -> NotificationPayload:
    alerts = sorted(firing, key=lambda a: (SEVERITY_ORDER.get(a.severity, 9), a.id)) + sorted(
        resolved, key=lambda a: a.id
    )
    return {
        "event": event,
        "channel": channel,
        "group_key": key,
        "group_labels": dict(group_labels),
        "firing_ids": sorted(a.id for a in firing),
        "sent_at": iso(now),
        "alerts": [alert_view(a) for a in alerts],
    }


def probe_payload(channel: str, now: datetime) -> NotificationPayload:
    """A notification that says it is a test, shaped like a real one so every channel renders it."""
    alert: AlertView = {
        "id": 0,
        "rule": "driftscope test notification",
        "state": "firing",
        "severity": "info",
        "labels": {"rule": "driftscope test notification", "model": "test", "severity": "info"},
        "annotations": {"summary": f"Test notification for channel {channel}: delivery works."},
        "value": None,
        "started_at": iso(now),
        "fired_at": iso(now),
        "resolved_at": None,
        "acknowledged_by": None,
    }
    return {
        "event": "test",
        "channel": channel,
        "group_key": "test",
        "group_labels": {"rule": "driftscope test notification"},
        "firing_ids": [],
        "sent_at": iso(now),
        "alerts": [alert],
    }


# --- rendering shared by the text channels (console, e-mail, Slack) --------------------------------


def title(payload: Mapping[str, Any]) -> str:
    """``[FIRING:2] feature drift · model=churn`` — Alertmanager's convention."""
    firing = [a for a in payload["alerts"] if a["state"] == "firing"]
    status = f"FIRING:{len(firing)}" if firing else "RESOLVED"
    if payload["event"] == "test":
        status = "TEST"
    labels = " ".join(f"{k}={v}" for k, v in payload.get("group_labels", {}).items() if k != "rule")
    rule = payload.get("group_labels", {}).get("rule") or ", ".join(sorted({a["rule"] for a in payload["alerts"]}))
    return f"[{status}] {rule}" + (f" · {labels}" if labels else "")


def alert_lines(alert: Mapping[str, Any]) -> list[str]:
    """The explanation of one alert as plain-text lines, most important first."""
    notes = alert.get("annotations", {})
    lines = [f"{alert['state'].upper()} ({alert['severity']}): {notes.get('summary', alert['rule'])}"]
    if notes.get("since"):
        lines.append(
            f"since {notes['since']}" + (f", resolved {alert['resolved_at']}" if alert.get("resolved_at") else "")
        )
    where = [f"monitor {notes['monitor']}"] if notes.get("monitor") else []
    if notes.get("window_start"):
        window = f"window {notes['window_start']} – {notes.get('window_end') or '?'}"
        if notes.get("reference"):
            window += f" vs reference {notes['reference']}"
        where.append(window)
    if where:
        lines.append(": ".join(where))
    if notes.get("sample_size") is not None:
        sizes = f"{notes['sample_size']} {notes.get('sample_unit', 'rows')} in window"
        if notes.get("n_current") is not None:
            sizes += f" ({notes['n_current']} tested vs {notes.get('n_reference')} in reference)"
        lines.append(sizes)
    if notes.get("top_features"):
        lines.append("top drifting features:")
    for feature in notes.get("top_features") or ():
        mark = "drifted" if feature["breached"] else "ok"
        lines.append(
            f"  {feature['feature']}: {feature['method']} {_fmt(feature['value'])} "
            f"(threshold {_fmt(feature['threshold'])}, {mark}; n={feature['n_current']} vs {feature['n_reference']})"
        )
    if outputs := notes.get("output_drift"):
        drifts = (
            f"{o['feature']} {o['method']} {_fmt(o['value'])} ({'drifted' if o['breached'] else 'ok'})" for o in outputs
        )
        lines.append("model outputs: " + ", ".join(drifts))
    if deployed := notes.get("deployment"):
        lines.append(f"{deployed['text']}: {deployed['detail']}")
    if doubt := notes.get("estimate_unreliable"):
        lines.append(
            f"{doubt['text']}: labelled windows refute the estimate, read the realized metric until one agrees again"
        )
    for estimate in notes.get("estimated_performance") or ():
        unreliable = estimate.get("unreliable")
        lines.append(
            f"estimated {estimate['method']}: {_fmt(estimate['value'])}"
            + (f" ({unreliable['text']})" if unreliable else "")
        )
    if segments := notes.get("worst_segments"):
        lines.append("worst segments:")
        lines += [_segment_line(segment) for segment in segments]
    if alert.get("acknowledged_by"):
        lines.append(f"acknowledged by {alert['acknowledged_by']}")
    if notes.get("link"):
        lines.append(notes["link"])
    return lines


def render_text(payload: Mapping[str, Any]) -> str:
    blocks = ["\n".join(alert_lines(alert)) for alert in payload["alerts"]]
    return title(payload) + "\n\n" + "\n\n".join(blocks) + "\n"
