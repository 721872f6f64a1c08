"""The dashboard's production WSGI servers, imported only by the commands that serve it.

``driftscope dashboard`` runs gunicorn: a master process and ``workers`` forked processes of ``threads``
threads each. Every worker builds its own Dash app and store engine after the fork (gunicorn's lazy
loading: ``load()`` runs in the worker), because SQLAlchemy's pooled connections must not be shared
by two processes.

``driftscope up`` and ``demo`` keep everything in one process (the worker's threads and the API's
uvicorn thread beside the dashboard), which must not fork: they serve the dashboard with waitress,
a threaded production server with no processes of its own.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from monitor.cli.dashboard import build_app
from monitor.cli.main import open_store
from monitor.config import Config
from monitor.errors import DriftscopeError

log = logging.getLogger(__name__)
GRACEFUL_STOP_S = 20  # below Kubernetes' default 30 s grace period, so a stop is never a SIGKILL


class PropagatingLogger(Logger):
    """gunicorn's logger without its own stderr handlers: its lines go through Driftscope's logging
    (one JSON object per line in a container, like every other line)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in [h for h in logger.handlers if getattr(h, "_gunicorn", False)]:
                logger.removeHandler(handler)
            logger.propagate = True


class DashboardServer(BaseApplication):
    def __init__(self, config: Config, host: str, port: int, workers: int, threads: int) -> None:
        self.config = config
        self.options = {
            "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            # gthread even with one thread: its heartbeat does not wait for a request, so a slow
            # Evidently report does not get the worker killed at gunicorn's timeout.
            "worker_class": "gthread",
            "graceful_timeout": GRACEFUL_STOP_S,
            # The workers' heartbeat files on a RAM disk: on a disk-backed /tmp (a container's overlay or
            # emptyDir) updating one can block a worker long enough to get it killed.
            "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
            "proc_name": "driftscope-dashboard",
            "logger_class": PropagatingLogger,
            # No gunicornc socket: it would be a file in a read-only home and an unauthenticated way
            # to resize or stop the server.
            "control_socket_disable": True,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        app = build_app(self.config, open_store(self.config)).server
        # The app's import graph (Dash, pandas, Evidently...) never becomes garbage: out of the collector's
        # sight it costs no full collection, and the worker exits in a second instead of spending several
        # collecting it at interpreter shutdown (gunicorn waits for that before the master exits).
        gc.freeze()
        return app


def serve_workers(config: Config, host: str, port: int, workers: int, threads: int) -> None:
    """Serve the dashboard with gunicorn until SIGTERM or SIGINT (then exit 0 once requests finish)."""
    DashboardServer(config, host, port, workers, threads).run()


def serve_in_process(app: Any, host: str, port: int, threads: int, on_listening: Callable[[], None]) -> None:
    """Serve ``app`` with waitress on this process's threads until Ctrl-C or SIGTERM.

    ``on_listening`` runs once the socket listens (a connection from then on is answered).
    """
    from waitress import create_server

    # A page load sends more requests than there are threads; waitress warns "Task queue depth is 1"
    # each time, which reads like trouble and is not: the requests wait their turn.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    try:
        server = create_server(app.server, host=host, port=port, threads=threads)
    except OSError as exc:
        raise DriftscopeError(f"dashboard.port {port}: cannot serve the dashboard ({exc.strerror})") from exc
    on_listening()

    def stop(_signum: int, _frame: Any) -> None:
        # waitress's run() stops its loop and its threads on KeyboardInterrupt, as for Ctrl-C.
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    log.info("dashboard listening on http://%s:%s", host, port)
    try:
        server.run()
    except KeyboardInterrupt:  # arrived while the loop was not running
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
