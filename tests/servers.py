"""Real servers for the test suite, each on a free 127.0.0.1 port in its own temp directory.

Plain helpers with no pytest dependency; ``tests/conftest.py`` wraps them in fixtures. Every ``start_*``
function either returns a running server or raises :class:`MissingServer` (binary not installed; the
message names the package to install) or :class:`ServerStartError` (it ran but never became ready; the
message carries the tail of its log). Every server has ``stop()``, which kills its process group and
removes its temp directory.

Readiness is always polled with a deadline (:func:`wait_for`), never a fixed sleep.

Elasticsearch API coverage of noida-db 0.2.3 (reports version 8.15.3), checked with the elasticsearch 8.19
Python client against ``start_elasticsearch``:

Works like Elasticsearch:
  - index create with explicit mappings, get_mapping, exists, delete; index/bulk (``helpers.bulk``),
    ``refresh=True`` and ``indices.refresh``; count; ``index_not_found_exception`` (404) on a missing index;
    wildcard and comma-separated index patterns; msearch; put_index_template (acknowledged).
  - queries: match_all, term, range on dates (ISO strings with Z or an offset, epoch millis,
    ``format: epoch_millis``, date math ``now-1d``), bool/filter, exists, ``q=`` query strings.
  - ``track_total_hits=True`` gives an exact ``{"value": n, "relation": "eq"}``.
  - sort on date/keyword/numeric fields, asc/desc, multi-field sort (tie-breaker), ``missing: _last``,
    ``_doc``; date sort values are epoch millis, or strings when ``format`` is given.
  - point in time: open_point_in_time / search(pit=...) / close_point_in_time; the PIT is a snapshot
    (documents indexed after opening are not seen); search_after on the returned ``sort`` values pages
    through every document exactly once and in order; with a PIT an implicit ``_shard_doc`` tie-breaker is
    appended to ``sort`` like Elasticsearch does; ``index`` together with ``pit`` is rejected (400) and an
    unknown PIT id is a 404, as in Elasticsearch. search_after also works without a PIT.
  - ``_source`` filtering (list of fields, dotted paths, ``{"includes": [...]}``, ``False``) and ``fields``.
  - scroll, ``helpers.scan`` (also with ``preserve_order=True``), from+size over 10000 is a 400.
  - aggregations: terms, cardinality, max/min on numeric fields, date_histogram with fixed_interval.
  - api_key / basic_auth credentials are accepted (not checked).

Differs from Elasticsearch (do not rely on these):
  - max/min aggregations on a ``date`` field ignore documents whose date was sent as a string; they only
    see dates sent as epoch numbers (all-string dates give ``value: None``), and there is no
    ``value_as_string``. Take a watermark from a search sorted by the date field instead.
  - an explicit ``_shard_doc`` in a PIT sort still gets the implicit tie-breaker appended (one extra value).
  - desc sort on a numeric field with a missing value reports ``-1.797e308`` as that hit's sort value.
  - cluster health is always ``yellow``.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import grp
import json
import os
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from glob import glob
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

START_TIMEOUT_S = 60.0
LOG_TAIL_CHARS = 6000


class MissingServer(Exception):
    """A server binary is not installed; the message says what to install."""


class ServerStartError(Exception):
    """A server process did not become ready; the message includes the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], T | None], what: str, timeout: float = START_TIMEOUT_S) -> T:
    """Poll ``check`` until it returns something truthy and return that; raise TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def http_ok(url: str) -> bool:
    """True when ``url`` answers a GET with a 2xx status."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def http_json(url: str, payload: Any = None, method: str | None = None) -> Any:
    """GET (or POST ``payload`` as JSON to) ``url`` and return the decoded JSON body."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return text[-LOG_TAIL_CHARS:]


def _require_binary(candidates: Iterable[str], package: str) -> str:
    for candidate in candidates:
        found = shutil.which(candidate) if os.sep not in candidate else candidate
        if found and os.access(found, os.X_OK):
            return found
    raise _missing(package)


def _missing(package: str) -> MissingServer:
    return MissingServer(f"{package} is not installed: run ./scripts/test.sh or `apt-get install {package}`")


def promtool_path() -> str:
    """Path of Debian's promtool (package ``prometheus``)."""
    return _require_binary(["/usr/bin/promtool", "promtool"], "prometheus")


class ManagedProcess:
    """A server process in its own session, output in a log file, stopped by killing its process group."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, cwd: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )

    def wait_ready(self, check: Callable[[], bool], timeout: float = START_TIMEOUT_S) -> None:
        """Poll ``check`` until true; fail early, with the log, if the process exits or the deadline passes."""
        deadline = time.monotonic() + timeout
        while not check():
            code = self.proc.poll()
            if code is not None:
                raise ServerStartError(f"{self.name} exited with code {code} during start; log:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(f"{self.name} not ready after {timeout:.0f}s; log:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return _tail(self.log_path)

    def stop(self, timeout: float = 10.0) -> None:
        # The group id stays reserved while any member lives, so signalling it after the leader exited
        # cannot hit an unrelated process.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()


def _make_tempdir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"driftscope-{name}-"))


# --------------------------------------------------------------------------------------------- Postgres


def _postgres_bindir() -> Path:
    """Newest Debian postgresql bin dir (they are kept off PATH), else whatever initdb is on PATH."""
    initdbs = glob("/usr/lib/postgresql/*/bin/initdb")
    if initdbs:
        newest = max(initdbs, key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
        return Path(newest).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise _missing("postgresql")


@dataclass
class PostgresServer:
    """A throw-away cluster; superuser ``driftscope`` with trust auth, on 127.0.0.1."""

    host: str
    port: int
    user: str
    directory: Path
    _run_as: list[str]
    _pg_ctl: Path

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    def url(self, dbname: str = "postgres", driver: str = "psycopg") -> str:
        """SQLAlchemy URL, e.g. ``postgresql+psycopg://driftscope@127.0.0.1:PORT/DBNAME``."""
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{dbname}"

    @property
    def admin_url(self) -> str:
        """libpq URL of the ``postgres`` maintenance database (for psycopg.connect)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/postgres"

    def create_database(self, dbname: str) -> None:
        self._admin(f'CREATE DATABASE "{dbname}" TEMPLATE template0')

    def drop_database(self, dbname: str) -> None:
        # FORCE: a test that leaked a connection must not block the drop.
        self._admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]  # a trusted literal built above

    def stop(self) -> None:
        subprocess.run(
            [*self._run_as, str(self._pg_ctl), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            cwd=self.directory,
            check=False,
        )
        _kill_leftover_postmaster(self.data_dir)
        shutil.rmtree(self.directory, ignore_errors=True)


def _kill_leftover_postmaster(data_dir: Path) -> None:
    # pg_ctl stop failed (e.g. the user killed it half-way): postmaster.pid's first line is the pid.
    pid_file = data_dir / "postmaster.pid"
    if pid_file.exists():
        with contextlib.suppress(ValueError, IndexError, ProcessLookupError):
            os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGKILL)


def start_postgres(user: str = "driftscope") -> PostgresServer:
    bindir = _postgres_bindir()
    directory = _make_tempdir("postgres")
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: hand the directory to the postgres system user.
        try:
            pg = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise _missing("postgresql") from exc
        os.chown(directory, pg.pw_uid, grp.getgrgid(pg.pw_gid).gr_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    server = PostgresServer("127.0.0.1", port, user, directory, run_as, bindir / "pg_ctl")

    def run(argv: list[str], what: str) -> None:
        done = subprocess.run([*run_as, *argv], capture_output=True, text=True, cwd=directory, check=False)
        if done.returncode != 0:
            log = done.stdout + done.stderr + "\n" + _tail(server.log_path)
            server.stop()
            raise ServerStartError(f"postgres {what} failed (exit {done.returncode}):\n{log}")

    run(
        [str(bindir / "initdb"), "-D", str(server.data_dir), "-A", "trust", "-U", user, "-N", "-E", "UTF8"],
        "initdb",
    )
    options = (
        f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    pg_ctl_start = [str(server._pg_ctl), "-D", str(server.data_dir), "-o", options, "-l", str(server.log_path)]
    run([*pg_ctl_start, "-t", str(int(START_TIMEOUT_S)), "-w", "start"], "pg_ctl start")
    return server


# ---------------------------------------------------------------------------------------- Elasticsearch


@dataclass
class ElasticsearchServer:
    """noida-db serving only its Elasticsearch 8 REST API."""

    url: str
    directory: Path
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_elasticsearch() -> ElasticsearchServer:
    # The venv's bin dir is not on PATH when pytest is run as .venv/bin/pytest.
    noida = _require_binary([str(Path(sys.executable).parent / "noida-db"), "noida-db"], "noida-db")
    directory = _make_tempdir("elasticsearch")
    port = free_port()
    argv = [noida, "start", "--only", "elasticsearch", "--host", "127.0.0.1"]
    argv += ["--elasticsearch-port", str(port), "--data-dir", str(directory / "data")]
    process = ManagedProcess("noida-db (elasticsearch)", argv, directory / "noida-db.log", directory)
    url = f"http://127.0.0.1:{port}"
    process.wait_ready(lambda: http_ok(url))
    return ElasticsearchServer(url, directory, process)


# ------------------------------------------------------------------------------------------- Prometheus


@dataclass
class PrometheusServer:
    """Prometheus scraping every target registered with :meth:`add_target`, once a second.

    A new target takes about 5 s to be up: Prometheus hands discovered targets to its scrape manager
    on a fixed 5 s tick (not configurable), so register all of a test's targets before waiting.
    """

    url: str
    directory: Path
    process: ManagedProcess

    @property
    def targets_dir(self) -> Path:
        return self.directory / "targets"

    def add_target(self, address: str, labels: dict[str, str] | None = None) -> None:
        """Scrape ``host:port``'s /metrics from now on (file_sd: picked up without a reload)."""
        entry = [{"targets": [address], "labels": labels or {}}]
        path = self._target_file(address)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry))
        tmp.replace(path)  # atomic, so Prometheus never reads half a file

    def remove_target(self, address: str) -> None:
        self._target_file(address).unlink(missing_ok=True)

    def _target_file(self, address: str) -> Path:
        return self.targets_dir / (address.replace(":", "_").replace("/", "_") + ".json")

    def target_health(self, address: str) -> str | None:
        """'up', 'down' or 'unknown' for an active target, None when Prometheus has not picked it up."""
        data = http_json(f"{self.url}/api/v1/targets?state=active")["data"]["activeTargets"]
        for target in data:
            if target["labels"].get("instance") == address:
                return str(target["health"])
        return None

    def wait_target_up(self, address: str, timeout: float = 30.0) -> None:
        wait_for(lambda: self.target_health(address) == "up", f"Prometheus target {address} up", timeout)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query via /api/v1/query; the ``result`` list."""
        body = http_json(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        return list(body["data"]["result"])

    def reload(self) -> None:
        """POST /-/reload (needs --web.enable-lifecycle, which we pass)."""
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/-/reload", method="POST"), timeout=10)

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_prometheus() -> PrometheusServer:
    binary = _require_binary(["/usr/bin/prometheus", "prometheus"], "prometheus")
    directory = _make_tempdir("prometheus")
    (directory / "targets").mkdir()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "test",
                "file_sd_configs": [{"files": [str(directory / "targets" / "*.json")], "refresh_interval": "1s"}],
            }
        ],
    }
    config_path = directory / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
    ]
    process = ManagedProcess("prometheus", argv, directory / "prometheus.log", directory)
    url = f"http://127.0.0.1:{port}"
    process.wait_ready(lambda: http_ok(f"{url}/-/ready"))
    return PrometheusServer(url, directory, process)


# ----------------------------------------------------------------------------------------- Alertmanager

ALERTMANAGER_CONFIG = {
    "route": {"receiver": "null", "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"},
    "receivers": [{"name": "null"}],
}


@dataclass
class AlertmanagerServer:
    url: str
    directory: Path
    process: ManagedProcess

    def alerts(self, **label_filter: str) -> list[dict[str, Any]]:
        """GET /api/v2/alerts, optionally only those with the given label values."""
        query = urllib.parse.urlencode([("filter", f'{k}="{v}"') for k, v in label_filter.items()])
        return list(http_json(f"{self.url}/api/v2/alerts?{query}"))

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_alertmanager() -> AlertmanagerServer:
    binary = _require_binary(
        ["/usr/bin/prometheus-alertmanager", "prometheus-alertmanager", "alertmanager"],
        "prometheus-alertmanager",
    )
    directory = _make_tempdir("alertmanager")
    config_path = directory / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(ALERTMANAGER_CONFIG))
    port = free_port()
    argv = [
        binary,
        f"--config.file={config_path}",
        f"--storage.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # empty: no gossip cluster, no second port
    ]
    process = ManagedProcess("prometheus-alertmanager", argv, directory / "alertmanager.log", directory)
    url = f"http://127.0.0.1:{port}"
    process.wait_ready(lambda: http_ok(f"{url}/-/ready"))
    return AlertmanagerServer(url, directory, process)


# ------------------------------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class _CaptureHandler:
    def __init__(self, sink: list[ReceivedMail]) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self._sink.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 appending every message it receives to ``messages``.

    ``stop()`` then ``start()`` simulates an outage: the port refuses connections in between and the
    same port is served again afterwards.
    """

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.messages: list[ReceivedMail] = []
        self._controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        # A fresh controller per start: a stopped one's loop and thread are gone.
        self._controller = Controller(_CaptureHandler(self.messages), hostname=self.host, port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None


def start_smtp() -> SmtpServer:
    server = SmtpServer()
    server.start()
    return server


# ------------------------------------------------------------------------------ Slack-like HTTP receiver


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class ScriptedResponse:
    status: int = 200
    body: bytes = b"ok"  # what Slack's incoming webhooks answer
    headers: dict[str, str] = field(default_factory=dict)


class HttpReceiver:
    """Local HTTP server that records every request and answers from a script, then ``200 ok``.

    ``receiver.script(500, ScriptedResponse(429, headers={"Retry-After": "1"}), 200)`` makes the next three
    requests get those answers in order.
    """

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self._script: queue.SimpleQueue[ScriptedResponse] = queue.SimpleQueue()
        self._received = threading.Condition()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.host = "127.0.0.1"
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="http-receiver", daemon=True)
        self._thread.start()

    def script(self, *responses: int | ScriptedResponse) -> None:
        for response in responses:
            self._script.put(response if isinstance(response, ScriptedResponse) else ScriptedResponse(response))

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> list[ReceivedRequest]:
        """Block until at least ``count`` requests arrived; return all of them."""
        with self._received:
            if not self._received.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"expected {count} requests within {timeout:.0f}s, got {len(self.requests)}")
            return list(self.requests)

    def _next_response(self) -> ScriptedResponse:
        try:
            return self._script.get_nowait()
        except queue.Empty:
            return ScriptedResponse()

    def _record(self, request: ReceivedRequest) -> None:
        with self._received:
            self.requests.append(request)
            self._received.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver._record(ReceivedRequest(self.command, self.path, dict(self.headers.items()), body))
                response = receiver._next_response()
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


# --------------------------------------------------------------------------------------------- Chromium

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # we run as root in CI
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)


@dataclass
class Browser:
    driver: Any  # selenium.webdriver.Chrome
    directory: Path

    def stop(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_browser() -> Browser:
    chromium = _require_binary(["/usr/bin/chromium", "chromium"], "chromium")
    chromedriver = _require_binary(["/usr/bin/chromedriver", "chromedriver"], "chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    directory = _make_tempdir("chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={directory / 'profile'}")
    # An explicit driver path keeps selenium-manager from ever downloading a driver or browser.
    service = Service(executable_path=chromedriver, log_output=str(directory / "chromedriver.log"))
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except Exception as exc:
        log = _tail(directory / "chromedriver.log")
        shutil.rmtree(directory, ignore_errors=True)
        raise ServerStartError(f"chromium did not start: {exc}\nchromedriver log:\n{log}") from exc
    return Browser(driver, directory)
