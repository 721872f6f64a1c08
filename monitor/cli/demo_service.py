"""``driftscope demo-service``: the docker-compose stack's demo model service (see monitor/demo/service.py)."""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Annotated

import typer

from monitor.cli.main import user_errors
from monitor.config import parse_duration
from monitor.retry import Backoff, call

log = logging.getLogger(__name__)


def _signed_duration(value: str) -> timedelta:
    """``10m`` or ``-4m`` (a drift that began before the service started, inside the backfill)."""
    text = value.strip()
    try:
        if text.startswith("-"):
            return -parse_duration(text[1:])
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _duration(value: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@user_errors
def demo_service(
    es_url: Annotated[str, typer.Option(envvar="ELASTICSEARCH_URL", help="Elasticsearch to log to.")] = (
        "http://localhost:9200"
    ),
    es_username: Annotated[str | None, typer.Option(envvar="ELASTICSEARCH_USERNAME")] = None,
    es_password: Annotated[str | None, typer.Option(envvar="ELASTICSEARCH_PASSWORD", show_default=False)] = None,
    index: Annotated[str, typer.Option(help="Index the prediction logs go to.")] = "predictions-loan-approval",
    rate: Annotated[float, typer.Option(min=0.1, help="Requests per second.")] = 5.0,
    history: Annotated[str, typer.Option(help="Traffic to backfill before the start when the index is empty.")] = "1h",
    drift_after: Annotated[str, typer.Option(help="When the population starts to drift (may be negative).")] = "10m",
    ramp: Annotated[str, typer.Option(help="How long the drift takes to reach full strength.")] = "2m",
    label_index: Annotated[
        str | None, typer.Option(help="Index the outcomes (ground truth) go to, LABEL_DELAY later; default: none.")
    ] = None,
    label_delay: Annotated[str, typer.Option(help="How long after a prediction its outcome is known.")] = "30s",
    metrics_port: Annotated[int, typer.Option(min=0, max=65535, help="Prometheus /metrics port; 0: off.")] = 9110,
    metrics_host: Annotated[str, typer.Option(help="Address /metrics binds to.")] = "0.0.0.0",
    seed: Annotated[int, typer.Option(help="Seed of the simulated traffic.")] = 7,
    tick: Annotated[float, typer.Option(min=0.05, help="Seconds between writes of live traffic.")] = 1.0,
) -> None:
    """Run a demo loan-approval model service that logs every prediction to Elasticsearch.

    It backfills HISTORY of traffic into an empty index, then keeps logging live requests; the
    population drifts from DRIFT_AFTER on, so Driftscope's Elasticsearch collector, detectors and
    alerts have something to find. Used by docker-compose.yml; see docs/getting-started.md.
    """
    from elasticsearch import Elasticsearch

    from monitor.demo.service import ModelService, Timeline, serve_metrics

    timeline = Timeline(datetime.now(UTC), _signed_duration(drift_after), _duration(ramp))
    auth = (es_username, es_password or "") if es_username else None
    client = Elasticsearch(es_url, basic_auth=auth, request_timeout=30)
    service = ModelService(
        client, index, timeline, rate=rate, seed=seed, label_index=label_index, label_delay=_duration(label_delay)
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        service.stop()

    signal.signal(signal.SIGTERM, stop)
    # Elasticsearch may still be starting: retry the backfill until it answers.
    backfilled = call(
        lambda: service.backfill(_duration(history)),
        Backoff(attempts=None, base=1.0, cap=30.0),
        on_retry=lambda attempt, wait, exc: log.warning(
            "elasticsearch not ready, retrying", extra={"attempt": attempt, "retry_in_s": wait, "error": str(exc)}
        ),
    )
    # /metrics answers only once the history is in Elasticsearch: it is the compose healthcheck that the
    # one-shot backfill (`driftscope collect elasticsearch`) waits for.
    if metrics_port:
        serve_metrics(service.registry, metrics_port, metrics_host)
    log.info(
        "demo model service started",
        extra={
            "index": index,
            "backfilled": backfilled,
            "drift_from": (timeline.t0 + timeline.drift_after).isoformat(),
        },
    )
    service.run(tick)


def register(app: typer.Typer) -> None:
    app.command("demo-service")(demo_service)
