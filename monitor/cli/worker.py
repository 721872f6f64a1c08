"""``driftscope worker``: run :class:`monitor.cli.worker_process.Worker` until SIGTERM or Ctrl-C."""

from __future__ import annotations

from typing import Annotated

import typer

from monitor.cli.main import ConfigOption, open_store, out_console, user_errors
from monitor.config import load_config


@user_errors
def worker(
    config: ConfigOption = None,
    worker_id: Annotated[
        str | None, typer.Option("--id", help="Name in run claims and logs (default: host:pid:random).")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Compute the windows due now (no collectors, alerts or /metrics), then exit.")
    ] = False,
) -> None:
    """Run collectors, compute every closed window of every monitor, evaluate alerts; stop on SIGTERM/Ctrl-C.

    Start several on one Postgres store to share the work: each window is computed exactly once.
    """
    # The scheduler, APScheduler, the alerts and the collectors load here: `worker --help` needs none of them.
    from collectors.elasticsearch import build_window_aggregators
    from monitor.cli.worker_process import Worker
    from monitor.runs.scheduler import Scheduler
    from monitor.store.engine import check_migrated

    settings = load_config(config)
    engine = open_store(settings)
    check_migrated(engine)
    if once:
        aggregators = build_window_aggregators(settings, engine)
        computed = Scheduler(settings, engine, worker_id=worker_id, window_aggregators=aggregators).tick()
        out_console.print(f"{computed} run(s) computed", highlight=False)
        return
    Worker(settings, engine, worker_id=worker_id).run_forever()


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
