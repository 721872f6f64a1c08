"""Property-based fuzzing of the ingestion API (schemathesis) against a real uvicorn server on SQLite.

Every operation of the app's OpenAPI schema gets generated requests, valid and invalid (JSON and NDJSON
bodies, headers), with a valid key: no answer may be a 5xx, each must be documented (status, content
type, body schema), and the server must still answer /healthz afterwards. The run is bounded and
derandomized, so CI replays the same requests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import settings
from schemathesis import Case
from sqlalchemy import Engine

from monitor.api.app import create_app
from monitor.store.api_keys import create_api_key
from tests.integration.test_api import make_config, serving

pytestmark = pytest.mark.integration

# Per operation and generation phase; the four operations take ~15 s on one core.
MAX_EXAMPLES = 60
# One request (a batch written to SQLite) takes milliseconds; a slow CI runner gets a wide margin.
DEADLINE = timedelta(seconds=5)


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    from monitor.store.engine import make_engine, upgrade

    engine: Engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'driftscope.db'}")
    upgrade(engine)
    # Every scope, so that each operation gets past authentication to its parameters and bodies.
    key, _ = create_api_key(engine, "svc-fuzz", scopes=["ingest", "read", "operate", "admin"])
    # The canary route imports NumPy, SciPy and pandas on its first call, seconds on a busy runner. The server runs
    # in this process: import them before the fuzzing, so that no generated request waits for them.
    import monitor.runs.canary  # noqa: F401

    with serving(create_app(make_config(max_body_bytes=200_000), engine)) as url:
        yield url, key
        assert httpx.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
    engine.dispose()


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_context: schemathesis.SerializationContext, value: Any) -> bytes:
    # The schema describes one NDJSON line (a record); json, not orjson, so lone surrogates stay escapes.
    return json.dumps(value).encode() + b"\n"


def _schema() -> schemathesis.BaseSchema:
    """The app's own OpenAPI schema (building the app opens nothing), with the fuzzing settings."""
    from monitor.store.engine import make_engine

    config = schemathesis.Config.from_dict(
        {
            # A configured model, so the bodies reach validation instead of a 404 (tested in test_api.py).
            "parameters": {"path.model": "churn"},
            "generation": {"mode": "all"},
        }
    )
    app = create_app(make_config(), make_engine("sqlite://"))
    return schemathesis.openapi.from_dict(app.openapi(), config=config)


schema = _schema()


@schema.parametrize()
# derandomize: the same requests on every run (a CI failure replays locally); no example database in the tree.
@settings(max_examples=MAX_EXAMPLES, deadline=DEADLINE, derandomize=True, database=None)
def test_every_answer_is_documented_and_no_request_breaks_the_server(case: Case, api_url: tuple[str, str]) -> None:
    url, key = api_url
    # Every other built-in check runs. These two judge the whole request by the schema, which the API does not:
    # a schema-violating batch keeps its good records (200, the bad ones listed), and a schema-valid record can
    # still break the model's own rules (its features, classes, lengths), which the shared schema cannot state.
    case.call_and_validate(
        base_url=url,
        headers={"Authorization": f"Bearer {key}"},
        excluded_checks=[schemathesis.checks.negative_data_rejection, schemathesis.checks.positive_data_acceptance],
    )
