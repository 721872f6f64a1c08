"""Instrument a model service in one line: every prediction it serves is logged through the SDK.

For a FastAPI or Starlette service, an ASGI middleware reads the features from the JSON request body
and the prediction and score from the JSON response::

    app.add_middleware(DriftscopeMiddleware, client=Client(url, key), model="churn", paths={"/predict"})

For a plain Python predict function, a decorator reads the features from its arguments and the
prediction from its return value (``async def`` functions too). Any object with the SDK's
``log_prediction`` will do as the client; here one that prints:

>>> class Printing:
...     def log_prediction(self, model, id, features, prediction, score=None, model_version=None):
...         print(model, id, features, prediction, score, model_version)
>>> @instrument(Printing(), "churn", prediction="label", score="proba", id="request_id",
...             features=lambda args: args["row"], model_version="1.2")
... def predict(request_id: str, row: dict) -> dict:
...     return {"label": int(row["tenure"] > 12), "proba": 0.9 if row["tenure"] > 12 else 0.2}
>>> predict("r-1", {"tenure": 24, "plan": "pro"})["label"]
churn r-1 {'tenure': 24, 'plan': 'pro'} 1 0.9 1.2
1
>>> predict.counters.logged
1

Fields are mapped by dotted paths (``"inputs.0.tenure"``: keys of objects, indices of lists) or by
callables; features default to the whole request body (the middleware) or the bound arguments with
their defaults (the decorator). A request id comes from a header (``X-Request-ID``; when absent one is
generated and returned in that header, so the caller can send the label later) or, for the decorator,
from an argument (``id="request_id"``) or is generated. ``model_version`` is sent as each prediction's
version (docs/versions.md); with ``version_feature`` it is also added to the features under that name,
which the model's config must then declare (categorical), so the version's share is scored like a feature.

``sample_rate`` keeps a share of the requests, chosen by a hash of the request id, so whoever sends
the labels can skip the same ones with :func:`sampled`.

Monitoring never breaks or slows the service: the middleware passes the request body to the app as
it arrives and keeps a copy (it never consumes it), records after the response has been sent, and
anything that goes wrong while recording (a body that is not JSON, a mapping that raises, a path
that is missing) is counted in :class:`Counters` (``failed``) and logged at most once a minute,
never raised. Delivery is the SDK's business: with the Driftscope API down, records wait in the
client's buffer and the oldest are dropped when it is full (``Client.dropped``).

This module ships to model services like :mod:`monitor.sdk`: it imports nothing of the project
beyond it, and neither Starlette nor FastAPI (ASGI is a calling convention, not a library).
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import orjson

log = logging.getLogger(__name__)

__all__ = ["Counters", "DriftscopeMiddleware", "Field", "PredictionLogger", "instrument", "sampled"]

FAILURE_LOG_INTERVAL = 60.0
REQUEST_ID_HEADER = "x-request-id"
MAX_BODY_BYTES = 1 << 20

Field = str | Callable[[Any], Any]
"""A dotted path into the source (``"output.proba"``, ``"inputs.0"``) or a function of it."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class PredictionLogger(Protocol):
    """What the instrumentation needs of a client: :meth:`monitor.sdk.Client.log_prediction`, which must not raise."""

    def log_prediction(
        self,
        model: str,
        id: str,
        features: Mapping[str, Any],
        prediction: Any,
        score: Any = None,
        model_version: str | None = None,
    ) -> None: ...


class ASGIApp(Protocol):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


F = TypeVar("F", bound=Callable[..., Any])


class Counters:
    """What the instrumentation did, shared by the threads and the event loop that record.

    ``logged``: predictions handed to the client; ``sampled_out``: requests skipped by ``sample_rate``;
    ``failed``: predictions that could not be recorded (the reason is logged, at most once a minute).
    """

    def __init__(self) -> None:
        self.logged = self.sampled_out = self.failed = 0
        self._lock = threading.Lock()
        self._last_log = -FAILURE_LOG_INTERVAL
        self._unlogged = 0

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def _fail(self, model: str, reason: str) -> None:
        with self._lock:
            self.failed += 1
            self._unlogged += 1
            now = time.monotonic()
            if now - self._last_log < FAILURE_LOG_INTERVAL:
                return
            count, self._unlogged, self._last_log = self._unlogged, 0, now
        # A broken mapping fails on every request: one line a minute says so without flooding the log.
        log.warning("driftscope: %d prediction(s) of %s not logged; latest: %s", count, model, reason)


def sampled(request_id: str, sample_rate: float) -> bool:
    """Whether ``request_id`` is in the sample: the same answer in every process, for predictions and labels."""
    if sample_rate >= 1.0:
        return True
    return zlib.crc32(request_id.encode()) < sample_rate * 2**32


def _getter(field: Field | None) -> Callable[[Any], Any]:
    """A function of the source for ``field``: itself if callable, the source if None, else a path walk."""
    if field is None:
        return lambda source: source
    if callable(field):
        return field
    parts = tuple(field.split("."))

    def walk(source: Any) -> Any:
        value = source
        for part in parts:
            if isinstance(value, Mapping):
                value = value[part]
            elif isinstance(value, Sequence) and not isinstance(value, str | bytes) and part.lstrip("-").isdigit():
                value = value[int(part)]
            else:
                raise KeyError(part)
        return value

    return walk


@dataclass(frozen=True, slots=True)
class _Recorder:
    """Turns one served prediction into ``Client.log_prediction``; what both the middleware and the decorator share."""

    client: PredictionLogger
    model: str
    features: Callable[[Any], Any]
    prediction: Callable[[Any], Any]
    score: Callable[[Any], Any] | None
    model_version: str | None
    version_feature: str | None  # also add the version to the features under this name
    sample_rate: float
    counters: Counters

    @classmethod
    def build(
        cls,
        client: PredictionLogger,
        model: str,
        *,
        features: Field | None,
        prediction: Field | None,
        score: Field | None,
        model_version: str | None,
        version_feature: str | None,
        sample_rate: float,
        counters: Counters | None,
    ) -> _Recorder:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be between 0 and 1, got {sample_rate}")
        return cls(
            client,
            model,
            _getter(features),
            _getter(prediction),
            None if score is None else _getter(score),
            model_version,
            version_feature if model_version is not None else None,
            sample_rate,
            counters or Counters(),
        )

    def keep(self, request_id: str) -> bool:
        if sampled(request_id, self.sample_rate):
            return True
        self.counters._count("sampled_out")
        return False

    def record(self, request_id: str, inputs: Callable[[], Any], outputs: Callable[[], Any]) -> None:
        """Log one prediction; ``inputs``/``outputs`` produce the sources (parsing happens here, where it is caught)."""
        try:
            features = self.features(inputs())
            if not isinstance(features, Mapping):
                raise TypeError(f"features are a {type(features).__name__}, not an object")
            if self.version_feature is not None:
                features = {**features, self.version_feature: self.model_version}
            result = outputs()
            prediction = self.prediction(result)
            score = None
            if self.score is not None:
                try:
                    score = self.score(result)
                except (KeyError, IndexError):  # a response without a score is still a prediction
                    score = None
        except Exception as exc:  # the service must never fail because of monitoring
            self.counters._fail(self.model, f"{type(exc).__name__}: {exc}")
            return
        self.client.log_prediction(
            self.model, request_id, features, prediction, score=score, model_version=self.model_version
        )
        self.counters._count("logged")


class DriftscopeMiddleware:
    """ASGI middleware logging each JSON prediction a service answers (see the module's docstring).

    Only ``methods`` requests to ``paths`` (every path when None) that get a 2xx answer are logged.
    Bodies larger than ``max_body_bytes`` are not copied (counted as failed). Put it inside any
    compression middleware (added before it), so it sees the response as the app wrote it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        client: PredictionLogger,
        model: str,
        features: Field | None = None,
        prediction: Field = "prediction",
        score: Field | None = "score",
        model_version: str | None = None,
        version_feature: str | None = None,
        sample_rate: float = 1.0,
        paths: Collection[str] | None = None,
        methods: Collection[str] = ("POST",),
        request_id_header: str = REQUEST_ID_HEADER,
        max_body_bytes: int = MAX_BODY_BYTES,
        counters: Counters | None = None,
    ) -> None:
        self.app = app
        self.recorder = _Recorder.build(
            client, model, features=features, prediction=prediction, score=score, model_version=model_version,
            version_feature=version_feature, sample_rate=sample_rate, counters=counters,
        )  # fmt: skip
        self.paths = None if paths is None else frozenset(paths)
        self.methods = frozenset(m.upper() for m in methods)
        self.header = request_id_header.lower().encode("latin-1")
        self.max_body_bytes = max_body_bytes

    @property
    def counters(self) -> Counters:
        return self.recorder.counters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in self.methods
            or (self.paths is not None and scope["path"] not in self.paths)
        ):
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == self.header), None)
        request_id = given.decode("latin-1") if given is not None else uuid.uuid4().hex
        if not self.recorder.keep(request_id):
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(self.max_body_bytes)

        async def tee_receive() -> Message:
            # The app gets every message unchanged, as it arrives (a streamed body stays streamed);
            # only a copy of the chunks is kept.
            message = await receive()
            if message["type"] == "http.request":
                exchange.request.add(message.get("body", b""))
            return message

        async def tee_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                if given is None:  # the caller needs the generated id to send the label later
                    headers = list(message.get("headers", ()))
                    if not any(name.lower() == self.header for name, _ in headers):
                        headers.append((self.header, request_id.encode("latin-1")))
                        message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                exchange.response.add(message.get("body", b""))
            await send(message)

        await self.app(scope, tee_receive, tee_send)
        # The response is out by now: what follows costs the caller nothing.
        if 200 <= exchange.status < 300:
            self.recorder.record(request_id, exchange.request.json, exchange.response.json)


class _Body:
    __slots__ = ("chunks", "limit", "size")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.size, self.limit = 0, limit

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size <= self.limit:
            self.chunks.append(chunk)

    def json(self) -> Any:
        if self.size > self.limit:
            raise ValueError(f"body of {self.size} bytes is over max_body_bytes ({self.limit})")
        return orjson.loads(b"".join(self.chunks))


class _Exchange:
    __slots__ = ("request", "response", "status")

    def __init__(self, limit: int) -> None:
        self.request, self.response = _Body(limit), _Body(limit)
        self.status = 0


def instrument(
    client: PredictionLogger,
    model: str,
    *,
    features: Field | None = None,
    prediction: Field | None = None,
    score: Field | None = None,
    id: Field | None = None,
    model_version: str | None = None,
    version_feature: str | None = None,
    sample_rate: float = 1.0,
    counters: Counters | None = None,
) -> Callable[[F], F]:
    """Decorate a predict function so each call is logged (see the module's docstring).

    ``features`` and ``id`` map the bound arguments (a dict of name → value, defaults applied);
    ``prediction`` and ``score`` map the return value (default: the return value itself, no score).
    The wrapper's ``counters`` attribute is the :class:`Counters`. A call that raises logs nothing.
    """
    recorder = _Recorder.build(
        client, model, features=features, prediction=prediction, score=score, model_version=model_version,
        version_feature=version_feature, sample_rate=sample_rate, counters=counters,
    )  # fmt: skip
    request_id = _getter(id) if id is not None else None

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        def arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
            """The request id and the bound arguments, or None when the call is not sampled or cannot be bound."""
            try:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                given = bound.arguments
                rid = str(request_id(given)) if request_id is not None else uuid.uuid4().hex
            except Exception as exc:  # a call that does not bind fails in fn itself, with its own message
                recorder.counters._fail(model, f"{type(exc).__name__}: {exc}")
                return None
            return (rid, given) if recorder.keep(rid) else None

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                call = arguments(args, kwargs)
                result = await fn(*args, **kwargs)
                if call is not None:
                    recorder.record(call[0], lambda: call[1], lambda: result)
                return result

            wrapper: Any = async_wrapper
        else:

            @functools.wraps(fn)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                call = arguments(args, kwargs)
                result = fn(*args, **kwargs)
                if call is not None:
                    recorder.record(call[0], lambda: call[1], lambda: result)
                return result

            wrapper = sync_wrapper
        wrapper.counters = recorder.counters
        return cast(F, wrapper)

    return decorate
