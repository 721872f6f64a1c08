"""The dashboard's production servers, started as real processes on a migrated SQLite store.

``driftscope dashboard`` is gunicorn (a master and its forked workers), ``driftscope up`` serves the
dashboard with waitress in its one process; both answer the health routes and a page, are not
Werkzeug's development server, and exit 0 soon after SIGTERM.
"""

from __future__ import annotations

import signal
import socket
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


def _up_config(sqlite_engine: Engine, **worker: Any) -> dict[str, Any]:
    port = free_port()
    return {
        "store": sqlite_engine.url.render_as_string(),
        "dashboard": {"port": port},
        "api": {"port": next(p for p in iter(free_port, None) if p != port)},
        "worker": {"metrics_port": None, **worker},
    }


def test_up_prints_its_addresses_only_once_both_answer(tmp_path: Path, sqlite_engine: Engine) -> None:
    config = _up_config(sqlite_engine)
    log = tmp_path / "driftscope.log"
    with driftscope(tmp_path, config, "up"):
        wait_for(lambda: "(Ctrl-C stops)" in log.read_text(encoding="utf-8"), what="the address line", timeout=90)
        # No retry: the first request after the line is printed must be answered.
        dashboard = httpx.get(f"http://127.0.0.1:{config['dashboard']['port']}/healthz", timeout=10)
        api = httpx.get(f"http://127.0.0.1:{config['api']['port']}/healthz", timeout=10)
        assert (dashboard.status_code, api.status_code) == (200, 200)


@pytest.mark.parametrize("setting", ["worker.metrics_port", "api.port", "dashboard.port"])
def test_up_names_the_setting_of_a_port_in_use(tmp_path: Path, sqlite_engine: Engine, setting: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        section, key = setting.split(".")
        config = _up_config(sqlite_engine)
        config[section][key] = port
        with driftscope(tmp_path, config, "up") as process:
            assert process.wait(timeout=90) == 2
        output = (tmp_path / "driftscope.log").read_text(encoding="utf-8")
    assert f"error: {setting} {port}: cannot serve" in output and "in use" in output
    assert "Traceback" not in output, output
