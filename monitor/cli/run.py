"""``driftscope up`` (api + worker + dashboard in one process) and ``driftscope demo`` (``up`` plus traffic).

One process for one machine: the worker's jobs run in background threads, the API in a uvicorn
server thread, the dashboard in the foreground on waitress's threads (gunicorn's workers would fork
this threaded process). Ctrl-C or SIGTERM stops the dashboard, then the API, then the worker (which
finishes and writes the window it is computing).

uvicorn, FastAPI, the worker and the store are imported inside the functions that start them:
``driftscope up --help`` and ``demo --help`` import this module.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from monitor.cli.dashboard import build_app as build_dashboard
from monitor.cli.main import ConfigOption, open_store, out_console, user_errors
from monitor.config import Config, load_config, parse_duration
from monitor.errors import DriftscopeError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.cli.worker_process import Worker
    from monitor.demo.traffic import Simulator

log = logging.getLogger(__name__)


@contextmanager
def api_server(config: Config, engine: Engine, port: int) -> Iterator[str]:
    """The ingestion API on a uvicorn server thread, for as long as the block runs."""
    import uvicorn

    from monitor.api.app import create_app as create_api

    # Bound here rather than in uvicorn's thread, whose bind error would end that thread with a log line
    # while `up` went on as if the API were served.
    family = socket.AF_INET6 if ":" in config.api.host else socket.AF_INET
    try:
        listener = socket.create_server((config.api.host, port), family=family)
    except OSError as exc:
        raise DriftscopeError(f"api.port {port}: cannot serve the API ({exc.strerror})") from exc
    server = uvicorn.Server(
        uvicorn.Config(create_api(config, engine), host=config.api.host, port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="api", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.05)
    try:
        if not server.started:
            raise DriftscopeError("the API did not start (its error is logged above)")
        yield f"http://{config.api.host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


@contextmanager
def running_worker(config: Config, engine: Engine) -> Iterator[Worker]:
    from monitor.cli.worker_process import Worker

    worker = Worker(config, engine)
    worker.start()
    try:
        yield worker
    finally:
        worker.shutdown()


def run_all(config: Config, engine: Engine, api_port: int, dashboard_port: int) -> None:
    from monitor.cli.dashboard_server import serve_in_process
    from monitor.store.queries import sync_models

    sync_models(engine, config)
    with running_worker(config, engine), api_server(config, engine, api_port) as api_url:
        dashboard = build_dashboard(config, engine)
        # Printed once both listen: a URL printed earlier (building the dashboard takes seconds) would be refused.
        serve_in_process(
            dashboard,
            config.dashboard.host,
            dashboard_port,
            config.dashboard.threads,
            on_listening=lambda: out_console.print(
                f"[bold]dashboard[/bold] http://{config.dashboard.host}:{dashboard_port}   "
                f"[bold]api[/bold] {api_url}/docs   (Ctrl-C stops)",
                highlight=False,
            ),
        )
        out_console.print("stopping…", highlight=False)


@user_errors
def up(
    config: ConfigOption = None,
    api_port: Annotated[int | None, typer.Option(help="Default: api.port from the config.")] = None,
    dashboard_port: Annotated[int | None, typer.Option(help="Default: dashboard.port from the config.")] = None,
) -> None:
    """Run the API, the worker and the dashboard in one process (one machine; see `api`, `worker`, `dashboard`)."""
    from monitor.store.engine import check_migrated

    settings = load_config(config)
    engine = open_store(settings)
    check_migrated(engine)
    run_all(settings, engine, api_port or settings.api.port, dashboard_port or settings.dashboard.port)


@user_errors
def demo(
    store: Annotated[
        str, typer.Option(help="Where the demo keeps its data; run again to continue where it stopped.")
    ] = "sqlite:///driftscope-demo.db",
    port: Annotated[int, typer.Option(help="Dashboard port.")] = 8050,
    api_port: Annotated[int, typer.Option(help="Ingestion API port.")] = 8000,
    reset: Annotated[bool, typer.Option(help="Start over: delete the demo's SQLite file first.")] = False,
    history: Annotated[
        str, typer.Option(help="How much past traffic to write on a first start, e.g. 3h or 30m.")
    ] = "3h",
) -> None:
    """A live demo on an embedded store: a simulated loan model whose traffic starts drifting after 30 seconds.

    Needs nothing else installed. Open the dashboard, watch the drift appear, see the alerts fire on
    the console; Ctrl-C stops it and running it again continues from the stored state.
    """
    from monitor.demo.traffic import LIVE_DRIFT_AFTER, Simulator, demo_config, load_timeline
    from monitor.store.engine import make_engine, upgrade
    from monitor.store.queries import sync_models

    if reset and store.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(store.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    engine = make_engine(store)
    upgrade(engine)
    try:
        history_span = parse_duration(history)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--history") from None
    timeline = load_timeline(engine, datetime.now(UTC), history_span)
    config = demo_config(store, timeline, port)
    sync_models(engine, config)
    simulator = Simulator(engine, config, timeline)
    catch_up(simulator)
    simulator.start()
    drift_in = (timeline.started_at + LIVE_DRIFT_AFTER - datetime.now(UTC)).total_seconds()
    if drift_in > 0:
        out_console.print(f"live traffic starts drifting in {drift_in:.0f} s", highlight=False)
    try:
        run_all(config, engine, api_port, port)
    finally:
        simulator.stop()


def catch_up(simulator: Simulator) -> None:
    """Write the traffic the demo has not written yet (its history on a first run) with a progress bar."""
    from monitor.demo.traffic import MODEL

    start, now = simulator.written_until(), datetime.now(UTC)
    if now <= start:
        return
    with Progress(
        TextColumn("demo traffic for [bold]" + MODEL + "[/bold]"),
        BarColumn(),
        TextColumn("{task.fields[predictions]:>7,} predictions"),
        TimeRemainingColumn(),
        console=out_console,
        transient=True,
    ) as progress:
        task = progress.add_task("history", total=(now - start).total_seconds(), predictions=0)
        written = simulator.write_until(
            now,
            on_slice=lambda end, count: progress.update(
                task, completed=(end - start).total_seconds(), predictions=count
            ),
        )
    log.info("demo traffic caught up", extra={"model": MODEL, "predictions": written})


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("demo")(demo)
