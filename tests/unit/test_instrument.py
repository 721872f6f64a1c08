"""monitor.instrument: the ASGI middleware driven by hand-made ASGI messages (so a body can arrive in
chunks), and the decorator, both logging into a recording client; the real SDK client with nothing
listening stands for the Driftscope API being down."""

from __future__ import annotations

import asyncio
import doctest
import logging
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

import monitor.instrument
from monitor.instrument import Counters, DriftscopeMiddleware, _getter, instrument, sampled
from monitor.sdk import Client
from tests.servers import free_port

Logged = tuple[str, str, dict[str, Any], Any, Any]


class Recording:
    """The client seam: keeps what it is given."""

    def __init__(self) -> None:
        self.logged: list[Logged] = []
        self.versions: list[str | None] = []

    def log_prediction(
        self, model: str, id: str, features: Any, prediction: Any, score: Any = None, model_version: str | None = None
    ) -> None:
        self.logged.append((model, id, features, prediction, score))
        self.versions.append(model_version)


def service() -> FastAPI:
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> Any:
        row = await request.json()
        if row.get("tenure") == -1:
            return JSONResponse({"detail": "bad tenure"}, status_code=422)
        if row.get("tenure") == -2:
            raise RuntimeError("model crashed")
        answer: dict[str, Any] = {"prediction": int(row["tenure"] > 12)}
        if row.get("plan") != "no-score":
            answer["score"] = 0.75
        return answer

    @app.post("/echo")
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(await request.body())

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def instrumented(client: Any, **options: Any) -> tuple[FastAPI, Counters]:
    app, counters = service(), Counters()
    app.add_middleware(DriftscopeMiddleware, client=client, model="churn", counters=counters, **options)
    return app, counters


def call(
    app: Any,
    chunks: Sequence[bytes] = (b'{"tenure": 24, "plan": "pro"}',),
    *,
    path: str = "/predict",
    method: str = "POST",
    headers: Sequence[tuple[bytes, bytes]] = (),
    received: list[dict[str, Any]] | None = None,
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request through the ASGI app, its body in ``chunks``; returns status, headers and body."""

    async def run() -> tuple[int, dict[bytes, bytes], bytes]:
        incoming = [
            {"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1} for n, chunk in enumerate(chunks)
        ]
        done = asyncio.Event()
        status, response_headers, body = 0, {}, b""

        async def receive() -> dict[str, Any]:
            if incoming:
                return incoming.pop(0)
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, response_headers, body
            if message["type"] == "http.response.start":
                status, response_headers = message["status"], dict(message.get("headers", []))
            elif message["type"] == "http.response.body":
                body += message.get("body", b"")
                if not message.get("more_body"):
                    done.set()

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"content-type", b"application/json"), *headers],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        if received is not None:  # record what the app is handed
            inner = receive

            async def receive() -> dict[str, Any]:
                message = await inner()
                received.append(message)
                return message

        await app(scope, receive, send)
        return status, response_headers, body

    return asyncio.run(run())


# ---------------------------------------------------------------------------------------- middleware


def test_a_prediction_is_logged_with_its_features_score_request_id_and_version() -> None:
    client = Recording()
    app, counters = instrumented(client, model_version="2.1", paths={"/predict"})
    status, headers, body = call(app, headers=[(b"x-request-id", b"req-7")])
    assert (status, body) == (200, b'{"prediction":1,"score":0.75}')
    assert b"x-request-id" not in headers  # the caller has it already
    assert client.logged == [("churn", "req-7", {"tenure": 24, "plan": "pro"}, 1, 0.75)]
    assert client.versions == ["2.1"]
    assert (counters.logged, counters.failed) == (1, 0)


def test_the_version_is_also_a_feature_only_when_asked() -> None:
    client = Recording()
    app, _ = instrumented(client, model_version="2.1", version_feature="model_version")
    call(app)
    unversioned, _ = instrumented(client)
    call(unversioned)
    assert [entry[2] for entry in client.logged] == [
        {"tenure": 24, "plan": "pro", "model_version": "2.1"},
        {"tenure": 24, "plan": "pro"},
    ]
    assert client.versions == ["2.1", None]


def test_a_generated_request_id_is_returned_so_the_label_can_follow() -> None:
    client = Recording()
    app, _ = instrumented(client)
    _, first, _ = call(app)
    _, second, _ = call(app)
    assert [record[1].encode() for record in client.logged] == [first[b"x-request-id"], second[b"x-request-id"]]
    assert first[b"x-request-id"] != second[b"x-request-id"]


def test_a_streamed_body_reaches_the_app_unchanged_and_is_logged() -> None:
    client = Recording()
    app, counters = instrumented(client)
    chunks = [b'{"ten', b'ure": 3', b', "plan": "basic"}']
    received: list[dict[str, Any]] = []
    status, _, body = call(app, chunks, received=received)
    assert (status, body) == (200, b'{"prediction":0,"score":0.75}')
    assert [m["body"] for m in received] == chunks  # every chunk, as it came, none consumed by the middleware
    assert client.logged[0][2] == {"tenure": 3, "plan": "basic"}
    status, _, echoed = call(app, chunks, path="/echo")
    assert (status, echoed) == (200, b"".join(chunks))
    assert counters.logged == 2 - counters.failed  # /echo's plain-text answer is not a prediction


def test_a_body_that_is_not_json_is_counted_and_the_service_answers(caplog: pytest.LogCaptureFixture) -> None:
    client = Recording()
    app, counters = instrumented(client, paths={"/echo"})
    with caplog.at_level(logging.WARNING, logger="monitor.instrument"):
        for _ in range(3):
            assert call(app, [b"tenure=24"], path="/echo")[::2] == (200, b"tenure=24")
    assert (counters.logged, counters.failed, client.logged) == (0, 3, [])
    # One line for a failure that repeats on every request, not one per request.
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("driftscope: 1 prediction(s) of churn not logged; latest: JSONDecodeError:")


def test_a_mapping_that_raises_is_counted_and_the_service_answers() -> None:
    def broken(body: Any) -> Any:
        raise ZeroDivisionError("mapping bug")

    client = Recording()
    app, counters = instrumented(client, features=broken)
    assert call(app)[0] == 200
    app, counters_2 = instrumented(client, prediction="output.label")  # a path the response lacks
    assert call(app)[::2] == (200, b'{"prediction":1,"score":0.75}')
    assert (counters.failed, counters_2.failed, client.logged) == (1, 1, [])


def test_features_that_are_not_an_object_are_counted() -> None:
    client = Recording()
    app, counters = instrumented(client)
    assert call(app, [b"[1, 2]"], path="/echo")[0] == 200
    assert (counters.failed, client.logged) == (1, [])


def test_field_mapping_by_paths_and_callables_and_a_missing_score() -> None:
    client = Recording()
    app, _ = instrumented(
        client, features=lambda body: {"tenure": body["rows"][0]["t"]}, prediction="prediction", score="score"
    )
    call(app, [b'{"rows": [{"t": 30}], "tenure": 30}'])
    app, _ = instrumented(client, features="rows.0", score="score")
    call(app, [b'{"rows": [{"tenure": 5, "plan": "no-score"}], "tenure": 5, "plan": "no-score"}'])
    assert client.logged == [
        ("churn", client.logged[0][1], {"tenure": 30}, 1, 0.75),
        ("churn", client.logged[1][1], {"tenure": 5, "plan": "no-score"}, 0, None),  # no score in the answer
    ]


def test_only_successful_answers_on_the_chosen_paths_and_methods_are_logged() -> None:
    client = Recording()
    app, counters = instrumented(client, paths={"/predict"})
    assert call(app, [b'{"tenure": -1}'])[0] == 422
    assert call(app, [b""], method="GET", path="/healthz")[0] == 200
    assert call(app, [b'{"tenure": 1}'], path="/echo")[0] == 200
    assert (counters.logged, counters.failed, client.logged) == (0, 0, [])


def test_an_error_of_the_app_propagates_unchanged() -> None:
    client = Recording()
    app, counters = instrumented(client)
    with pytest.raises(RuntimeError, match="model crashed"):
        call(app, [b'{"tenure": -2}'])
    assert (counters.logged, counters.failed) == (0, 0)


def test_a_body_over_the_limit_reaches_the_app_whole_and_is_counted() -> None:
    client = Recording()
    app, counters = instrumented(client, max_body_bytes=10)
    chunks = [b'{"tenure": 24,', b' "plan": "pro"}']
    assert call(app, chunks, path="/echo")[::2] == (200, b"".join(chunks))
    assert (counters.failed, client.logged) == (1, [])


def test_sampling_keeps_the_share_chosen_by_the_request_id() -> None:
    client = Recording()
    app, counters = instrumented(client, sample_rate=0.25)
    ids = [f"req-{n}" for n in range(400)]
    for request_id in ids:
        assert call(app, headers=[(b"x-request-id", request_id.encode())])[0] == 200
    logged = [record[1] for record in client.logged]
    assert logged == [i for i in ids if sampled(i, 0.25)]
    assert 70 < len(logged) < 130 and counters.sampled_out == 400 - len(logged)
    assert sampled("anything", 1.0) and not any(sampled(i, 0.0) for i in ids)


def test_a_sample_rate_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        instrument(Recording(), "churn", sample_rate=1.5)


def test_with_the_driftscope_api_down_the_service_answers_and_drops_are_counted() -> None:
    client = Client(f"http://127.0.0.1:{free_port()}", "dsk_x", max_buffer=5, flush_interval=0.01, max_backoff=0.05)
    app, counters = instrumented(client)
    try:
        for n in range(50):
            assert call(app, [b'{"tenure": %d}' % n])[::2] == (200, b'{"prediction":%d,"score":0.75}' % (n > 12))
        assert counters.logged == 50 and client.dropped >= 40
    finally:
        client.close(timeout=0)


# ----------------------------------------------------------------------------------------- decorator


def test_the_decorator_logs_arguments_with_defaults_and_the_return_value() -> None:
    client = Recording()

    @instrument(client, "churn", prediction="0", score="1", id="request_id", features=lambda a: a["row"])
    def predict(request_id: str, row: dict[str, Any]) -> tuple[int, float]:
        return int(row["tenure"] > 12), 0.5

    @instrument(client, "churn", model_version="3")
    def plain(tenure: float, plan: str = "basic") -> int:
        return int(tenure > 12)

    assert predict("r-1", {"tenure": 20}) == (1, 0.5)
    assert plain(5) == 0
    assert client.logged[0] == ("churn", "r-1", {"tenure": 20}, 1, 0.5)
    assert client.logged[1][2:] == ({"tenure": 5, "plan": "basic"}, 0, None)
    assert client.versions == [None, "3"]
    assert plain.counters.logged == 1  # type: ignore[attr-defined]


def test_the_decorator_wraps_async_functions() -> None:
    client = Recording()

    @instrument(client, "churn", prediction="label")
    async def predict(tenure: float) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"label": 1}

    assert asyncio.run(predict(tenure=3.0)) == {"label": 1}
    assert client.logged[0][2:] == ({"tenure": 3.0}, 1, None)


def test_the_decorated_function_behaves_as_before_when_it_or_the_mapping_fails() -> None:
    client = Recording()

    @instrument(client, "churn", prediction="missing")
    def predict(tenure: float) -> dict[str, int]:
        if tenure < 0:
            raise ValueError("negative tenure")
        return {"label": 1}

    assert predict(1.0) == {"label": 1}
    with pytest.raises(ValueError, match="negative tenure"):
        predict(-1.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'plan'"):
        predict(1.0, plan="pro")  # the function's own error, not the instrumentation's
    assert client.logged == []
    assert predict.counters.failed == 2  # type: ignore[attr-defined]  # the bad path, the call that did not bind


# ------------------------------------------------------------------------------------------- mapping


def test_dotted_paths_walk_objects_and_lists() -> None:
    source = {"a": [{"b": 1}, {"b": 2}], "s": "text"}
    assert _getter("a.-1.b")(source) == 2
    assert _getter(None)(source) is source
    with pytest.raises(KeyError):
        _getter("s.0")(source)  # a string is not a list of characters here
    with pytest.raises(KeyError):
        _getter("a.x")(source)


def test_docstring_examples() -> None:
    assert doctest.testmod(monitor.instrument).failed == 0
