"""The dashboard's production servers, started as real processes on a migrated SQLite store.

``driftscope dashboard`` is gunicorn (a master and its forked workers), ``driftscope up`` serves the
dashboard with waitress in its one process; both answer the health routes and a page, are not
Werkzeug's development server, and exit 0 soon after SIGTERM.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine

from tests.servers import free_port, wait_for

pytestmark = pytest.mark.integration
STOP_TIMEOUT_S = 10


def children_of(pid: int) -> set[int]:
    """The live processes whose parent is ``pid`` (from /proc: these tests run on Linux)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:  # exited while we looked
            continue
        if int(ppid) == pid and state != "Z":
            found.add(int(stat.parent.name))
    return found


def answers(url: str) -> httpx.Response | None:
    try:
        response = httpx.get(url, timeout=10)
    except httpx.TransportError:  # not listening yet
        return None
    return response if response.status_code == 200 else None


@contextmanager
def driftscope(tmp_path: Path, config: dict[str, Any], *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``driftscope ARGS --config`` with ``config``, its output in a log file shown when a check fails."""
    path = tmp_path / "driftscope.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = tmp_path / "driftscope.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", *args, "--config", str(path)], stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield process
    except BaseException:
        print(log.read_text(encoding="utf-8"))
        raise
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def stop_with_sigterm(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=STOP_TIMEOUT_S)


def test_dashboard_serves_with_gunicorn_workers_and_stops_on_sigterm(tmp_path: Path, sqlite_engine: Engine) -> None:
    port = free_port()
    config = {"store": sqlite_engine.url.render_as_string(), "dashboard": {"port": port}}
    with driftscope(tmp_path, config, "dashboard", "--workers", "2", "--threads", "2") as process:
        base = f"http://127.0.0.1:{port}"
        health = wait_for(lambda: answers(f"{base}/healthz"), what="the dashboard's /healthz", timeout=90)
        assert answers(f"{base}/readyz")
        page = answers(f"{base}/")
        assert page is not None and "<html" in page.text.lower()
        for response in (health, page):
            server = response.headers.get("server", "")
            assert "werkzeug" not in server.lower() and server.startswith("gunicorn"), server

        workers = wait_for(lambda: len(children_of(process.pid)) == 2 and children_of(process.pid), what="2 workers")
        assert len(workers) == 2

        assert stop_with_sigterm(process) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "a worker outlived its master"


def test_up_serves_the_dashboard_in_its_one_process_and_stops_on_sigterm(tmp_path: Path, sqlite_engine: Engine) -> None:
    port = free_port()
    api_port = next(p for p in iter(free_port, None) if p != port)
    config = {
        "store": sqlite_engine.url.render_as_string(),
        "dashboard": {"port": port},
        "api": {"port": api_port},
        "worker": {"metrics_port": None},
    }
    with driftscope(tmp_path, config, "up") as process:
        base = f"http://127.0.0.1:{port}"
        health = wait_for(lambda: answers(f"{base}/healthz"), what="the dashboard's /healthz", timeout=90)
        assert health.headers.get("server") == "waitress"
        assert answers(f"{base}/")
        assert answers(f"http://127.0.0.1:{api_port}/healthz")
        assert children_of(process.pid) == set(), "up forked"

        assert stop_with_sigterm(process) == 0
