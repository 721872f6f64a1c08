"""The read API under ``/v1``: models and their health, windows, scores, alerts and silences, rejected
records, references.

GETs need the ``read`` scope; acknowledging and silencing ``operate`` (through the same
:mod:`monitor.store.actions` the dashboard and the CLI call); uploading a reference ``admin``. A key
limited to some models sees only those: other models answer 403, and lists leave them out (alerts by
their ``model`` label; silences are shown to such a key only when they match one of its models).

Scores come in pages (``next_cursor``, keyset on ``(window_start, id)``, see
:func:`monitor.store.reads.scores_page`), as JSON or CSV (``Accept: text/csv`` or ``?format=csv``; the
cursor is then in the ``X-Next-Cursor`` header), and as a windows × features matrix for plotting.
"""

import csv
import io
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

import orjson
from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from monitor.api.app import ErrorOut, RequireScope
from monitor.config import Config
from monitor.errors import DriftscopeError
from monitor.store import actions, deployments, reads
from monitor.store.api_keys import KeyInfo
from monitor.store.segments import worst_segments

MAX_LIMIT = 10_000
# An admin uploads a training set; bounded so that a runaway client cannot fill the API host's disk.
MAX_REFERENCE_BYTES = 2 * 1024**3
MAX_ID = 2**31 - 1  # ids are 32-bit on some tables (silence); alert ids stay far below it too
UPLOAD_FORMATS = {"csv": ".csv", "csv.gz": ".csv.gz", "parquet": ".parquet"}


def _example(**example: Any) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


T0 = "2026-03-01T12:00:00Z"
T1 = "2026-03-01T13:00:00Z"


class FiringAlertOut(BaseModel):
    id: int
    rule: str
    severity: str
    since: datetime
    acknowledged: bool


class UnreliableOut(BaseModel):
    since: datetime = Field(description="Start of the first window of the current stretch of disagreement.")
    window_start: datetime = Field(description="The newest labelled window that disagreed.")
    realized: float = Field(description="Its realized value.")
    ci_lower: float = Field(description="Lower end of that window's estimate interval (estimate - 3 sampling errors).")
    ci_upper: float = Field(description="Upper end of that window's estimate interval (estimate + 3 sampling errors).")


class HealthOut(BaseModel):
    model_config = _example(
        model="churn", state="warning", exit_code=1,
        firing=[{"id": 7, "rule": "churn-drift", "severity": "warning", "since": T0, "acknowledged": False}],
        pending_alerts=0, monitor="churn-hourly", latest_window=T0, latest_window_end=T1, age_seconds=312.5,
        drifting_features=["monthly_charges", "tenure"], share_drifted=0.4, performance={"roc_auc": 0.81},
        estimated_performance={"roc_auc": 0.79}, rows_24h=24000,
        estimate_unreliable={"roc_auc": {"since": T0, "window_start": T0, "realized": 0.77, "ci_lower": 0.9,
                                         "ci_upper": 0.97}},
    )  # fmt: skip

    model: str
    state: str = Field(description="critical | warning | info (worst firing alert), ok, or 'no data'.")
    exit_code: int = Field(description="What `driftscope status` exits with: 0 healthy, 1 alerting, 2 no data.")
    firing: list[FiringAlertOut] = Field(description="Firing alerts, worst severity first.")
    pending_alerts: int
    monitor: str | None = Field(
        description="The model's primary monitor (shortest window, then name; the dashboard's default): the "
        "window, drift and performance below are its."
    )
    latest_window: datetime | None = Field(description="Start of the newest computed window.")
    latest_window_end: datetime | None
    age_seconds: float | None = Field(description="Seconds from the end of the newest computed window to now.")
    drifting_features: list[str] = Field(description="Input features whose drift breached in the newest window.")
    share_drifted: float | None
    performance: dict[str, float] = Field(description="Newest realized value of each metric.")
    estimated_performance: dict[str, float]
    estimate_unreliable: dict[str, UnreliableOut] = Field(
        description="Estimated metrics whose newest estimate is not to be trusted: the newest labelled window at "
        "or before it showed the realized value outside the estimate's interval (beyond the realized value's own "
        "sampling error), and none agreed since. Metrics absent here are trusted or not yet judged."
    )
    rows_24h: int = Field(
        description="Predictions stored in the 24 hours up to the end of the model's newest window (the "
        "dashboard's 'Rows, 24 h')."
    )


def _health_out(health: reads.Health) -> HealthOut:
    return HealthOut.model_validate(reads.health_document(health))


class ModelsOut(BaseModel):
    model_config = _example(models=[HealthOut.model_config["json_schema_extra"]["examples"][0]])  # type: ignore[index]

    models: list[HealthOut] = Field(description="Every model the key may read, with its health summary.")


class MonitorOut(BaseModel):
    name: str
    window: float = Field(description="Window length, seconds.")
    reference: dict[str, Any]
    drift: dict[str, Any] = Field(description="Drift settings (method, threshold, per-column policies).")
    performance: list[str]
    last_window: datetime | None
    last_status: str | None


class VersionRowsOut(BaseModel):
    version: str | None = Field(description="null: rows that named no version, before any full deployment.")
    rows: int = Field(description="Predictions of this version: those that named it, and those with none in its time.")
    tagged: int = Field(description="Of rows, those that named the version themselves.")


class ModelOut(BaseModel):
    model_config = _example(
        name="churn", task="binary", features={"tenure": "numeric", "plan": "categorical"}, configured=True,
        monitors=[{"name": "churn-hourly", "window": 3600, "reference": {"range": [T0, T1]},
                   "drift": {"method": "auto", "threshold": "auto"}, "performance": ["roc_auc"], "last_window": T0,
                   "last_status": "succeeded"}],
        current_version="2.0",
        versions_24h=[{"version": "2.0", "rows": 21600, "tagged": 0}, {"version": "2.1", "rows": 2400, "tagged": 2400}],
    )  # fmt: skip

    name: str
    task: str
    features: dict[str, str] = Field(description="Feature name → numeric | categorical, as stored.")
    configured: bool = Field(description="False for a model removed from the config (its history stays).")
    monitors: list[MonitorOut]
    current_version: str | None = Field(
        description="The version of the newest deployment that took all traffic (docs/versions.md); null: none "
        "recorded. Predictions that name no version belong to it."
    )
    versions_24h: list[VersionRowsOut] = Field(
        description="Versions that served in the last 24 hours, most rows first."
    )


class WindowOut(BaseModel):
    monitor: str
    window_start: datetime
    window_end: datetime
    status: str = Field(description="pending | running | succeeded | failed | insufficient_data")
    row_count: int | None
    label_count: int | None
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    error: str | None
    stale: bool = Field(description="Late data arrived; the window will be computed again.")


class WindowsOut(BaseModel):
    model_config = _example(
        windows=[{"monitor": "churn-hourly", "window_start": T0, "window_end": T1, "status": "succeeded",
                  "row_count": 1000, "label_count": 800, "attempts": 1, "started_at": T1, "finished_at": T1,
                  "duration_ms": 850.0, "error": None, "stale": False}],
    )  # fmt: skip

    windows: list[WindowOut] = Field(description="Newest first.")


class SegmentOut(BaseModel):
    segment_by: str = Field(description="The feature the window was split by, or `model_version`.")
    segment: str = Field(description="Its value (data: escape it); `(other)` pools the values beyond segment_top.")
    rows: int
    moved: float | None = Field(
        description="How far its worst score moved, 1.0 at that score's threshold (docs/detectors.md, Segments); "
        "null when it had too few rows or nothing that can breach."
    )
    breached: int = Field(description="Its drift and performance scores that breached.")
    status: str = Field(description="ok, or insufficient_data (too few rows: `reason` says how many).")
    reason: str | None
    worst_kind: str | None = Field(description="drift | performance | estimated_performance")
    worst_feature: str | None = Field(description="The feature (drift) or the metric (performance).")
    worst_method: str | None
    worst_value: float | None
    worst_threshold: float | None


class SegmentsOut(BaseModel):
    model_config = _example(
        monitor="churn-hourly",
        window_start=T0,
        segments=[{"segment_by": "channel", "segment": "partner", "rows": 170, "moved": 9.18, "breached": 5,
                   "status": "ok", "reason": None, "worst_kind": "drift", "worst_feature": "tenure",
                   "worst_method": "wasserstein", "worst_value": 0.918, "worst_threshold": 0.1}],
    )  # fmt: skip

    monitor: str | None = Field(description="The monitor read (default: the model's primary); null: none computed.")
    window_start: datetime | None = Field(description="The window ranked; null: no window has segment scores.")
    segments: list[SegmentOut] = Field(description="Worst first.")


class ScoreOut(BaseModel):
    id: int
    monitor: str
    window_start: datetime
    kind: str
    feature: str | None
    method: str
    value: float | None
    threshold: float | None
    breached: bool | None
    status: str
    reason: str | None
    estimate_unreliable: bool | None = Field(
        description="Estimated performance only (null for other kinds): the estimate is unreliable in this window, "
        "as the newest labelled window at or before it showed the realized value outside its interval."
    )


class ScoresOut(BaseModel):
    model_config = _example(
        scores=[{"id": 41, "monitor": "churn-hourly", "window_start": T0, "kind": "drift", "feature": "tenure",
                 "method": "ks", "value": 0.18, "threshold": 0.1, "breached": True, "status": "ok", "reason": None,
                 "estimate_unreliable": None}],
        next_cursor="MjAyNi0wMy0wMVQxMjowMDowMCswMDowMHw0MQ",
    )  # fmt: skip

    scores: list[ScoreOut] = Field(description="In (window_start, id) order.")
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


class MatrixOut(BaseModel):
    model_config = _example(
        windows=[T0, T1], features=["plan", "tenure"], values=[[0.02, 0.05], [0.03, 0.18]],
        breached=[[False, False], [False, True]],
    )  # fmt: skip

    windows: list[datetime] = Field(description="Row labels, oldest first.")
    features: list[str] = Field(description="Column labels.")
    values: list[list[float | None]] = Field(description="values[i][j]: feature j in window i (largest if several).")
    breached: list[list[bool | None]]


class AlertOut(BaseModel):
    id: int
    rule: str
    model: str | None
    severity: str
    state: str = Field(description="pending | firing | resolved")
    labels: dict[str, str]
    annotations: dict[str, Any]
    value: float | None
    window_start: datetime | None
    started_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    ack_comment: str | None


_ALERT_EXAMPLE = {
    "id": 7, "rule": "churn-drift", "model": "churn", "severity": "warning", "state": "firing",
    "labels": {"model": "churn", "monitor": "churn-hourly"}, "annotations": {"since": T0}, "value": 0.4,
    "window_start": T0, "started_at": T1, "fired_at": T1, "resolved_at": None, "acknowledged_by": None,
    "acknowledged_at": None, "ack_comment": None,
}  # fmt: skip


class AlertsOut(BaseModel):
    model_config = _example(alerts=[_ALERT_EXAMPLE])

    alerts: list[AlertOut] = Field(description="Newest first.")


class AlertAckOut(AlertOut):
    model_config = _example(**{**_ALERT_EXAMPLE, "acknowledged_by": "ci-bot", "acknowledged_at": T1})


class AcknowledgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"comment": "rolling back v42"}]})

    user: str | None = Field(None, max_length=200, description="Who acknowledges; default: 'apikey:<key name>'.")
    comment: str = Field("", max_length=2000)


class SilenceOut(BaseModel):
    model_config = _example(
        id=3, matchers={"model": "churn", "rule": "churn-drift"}, starts_at=T0, ends_at=T1, created_by="apikey:ops",
        comment="planned migration", created_at=T0, active=True,
    )  # fmt: skip

    id: int
    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime
    active: bool


class SilencesOut(BaseModel):
    model_config = _example(silences=[SilenceOut.model_config["json_schema_extra"]["examples"][0]])  # type: ignore[index]

    silences: list[SilenceOut]


class SilenceIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"matchers": {"model": "churn"}, "duration_minutes": 120, "comment": "planned migration"}]
        },
    )

    matchers: dict[str, str] = Field(description="label → value (* matches any); every label must match.")
    starts_at: datetime | None = Field(None, description="Default: now.")
    ends_at: datetime | None = Field(None, description="Give this or duration_minutes.")
    duration_minutes: float | None = Field(None, gt=0, le=366 * 24 * 60)
    comment: str = Field(max_length=2000, description="Why: what the next on-call reads.")
    author: str | None = Field(None, max_length=200, description="Default: 'apikey:<key name>'.")


class RejectedOut(BaseModel):
    id: int
    received_at: datetime
    source: str
    record_ref: str | None
    field: str | None = Field(description="The offending field ('' = the whole record).")
    reason: str
    payload: str | None = Field(description="The record as received (truncated).")


class RejectedPageOut(BaseModel):
    model_config = _example(
        rejected=[{"id": 12, "received_at": T0, "source": "api", "record_ref": "r17", "field": "features.tenure",
                   "reason": 'expected number, got "abc"', "payload": '{"id": "r17"}'}],
        next_cursor="12",
    )  # fmt: skip

    rejected: list[RejectedOut] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as ?cursor= for older ones; null when there are no more.")


class ReferenceOut(BaseModel):
    name: str
    kind: str = Field(description="dataset (uploaded) or the cached profile of a monitor's range/dataset")
    spec: dict[str, Any]
    row_count: int | None
    profile_key: str | None = Field(description="Hash of what the profile depends on; changes when it must refresh.")
    created_at: datetime
    profiled_at: datetime | None
    age_seconds: float = Field(description="Seconds since it was profiled (else stored).")


class ReferencesOut(BaseModel):
    model_config = _example(
        references=[{"name": "train.csv", "kind": "dataset", "spec": {"dataset": "train.csv"}, "row_count": 50000,
                     "profile_key": "9f2c…", "created_at": T0, "profiled_at": None, "age_seconds": 86400.0}],
    )  # fmt: skip

    references: list[ReferenceOut]


class CanaryFindingOut(BaseModel):
    check: str = Field(description="prediction_drift | feature_drift | estimated_performance | realized_performance | "
                       "service_metric")  # fmt: skip
    name: str = Field(description="The column, metric or service metric compared.")
    slice: str | None = Field(description="'feature=value' for one slice; null for all the rows.")
    candidate: float | None
    baseline: float | None
    difference: float | None = Field(description="candidate - baseline; for distributions the effect (KS D, TVD).")
    ci: list[float] | None = Field(description="Bootstrap interval of the difference (realized performance).")
    p_value: float | None
    threshold: float | None
    worse: bool = Field(description="This comparison fails the gate.")
    status: str
    message: str
    details: dict[str, Any]


class CanaryNeedOut(BaseModel):
    version: str
    role: str = Field(description="candidate or baseline")
    what: str = Field(description="rows or labels")
    have: int
    need: int
    more: int
    per_minute: float | None = Field(description="The version's current rate in the range.")
    eta_seconds: float | None = Field(description="About how long `more` takes at that rate.")
    message: str


class CanaryOut(BaseModel):
    model_config = _example(
        model="churn", candidate="2.1", baseline="2.0", start=T0, end=T1, verdict="worse", exit_code=1,
        reasons=["score distribution in region=eu of 2.1 differs from 2.0's: KS D 0.94 (fails at ≥ 0.1 with "
                 "p < 0.00333), p=1.5e-169; mean 0.812 vs 0.208; 194 vs 989 rows"],
        rows={"candidate": 600, "baseline": 3000}, labels={"candidate": 0, "baseline": 0},
        candidate_traffic_share=0.167, needs=[],
        findings=[{"check": "prediction_drift", "name": "score", "slice": "region=eu", "candidate": 0.812,
                   "baseline": 0.208, "difference": 0.94, "ci": None, "p_value": 1.5e-169, "threshold": 0.1,
                   "worse": True, "status": "ok", "message": "score distribution in region=eu of 2.1 differs …",
                   "details": {"method": "ks"}}],
        notes=["service metrics: not compared (no canary.service_metrics configured)"],
    )  # fmt: skip

    model: str
    candidate: str
    baseline: str
    start: datetime
    end: datetime
    verdict: str = Field(description="promote | worse | not enough data")
    exit_code: int = Field(description="What `driftscope canary` exits with: 0 promote, 1 worse, 2 not enough data.")
    reasons: list[str] = Field(description="The failed comparisons (worse) or what is missing (not enough data).")
    rows: dict[str, int]
    labels: dict[str, int]
    candidate_traffic_share: float | None
    needs: list[CanaryNeedOut]
    findings: list[CanaryFindingOut]
    notes: list[str] = Field(description="What was skipped and why.")


class UploadOut(BaseModel):
    model_config = _example(name="train.csv", model="churn", rows=50000)

    name: str
    model: str
    rows: int


_DEPLOYMENT_EXAMPLE = {
    "id": 4, "model": "churn", "version": "2.1", "deployed_at": T0, "traffic": 0.1, "commit": "9f2c1ab",
    "url": "https://ci.example.com/runs/812", "deployed_by": "apikey:ci", "note": "canary", "created_at": T0,
}  # fmt: skip


class DeploymentOut(BaseModel):
    model_config = _example(**_DEPLOYMENT_EXAMPLE)

    id: int
    model: str
    version: str
    deployed_at: datetime
    traffic: float | None = Field(description="Share of traffic the version got, in (0, 1]; null: all of it.")
    commit: str | None
    url: str | None = Field(description="The pipeline run (http or https).")
    deployed_by: str = Field(description="'apikey:<key name>' through the API, the user through the CLI.")
    note: str | None
    created_at: datetime


class ReferenceApprovedOut(BaseModel):
    model_config = _example(
        name="train.parquet@2.1", model="churn", version="2.1", rows=50000, created_at=T0,
        approved_at=T1, approved_by="apikey:ci", approval="approved", changed=True,
    )  # fmt: skip

    name: str
    model: str
    version: str | None = Field(description="The model version it is the reference of; null: every version.")
    rows: int | None
    created_at: datetime = Field(description="When it was uploaded.")
    approved_at: datetime | None
    approved_by: str | None = Field(description="'apikey:<key name>' through the API, the user through the CLI.")
    approval: Literal["waiting", "approved", "at upload"]
    changed: bool = Field(description="false: it was approved already; who and when stay the first approval's.")


class DeploymentsOut(BaseModel):
    model_config = _example(deployments=[_DEPLOYMENT_EXAMPLE])

    deployments: list[DeploymentOut] = Field(description="Newest first.")


class DeploymentIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"version": "2.1", "commit": "9f2c1ab", "url": "https://ci.example.com/runs/812", "traffic": "10%"}
            ]
        },
    )

    version: str = Field(description="The version deployed: 1 to 100 printable characters.")
    deployed_at: datetime | None = Field(None, description="When it went live; default: now.")
    traffic: float | str | None = Field(
        None, description="Share of traffic, 0.1 or '10%' (a canary), in (0, 1]; null: all of it."
    )
    commit: str | None = Field(None, max_length=100)
    url: str | None = Field(None, max_length=2000, description="The pipeline run (http or https).")
    note: str | None = Field(None, max_length=2000)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    why = {
        400: "a bad parameter (cursor, time range, upload)",
        401: "missing or invalid API key",
        403: "the key lacks the scope, or may not read this model",
        404: "unknown model, alert or silence",
        409: "the action does not apply (alert resolved)",
        413: "upload larger than the limit",
        422: "malformed parameters (FastAPI's validation: a list of {loc, msg, type})",
        429: "too many failed authentications",
        503: "the store is unavailable, retry later",
    }
    return {s: {"model": ErrorOut, "description": why[s]} for s in (401, 403, 422, 429, 503, *statuses)}


def _utc(moment: datetime | None, name: str) -> datetime | None:
    if moment is None:
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise HTTPException(400, f"{name}: out of range") from None


Since = Annotated[datetime | None, Query(description="Inclusive start (ISO 8601; no offset means UTC).")]
Until = Annotated[datetime | None, Query(description="Exclusive end (ISO 8601; no offset means UTC).")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def add_read_routes(
    app: FastAPI, config: Config, engine: Engine, authenticate: Callable[[str | None], KeyInfo]
) -> None:
    """Add the read routes over ``engine`` to ``app``; ``authenticate`` is the API's, so its failure limiter
    applies. On the app's own router: FastAPI includes a separate router lazily, as one opaque entry of
    ``app.routes``, which would hide these routes from the route inventory."""
    router = app.router

    @app.exception_handler(StarletteHTTPException)
    async def allow_every_method(request: Request, exc: StarletteHTTPException) -> Response:
        # Starlette's 405 names the methods of the first route of the path only; /v1/silences has two routes.
        if exc.status_code == 405:
            allowed = {
                method
                for route in app.routes
                if isinstance(route, APIRoute) and route.path_regex.match(request.url.path)
                for method in route.methods or ()
            }
            exc = StarletteHTTPException(405, exc.detail, {**(exc.headers or {}), "Allow": ", ".join(sorted(allowed))})
        return await http_exception_handler(request, exc)

    ReadKey = Annotated[KeyInfo, Depends(RequireScope("read", authenticate))]
    OperateKey = Annotated[KeyInfo, Depends(RequireScope("operate", authenticate))]
    AdminKey = Annotated[KeyInfo, Depends(RequireScope("admin", authenticate))]
    # Deployment pipelines hold operate keys, platform admins admin keys: either records a deployment.
    DeployKey = Annotated[KeyInfo, Depends(RequireScope("operate", authenticate, also=("admin",)))]

    @contextmanager
    def reading() -> Iterator[Connection]:
        with engine.connect() as conn:
            yield conn

    def model_row(conn: Connection, model: str, key: KeyInfo) -> reads.ModelRow:
        if not key.allows(model):
            raise HTTPException(403, f"this API key may not read model {model!r}")
        row = reads.model_by_name(conn, model)
        if row is None:
            known = [m.name for m in reads.models(conn, key.models)]
            raise HTTPException(404, {"message": f"unknown model {model!r}", "known_models": known})
        return row

    @router.get("/v1/models", response_model=ModelsOut, tags=["read"], responses=_errors())
    def list_models(key: ReadKey) -> ModelsOut:
        """Every model the key may read, with its health summary (as the dashboard's overview shows it)."""
        now = datetime.now(UTC)
        with reading() as conn:
            rows = reads.models(conn, key.models)
            return ModelsOut(models=[_health_out(reads.model_health(conn, m, now)) for m in rows])

    @router.get("/v1/models/{model}", response_model=ModelOut, tags=["read"], responses=_errors(404))
    def get_model(model: str, key: ReadKey) -> ModelOut:
        """One model: its feature schema and its monitors with their newest window."""
        with reading() as conn:
            row = model_row(conn, model, key)
            last = {w.monitor: w for w in reads.windows(conn, row.id, limit=MAX_LIMIT)[::-1]}
        monitors = [
            MonitorOut(
                name=name,
                window=spec.window.total_seconds(),
                reference=spec.reference.model_dump(mode="json", exclude_none=True),
                drift=spec.drift.model_dump(mode="json"),
                performance=list(spec.performance),
                last_window=last[name].window_start if name in last else None,
                last_status=last[name].status if name in last else None,
            )
            for name, spec in sorted(config.monitors.items())
            if spec.model == model
        ]
        now = datetime.now(UTC)
        with reading() as conn:
            current = deployments.version_at(conn, row.id, now)
            seen = deployments.versions_seen(conn, row.id, now - timedelta(hours=24), now)
        return ModelOut(
            name=row.name, task=row.task, features=row.features, configured=model in config.models, monitors=monitors,
            current_version=current, versions_24h=[VersionRowsOut(**asdict(v)) for v in seen],
        )  # fmt: skip

    @router.get("/v1/models/{model}/health", response_model=HealthOut, tags=["read"], responses=_errors(404))
    def get_health(model: str, key: ReadKey) -> HealthOut:
        """Everything a deployment gate asks in one call: state, firing alerts, newest window and its age,
        drifting features, performance. `driftscope status --model M` prints the same."""
        with reading() as conn:
            return _health_out(reads.model_health(conn, model_row(conn, model, key)))

    @router.get("/v1/models/{model}/canary", response_model=CanaryOut, tags=["read"], responses=_errors(400, 404))
    def get_canary(
        model: str,
        key: ReadKey,
        candidate: Annotated[str, Query(min_length=1, max_length=100, description="The new version.")],
        baseline: Annotated[str, Query(min_length=1, max_length=100, description="The version it would replace.")],
        since: Annotated[
            str | None,
            Query(
                max_length=64,
                description="A duration back from now (30m, 1h) or an ISO time; default: the candidate's newest "
                "recorded deployment, else 1h. Further back than the canary's limit (docs/versions.md, Which "
                "rows): 400.",
            ),
        ] = None,
    ) -> CanaryOut:
        """The canary gate: is the candidate version worse than the baseline over the same range? The verdict
        of `driftscope canary` (docs/versions.md, Canary gate)."""
        from monitor.runs.canary import parse_since, run_canary  # NumPy and SciPy: only when asked

        with reading() as conn:
            model_row(conn, model, key)
        if model not in config.models:
            known = sorted(config.models)
            raise HTTPException(404, {"message": f"model {model!r} is not in the config", "known_models": known})
        try:
            verdict = run_canary(
                engine, config, model, candidate, baseline, since=None if since is None else parse_since(since)
            )
        except (DriftscopeError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from None
        return CanaryOut.model_validate(verdict.to_dict())

    @router.get("/v1/models/{model}/windows", response_model=WindowsOut, tags=["read"], responses=_errors(400, 404))
    def get_windows(
        model: str,
        key: ReadKey,
        monitor: str | None = None,
        status: str | None = None,
        since: Since = None,
        until: Until = None,
        limit: Limit = 1000,
    ) -> WindowsOut:
        """Runs of the model's monitors (one per window): status, row and label counts, duration, error."""
        start, end = _utc(since, "since"), _utc(until, "until")
        with reading() as conn:
            row = model_row(conn, model, key)
            found = reads.windows(conn, row.id, monitor=monitor, since=start, until=end, status=status, limit=limit)
        return WindowsOut(windows=[WindowOut(**asdict(w)) for w in found])

    @router.get("/v1/models/{model}/segments", response_model=SegmentsOut, tags=["read"], responses=_errors(400, 404))
    def get_segments(
        model: str,
        key: ReadKey,
        monitor: str | None = None,
        window: Annotated[
            datetime | None, Query(description="The window's start; default: the newest with segments.")
        ] = None,
        feature: Annotated[str | None, Query(description="Rank by this feature's drift alone.")] = None,
        limit: Limit = 100,
    ) -> SegmentsOut:
        """A window's segments ranked by how far they moved (the dashboard's "Where is it worst";
        docs/detectors.md, Segments)."""
        start = _utc(window, "window")
        with reading() as conn:
            row = model_row(conn, model, key)
            computed = [m.name for m in reads.model_monitors(conn, row.id)]
            if monitor is not None and monitor not in computed:
                raise HTTPException(404, {"message": f"no computed window of monitor {monitor!r} for model {model!r}",
                                          "known_monitors": computed})  # fmt: skip
            name = monitor or (computed[0] if computed else None)
            if name is None:
                return SegmentsOut(monitor=None, window_start=None, segments=[])
            found, ranked = worst_segments(conn, name, start, feature=feature, limit=limit)
        segments = [
            SegmentOut(moved=r.severity, **{k: v for k, v in asdict(r).items() if k != "severity"}) for r in ranked
        ]
        return SegmentsOut(monitor=name, window_start=found, segments=segments)

    def score_filter(
        conn: Connection,
        model: str,
        key: KeyInfo,
        monitor: str | None,
        kind: str | None,
        feature: str | None,
        method: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> reads.ScoreFilter:
        model_id = model_row(conn, model, key).id
        return reads.ScoreFilter(model_id, monitor, kind, feature, method, _utc(since, "since"), _utc(until, "until"))

    @router.get(
        "/v1/models/{model}/scores",
        response_model=ScoresOut,
        tags=["read"],
        responses={
            200: {
                "content": {"text/csv": {"schema": {"type": "string"}, "example": "id,monitor,window_start,...\n"}},
                "description": "A page of scores; with CSV the next cursor is in the X-Next-Cursor header.",
            },
            **_errors(400, 404),
        },
    )
    def get_scores(
        model: str,
        request: Request,
        key: ReadKey,
        monitor: str | None = None,
        kind: Annotated[str | None, Query(description="drift, quality, performance, estimated_performance…")] = None,
        feature: str | None = None,
        method: str | None = None,
        since: Since = None,
        until: Until = None,
        limit: Limit = 1000,
        cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")] = None,
        format: Literal["json", "csv"] | None = None,
    ) -> Any:
        """Scores in (window_start, id) order, a page at a time: keyset pagination, so rows that workers
        write meanwhile never shift or repeat a page."""
        with reading() as conn:
            where = score_filter(conn, model, key, monitor, kind, feature, method, since, until)
            try:
                rows, next_cursor = reads.scores_page(conn, where, after=cursor, limit=limit)
            except reads.CursorError as exc:
                raise HTTPException(400, str(exc)) from None
        wants_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
        if wants_csv:
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(reads.SCORE_FIELDS)
            for r in rows:
                writer.writerow([_csv_cell(getattr(r, c)) for c in reads.SCORE_FIELDS])
            headers = {"X-Next-Cursor": next_cursor} if next_cursor else {}
            return Response(out.getvalue(), media_type="text/csv", headers=headers)
        # ScoresOut documents the body; building and validating a model per row cost ~0.1 ms each (0.5 s a
        # page of 5,000), orjson writes the same JSON from the rows directly (datetimes in UTC with Z).
        body = orjson.dumps({"scores": rows, "next_cursor": next_cursor}, option=orjson.OPT_UTC_Z)
        return Response(body, media_type="application/json")

    @router.get(
        "/v1/models/{model}/scores/matrix", response_model=MatrixOut, tags=["read"], responses=_errors(400, 404)
    )
    def get_score_matrix(
        model: str,
        key: ReadKey,
        kind: str = "drift",
        monitor: str | None = None,
        method: str | None = None,
        since: Since = None,
        until: Until = None,
        max_windows: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
    ) -> MatrixOut:
        """Per-feature scores as a windows × features matrix (the newest max_windows windows), for plotting."""
        with reading() as conn:
            where = score_filter(conn, model, key, monitor, kind, None, method, since, until)
            matrix = reads.score_matrix(conn, where, max_windows)
        return MatrixOut(**asdict(matrix))

    @router.get(
        "/v1/models/{model}/rejected", response_model=RejectedPageOut, tags=["read"], responses=_errors(400, 404)
    )
    def get_rejected(
        model: str,
        key: ReadKey,
        since: Since = None,
        until: Until = None,
        limit: Limit = 500,
        cursor: Annotated[str | None, Query(max_length=30, pattern=r"^[0-9]{1,18}$")] = None,
    ) -> RejectedPageOut:
        """Records of the model that were refused, newest first, with the field and the reason."""
        if not key.allows(model):
            raise HTTPException(403, f"this API key may not read model {model!r}")
        with reading() as conn:
            # Rejections name models as sent, known or not: a client sees why its records to a typo'd model failed.
            rows = reads.rejected(
                conn, model, since=_utc(since, "since"), until=_utc(until, "until"),
                before_id=int(cursor) if cursor else None, limit=limit + 1,
            )  # fmt: skip
        more = len(rows) > limit
        rows = rows[:limit]
        return RejectedPageOut(
            rejected=[RejectedOut(**asdict(r)) for r in rows], next_cursor=str(rows[-1].id) if more else None
        )

    @router.get("/v1/models/{model}/references", response_model=ReferencesOut, tags=["read"], responses=_errors(404))
    def get_references(model: str, key: ReadKey) -> ReferencesOut:
        """The model's uploaded datasets and cached profiles, with their key and age."""
        now = datetime.now(UTC)
        with reading() as conn:
            found = reads.references(conn, model_row(conn, model, key).id)
        return ReferencesOut(
            references=[
                ReferenceOut(**asdict(r), age_seconds=(now - (r.profiled_at or r.created_at)).total_seconds())
                for r in found
            ]
        )

    @router.put(
        "/v1/models/{model}/references/{name}",
        response_model=UploadOut,
        tags=["admin"],
        responses=_errors(400, 404, 413),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            }
        },
    )
    async def put_reference(
        model: str,
        name: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")],
        request: Request,
        key: AdminKey,
        format: Literal["csv", "csv.gz", "parquet"] = "csv",
    ) -> UploadOut:
        """Upload a reference dataset (CSV, gzipped CSV or Parquet as the body), checked against the model's
        schema like `driftscope reference upload`; replaces a dataset of the same name."""
        from monitor.runs.references import upload_dataset  # pandas and pyarrow: only when someone uploads

        if not key.allows(model):
            raise HTTPException(403, f"this API key may not write to model {model!r}")
        if model not in config.models:
            raise HTTPException(404, {"message": f"unknown model {model!r}", "known_models": sorted(config.models)})
        with tempfile.TemporaryDirectory(prefix="driftscope-upload-") as directory:
            path = FilePath(directory) / f"upload{UPLOAD_FORMATS[format]}"
            size = 0
            with path.open("wb") as out:  # streamed to disk: a training set need not fit in memory twice
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_REFERENCE_BYTES:
                        raise HTTPException(413, f"upload larger than {MAX_REFERENCE_BYTES} bytes")
                    out.write(chunk)
            try:
                stored, rows = await run_in_threadpool(upload_dataset, engine, config, model, path, name=name)
            except DriftscopeError as exc:
                raise HTTPException(400, str(exc).replace(str(path), name)) from None
        return UploadOut(name=stored, model=model, rows=rows)

    @router.post(
        "/v1/models/{model}/references/{name}/approve",
        response_model=ReferenceApprovedOut,
        tags=["operate"],
        responses=_errors(404),
    )
    def approve_reference(
        model: str, name: Annotated[str, Path(min_length=1, max_length=200)], key: DeployKey
    ) -> ReferenceApprovedOut:
        """Approve an uploaded reference (`driftscope reference approve`; an `operate` or `admin` key, recorded as
        the approver): monitors with `reference: {version: current}` use it from their next window."""
        from monitor.store.references import approve_reference

        with reading() as conn:
            model_row(conn, model, key)
        try:
            row, changed = approve_reference(engine, model, name, by=f"apikey:{key.name}")
        except actions.ActionError as exc:
            raise HTTPException(404, str(exc)) from None
        return ReferenceApprovedOut(
            name=row.name, model=model, version=row.version, rows=row.rows, created_at=row.created_at,
            approved_at=row.approved_at, approved_by=row.approved_by, approval=row.approval, changed=changed,
        )  # fmt: skip

    # --- alerts and silences --------------------------------------------------------------------

    @router.get("/v1/alerts", response_model=AlertsOut, tags=["read"], responses=_errors(400))
    def list_alerts(
        key: ReadKey,
        state: Annotated[list[Literal["pending", "firing", "resolved"]] | None, Query()] = None,
        model: str | None = None,
        severity: str | None = None,
        rule: str | None = None,
        since: Annotated[datetime | None, Query(description="Keep alerts still open at or after this time.")] = None,
        until: Annotated[datetime | None, Query(description="Keep alerts started before this time.")] = None,
        limit: Limit = 500,
    ) -> AlertsOut:
        """Alerts, newest first; a key limited to some models sees only alerts labelled with one of them."""
        with reading() as conn:
            rows = reads.alerts(
                conn, states=state or (), model=model, severity=severity, rule=rule, since=_utc(since, "since"),
                until=_utc(until, "until"), allowed=key.models, limit=limit,
            )  # fmt: skip
        return AlertsOut(alerts=[AlertOut(**asdict(a)) for a in rows])

    @router.post(
        "/v1/alerts/{alert_id}/acknowledge",
        response_model=AlertAckOut,
        tags=["operate"],
        responses=_errors(400, 404, 409),  # 400: a body that is not JSON
    )
    def acknowledge_alert(
        alert_id: Annotated[int, Path(ge=1, le=MAX_ID)],
        key: OperateKey,
        body: Annotated[AcknowledgeIn, Body()] = AcknowledgeIn(),
    ) -> AlertAckOut:
        """Acknowledge a pending or firing alert (stops its repeat notifications); a second time keeps the first."""
        with reading() as conn:
            alert = reads.alert_by_id(conn, alert_id)
        if alert is None or (key.models is not None and alert.model not in key.models):
            raise HTTPException(404, f"no alert {alert_id}")
        try:
            actions.acknowledge(engine, alert_id, body.user or f"apikey:{key.name}", body.comment)
        except actions.ActionError as exc:
            raise HTTPException(409, str(exc)) from None
        with reading() as conn:
            return AlertAckOut(**asdict(reads.alert_by_id(conn, alert_id)))  # type: ignore[arg-type]

    def silence_allowed(matchers: dict[str, str], key: KeyInfo) -> bool:
        return key.models is None or matchers.get("model") in key.models

    @router.get("/v1/silences", response_model=SilencesOut, tags=["read"], responses=_errors())
    def list_silences(
        key: ReadKey,
        active: Annotated[bool, Query(description="Only those in force now.")] = True,
        limit: Limit = 500,
    ) -> SilencesOut:
        """Silences, those ending last first."""
        now = datetime.now(UTC)
        with reading() as conn:
            rows = reads.silences(conn, active_at=now if active else None, limit=limit)
        return SilencesOut(silences=[_silence_out(s, now) for s in rows if silence_allowed(s.matchers, key)])

    @router.post("/v1/silences", response_model=SilenceOut, status_code=201, tags=["operate"], responses=_errors(400))
    def create_silence(body: SilenceIn, key: OperateKey) -> SilenceOut:
        """Mute the alerts whose labels match every matcher, from starts_at (default now) to ends_at."""
        if not silence_allowed(body.matchers, key):
            raise HTTPException(403, "this API key may only silence its own models: give matchers.model")
        starts = _utc(body.starts_at, "starts_at") or datetime.now(UTC)
        if (body.ends_at is None) == (body.duration_minutes is None):
            raise HTTPException(400, "give ends_at or duration_minutes (one of them)")
        try:
            ends = _utc(body.ends_at, "ends_at") or starts + timedelta(minutes=body.duration_minutes or 0)
        except OverflowError:
            raise HTTPException(400, "ends_at: out of range") from None
        try:
            silence_id = actions.create_silence(
                engine, body.matchers, starts, ends, body.author or f"apikey:{key.name}", body.comment
            )
        except actions.ActionError as exc:
            raise HTTPException(400, str(exc)) from None
        with reading() as conn:
            return _silence_out(reads.silence_by_id(conn, silence_id), datetime.now(UTC))  # type: ignore[arg-type]

    @router.post(
        "/v1/silences/{silence_id}/expire", response_model=SilenceOut, tags=["operate"], responses=_errors(404)
    )
    def expire_silence(silence_id: Annotated[int, Path(ge=1, le=MAX_ID)], key: OperateKey) -> SilenceOut:
        """End a silence now; one already over stays as it was."""
        with reading() as conn:
            silence = reads.silence_by_id(conn, silence_id)
        if silence is None or not silence_allowed(silence.matchers, key):
            raise HTTPException(404, f"no silence {silence_id}")
        actions.expire_silence(engine, silence_id)
        with reading() as conn:
            return _silence_out(reads.silence_by_id(conn, silence_id), datetime.now(UTC))  # type: ignore[arg-type]

    @router.get(
        "/v1/models/{model}/deployments",
        response_model=DeploymentsOut,
        tags=["read"],
        responses=_errors(400, 404),
    )
    def get_deployments(model: str, key: ReadKey, since: Since = None, until: Until = None, limit: Limit = 500) -> Any:
        """The model's deployments (`driftscope deploy record`), newest first: the dashboard's markers."""
        start, end = _utc(since, "since"), _utc(until, "until")
        with reading() as conn:
            row = model_row(conn, model, key)
            found = deployments.deployments(conn, row.id, since=start, until=end, limit=limit)
        return DeploymentsOut(deployments=[DeploymentOut(**d.to_dict()) for d in found])

    @router.post(
        "/v1/models/{model}/deployments",
        response_model=DeploymentOut,
        status_code=201,
        tags=["operate"],
        responses=_errors(400, 404),
    )
    def record_deployment(model: str, body: DeploymentIn, key: DeployKey) -> Any:
        """Record that a version went live (an `operate` or `admin` key; `deployed_by` is the key's name)."""
        with reading() as conn:
            model_row(conn, model, key)
        try:
            row = deployments.record_deployment(
                engine, model, body.version, deployed_by=f"apikey:{key.name}",
                at=_utc(body.deployed_at, "deployed_at"), traffic=body.traffic, commit=body.commit, url=body.url,
                note=body.note,
            )  # fmt: skip
        except deployments.DeploymentError as exc:
            raise HTTPException(400, str(exc)) from None
        return DeploymentOut(**row.to_dict())


def _silence_out(silence: reads.SilenceRow, now: datetime) -> SilenceOut:
    return SilenceOut(**asdict(silence), active=silence.active(now))


def _csv_cell(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
