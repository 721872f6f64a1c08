"""The HTTP ingestion API (FastAPI): ``POST /v1/models/{model}/predictions`` and ``.../labels``.

A body is a JSON array of canonical records (see :mod:`monitor.ingest`), or NDJSON (one record per
line, ``Content-Type: application/x-ndjson``) where even a line that is not JSON is rejected on its
own. The response lists the rejected records by index, each with all its problems; the good ones are
committed before the 200 is sent. A batch in which every record was rejected answers 422 with the same
body: nothing was stored, and a retry would be rejected again. ``Idempotency-Key`` makes a retried
batch return the first answer without writing.

Every route declares its access (:func:`route_access`): a :class:`RequireScope` dependency, a key with
that scope in ``Authorization: Bearer <key>``, or :class:`Public` with the reason it needs none
(``/healthz``, ``/readyz``, ``/metrics``, the OpenAPI docs). A failed authentication is a 401 that says
nothing about why; repeated failures under one key prefix (or with unknown prefixes) get 429 for a
while, never a valid key (see FailureLimiter).
"""

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from starlette.routing import BaseRoute

from monitor.config import Config
from monitor.ingest import IngestResult, UnknownModelError, UnparsableRecord, ingest_labels, ingest_predictions
from monitor.ingest.records import parse_json
from monitor.metrics.exporter import metrics_asgi_app
from monitor.store.api_keys import FailureLimiter, KeyInfo, Scope, verify_api_key

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Public:
    """The dependency of a route that answers without credentials; ``reason`` says why it may."""

    reason: str

    def __call__(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class RequireScope:
    """The dependency of a route that needs a valid key with ``scope`` (or one of ``also``): 401 without a
    key, 403 without the scope."""

    scope: Scope
    # Part of equality: typing caches Annotated[..., Depends(x)] by equal arguments, so with an equal
    # RequireScope a second app (another store) would get the first one's authentication.
    authenticate: Callable[[str | None], KeyInfo] = field(repr=False)
    also: tuple[Scope, ...] = ()  # scopes that do as well (recording a deployment: operate or admin)

    @property
    def accepted(self) -> tuple[Scope, ...]:
        return (self.scope, *self.also)

    def __call__(self, authorization: Annotated[str | None, Header()] = None) -> KeyInfo:
        key = self.authenticate(authorization)
        if not any(scope in key.scopes for scope in self.accepted):
            raise HTTPException(403, f"this API key lacks the {' or '.join(map(repr, self.accepted))} scope")
        return key


Access = Public | RequireScope

# Routes that FastAPI and Starlette add cannot take a dependency: their access is declared here, by path.
_DOCS = "describes the code (the same in every deployment, no data); clients and API testers read it"
UNDECLARABLE_ROUTES: dict[str, Access] = {
    "/metrics": Public(
        "Prometheus scrapes without credentials; aggregate counts and scores only (docs/operations.md restricts it)"
    ),
    "/openapi.json": Public(_DOCS),
    "/docs": Public(_DOCS),
    "/docs/oauth2-redirect": Public(_DOCS),
    "/redoc": Public(_DOCS),
}


def route_access(route: BaseRoute) -> Access | None:
    """What ``route`` requires of its caller as it declares it; None if it declares nothing (a bug)."""
    if isinstance(route, APIRoute):
        declared = [d.call for d in route.dependant.dependencies if isinstance(d.call, Public | RequireScope)]
        return declared[0] if len(declared) == 1 else None
    return UNDECLARABLE_ROUTES.get(getattr(route, "path", ""))


NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")
SDK_USER_AGENT = "driftscope-sdk"


class CanonicalPrediction(BaseModel):
    """One prediction record (for the docs; bodies are validated by monitor.ingest)."""

    id: str | int = Field(description="Unique per model; a repeated id is stored once.")
    timestamp: str | float = Field(description="ISO-8601 (no offset means UTC) or epoch seconds/milliseconds.")
    features: dict[str, float | str | None] = Field(description="Every configured feature; missing means null.")
    prediction: str | int | float
    score: float | dict[str, float] | None = None
    label: str | int | float | None = None
    model_version: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="The version of the model that made it (printable, 1 to 100 characters); absent: the version"
        " deployed at its timestamp (docs/versions.md).",
        examples=["2.1"],
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "req-1",
                    "timestamp": "2026-01-01T12:00:00Z",
                    "features": {"tenure": 12, "plan": "pro"},
                    "prediction": 1,
                    "score": 0.83,
                    "model_version": "2.1",
                }
            ]
        }
    }


class CanonicalLabel(BaseModel):
    id: str | int
    label: str | int | float
    timestamp: str | float | None = Field(None, description="When the truth became known; default: now.")


class ProblemOut(BaseModel):
    field: str = Field(description='The offending path ("" = the whole record).')
    reason: str


class RejectionOut(BaseModel):
    index: int = Field(description="Position of the record in the batch (NDJSON: non-empty line).")
    field: str = Field(description="The first problem's field (see problems for all).")
    reason: str = Field(description="The first problem's reason.")
    record_ref: str | None
    message: str = Field(
        description="Every problem, '; '-separated.",
        examples=['[3].features.tenure: expected number, got "abc"; [3].prediction: required field is null'],
    )
    problems: list[ProblemOut] = Field(description="Every problem of the record, in check order.")


class IngestResponse(BaseModel):
    accepted: int
    rejected: list[RejectionOut]
    replayed: bool = False


class ErrorOut(BaseModel):
    detail: str | dict[str, Any] | list[dict[str, Any]] = Field(
        description="Why: a sentence; for an unknown model {message, known_models}; for a malformed request"
        " (FastAPI's validation) a list of {loc, msg, type}."
    )


def _body_doc(record: type[BaseModel]) -> dict[str, Any]:
    schema = record.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": schema}},
                "application/x-ndjson": {"schema": schema},
            },
        }
    }


def _split_body(body: bytes, content_type: str) -> list[Any]:
    """Records of a JSON array or NDJSON body; raises ValueError when a JSON body is not an array."""
    if content_type.split(";")[0].strip().lower() in NDJSON_TYPES:
        records: list[Any] = []
        for line in body.split(b"\n"):
            if not line.strip():
                continue
            try:
                records.append(parse_json(line))
            except ValueError as exc:
                raw = line[:2000].decode("utf-8", errors="replace")
                records.append(UnparsableRecord(f"not valid JSON: {exc}", raw))
        return records
    try:
        parsed = parse_json(body)
    except ValueError as exc:
        raise ValueError(f"body is not valid JSON (UTF-8): {exc}") from None
    if not isinstance(parsed, list):
        raise ValueError(f"expected a JSON array of records, got a JSON {type(parsed).__name__}")
    return parsed


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = HTTPException(413, f"request body larger than {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: Config, engine: Engine) -> FastAPI:
    """The API over ``engine`` for the models in ``config``; opens nothing until a request needs it."""
    app = FastAPI(
        title="Driftscope ingestion API",
        version="1",
        description="Push prediction logs and late labels. Every route but health checks needs a Bearer API key.",
    )
    limiter = FailureLimiter(engine)
    unauthorized = HTTPException(401, "invalid or missing API key", headers={"WWW-Authenticate": "Bearer"})

    def authenticate(authorization: Annotated[str | None, Header()] = None) -> KeyInfo:
        scheme, _, presented = (authorization or "").partition(" ")
        verification = verify_api_key(engine, presented.strip()) if scheme.lower() == "bearer" else None
        if verification is not None and verification.key is not None:
            return verification.key  # before the limiter: someone else's failures never refuse a valid key
        if verification is not None and verification.bucket is not None:
            wait = limiter.retry_after(verification.bucket)
            if wait is not None:
                raise HTTPException(429, "too many failed authentications", headers={"Retry-After": str(int(wait) + 1)})
            limiter.record_failure(verification.bucket)
        raise unauthorized

    IngestKey = Annotated[KeyInfo, Depends(RequireScope("ingest", authenticate))]

    @app.exception_handler(DBAPIError)
    async def store_unavailable(_request: Request, exc: DBAPIError) -> JSONResponse:
        # Nothing was committed; a retry (the SDK does) is safe. The detail never carries the URL.
        log.error("store error during a request: %s", exc.orig.__class__.__name__ if exc.orig else exc)
        return JSONResponse({"detail": "store unavailable, retry later"}, status_code=503, headers={"Retry-After": "1"})

    @app.get(
        "/healthz",
        tags=["health"],
        dependencies=[Depends(Public("liveness probes carry no credentials; it answers only that the process is up"))],
    )
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        responses={503: {"description": "store unreachable"}},
        dependencies=[Depends(Public("readiness probes carry no credentials; it answers only whether the store does"))],
    )
    def readyz() -> Response:
        """The store answers a query."""
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except DBAPIError:
            return JSONResponse({"status": "unavailable", "detail": "store unreachable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    def unknown_model(message: str, key: KeyInfo) -> HTTPException:
        # A key learns the names of the models it may write to, no others.
        known = sorted(m for m in config.models if key.allows(m))
        return HTTPException(404, {"message": message, "known_models": known})

    async def ingest(
        kind: Literal["prediction", "label"],
        model: str,
        request: Request,
        response: Response,
        key: KeyInfo,
        idempotency_key: str | None,
    ) -> IngestResponse:
        if not key.allows(model):
            # Before the model check: a scoped key gets the same answer for a model that does not exist.
            raise HTTPException(403, f"this API key may not write to model {model!r}")
        if model not in config.models:
            raise unknown_model(f"unknown model {model!r}", key)
        body = await _read_body(request, config.api.max_body_bytes)
        source = "sdk" if request.headers.get("user-agent", "").startswith(SDK_USER_AGENT) else "api"
        write = ingest_predictions if kind == "prediction" else ingest_labels
        stored_key = None
        if idempotency_key:
            # Scoped to the key, model and route, so two clients never collide on their own keys.
            digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
            stored_key = f"{key.id}:{kind}:{model}:{digest}"
        try:
            records = _split_body(body, request.headers.get("content-type", "application/json"))
        except ValueError as exc:
            raw = body[:2000].decode("utf-8", errors="replace")
            await run_in_threadpool(write, engine, config, model, [UnparsableRecord(str(exc), raw)], source)
            raise HTTPException(400, str(exc)) from None
        try:
            result: IngestResult = await run_in_threadpool(
                write, engine, config, model, records, source, shape="canonical", idempotency_key=stored_key
            )
        except UnknownModelError as exc:  # the config changed under us; same answer as above
            raise unknown_model(str(exc), key) from None
        if result.all_rejected:
            # A 200 would let a client that only checks the status lose the whole batch without noticing.
            response.status_code = 422
        return IngestResponse(**result.to_dict(), replayed=result.replayed)

    # Every status a route can answer, with its body: the fuzz test (tests/integration/test_api_fuzz.py)
    # fails on an undocumented one.
    responses: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorOut, "description": "a JSON body that does not parse or is not an array"},
        401: {"model": ErrorOut, "description": "missing or invalid API key"},
        403: {
            "model": ErrorOut,
            "description": "the key lacks the `ingest` scope, or may not write to this model (a key limited to"
            " some models gets this for every other name, configured or not)",
        },
        404: {"model": ErrorOut, "description": "unknown model; the body lists the models this key may write to"},
        413: {"model": ErrorOut, "description": "body larger than api.max_body_bytes"},
        422: {
            "model": IngestResponse | ErrorOut,
            "description": "every record of the batch was rejected (nothing stored; the body lists why, as for"
            " 200); also a malformed Idempotency-Key header, then with FastAPI's `detail` body",
        },
        429: {"model": ErrorOut, "description": "too many failed authentications"},
        503: {"model": ErrorOut, "description": "the store is unavailable; nothing was written, retry later"},
    }

    @app.post(
        "/v1/models/{model}/predictions",
        response_model=IngestResponse,
        tags=["ingest"],
        responses=responses,
        openapi_extra=_body_doc(CanonicalPrediction),
    )
    async def post_predictions(
        model: str,
        request: Request,
        response: Response,
        key: IngestKey,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> IngestResponse:
        """Store prediction records; invalid ones are rejected one by one and listed in the answer."""
        return await ingest("prediction", model, request, response, key, idempotency_key)

    @app.post(
        "/v1/models/{model}/labels",
        response_model=IngestResponse,
        tags=["ingest"],
        responses=responses,
        openapi_extra=_body_doc(CanonicalLabel),
    )
    async def post_labels(
        model: str,
        request: Request,
        response: Response,
        key: IngestKey,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> IngestResponse:
        """Store labels (ground truth); a label for an unseen id waits for its prediction."""
        return await ingest("label", model, request, response, key, idempotency_key)

    from monitor.api.read import add_read_routes  # it imports this module's RequireScope and ErrorOut

    add_read_routes(app, config, engine, authenticate)

    # add_route is typed for request -> response endpoints; Starlette serves any non-function endpoint as
    # an ASGI app, and a Route (unlike a Mount) answers /metrics without a redirect to /metrics/.
    app.add_route("/metrics", metrics_asgi_app(engine), include_in_schema=False)  # type: ignore[arg-type]
    return app
