"""One real round trip per test server fixture: proves each one starts and answers."""

from __future__ import annotations

import smtplib
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import helpers
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from sqlalchemy import create_engine, text

from tests import servers
from tests.conftest import _start, unique_name


@pytest.mark.integration
def test_postgres_fresh_database_per_test(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            tables = conn.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            ).scalar_one()
            conn.execute(text("CREATE TABLE t (x int)"))
            conn.execute(text("INSERT INTO t VALUES (1), (2), (40)"))
            total = conn.execute(text("SELECT sum(x) FROM t")).scalar_one()
            user = conn.execute(text("SELECT current_user")).scalar_one()
    finally:
        engine.dispose()
    assert tables == 0
    assert total == 43
    assert user == "driftscope"


@pytest.mark.integration
def test_postgres_databases_are_isolated(postgres_url: str, postgres_server: servers.PostgresServer) -> None:
    other = unique_name("test_")
    postgres_server.create_database(other)
    try:
        engine = create_engine(postgres_server.url(other))
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE only_here (x int)"))
        engine.dispose()
        engine = create_engine(postgres_url)
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT to_regclass('only_here') IS NOT NULL")).scalar_one()
        engine.dispose()
    finally:
        postgres_server.drop_database(other)
    assert exists is False


@pytest.mark.integration
def test_elasticsearch_index_search_and_pit_paging(es_client: Any, make_es_index: Any) -> None:
    index = make_es_index(
        mappings={"properties": {"ts": {"type": "date"}, "id": {"type": "keyword"}, "x": {"type": "float"}}}
    )
    # Pairs of documents share a timestamp, so paging is only exact with the id tie-breaker.
    docs = [{"ts": f"2024-01-01T00:00:{i // 2:02d}Z", "id": f"r{i:03d}", "x": i / 2} for i in range(101)]
    ok, errors = helpers.bulk(es_client, ({"_index": index, "_id": d["id"], "_source": d} for d in docs))
    assert (ok, errors) == (101, [])
    es_client.indices.refresh(index=index)

    hits = es_client.search(
        index=index,
        query={"range": {"ts": {"gte": "2024-01-01T00:00:10Z", "lt": "2024-01-01T00:00:12Z"}}},
        sort=[{"ts": "asc"}, {"id": "asc"}],
        source=["x"],
    )["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["r020", "r021", "r022", "r023"]
    assert hits[0]["_source"] == {"x": 10.0}

    pit = es_client.open_point_in_time(index=index, keep_alive="1m")["id"]
    es_client.index(index=index, document={"ts": "2024-01-01T00:00:00Z", "id": "late"}, refresh=True)
    seen: list[str] = []
    after = None
    while True:
        page = es_client.search(
            pit={"id": pit, "keep_alive": "1m"},
            size=30,
            sort=[{"ts": "asc"}, {"id": "asc"}],
            **({"search_after": after} if after else {}),
        )
        batch = page["hits"]["hits"]
        if not batch:
            break
        seen += [h["_source"]["id"] for h in batch]
        after = batch[-1]["sort"]
        pit = page.get("pit_id", pit)
    es_client.close_point_in_time(id=pit)
    assert seen == [d["id"] for d in docs]  # in order, each once, and not the doc indexed after opening

    scanned = sorted(h["_id"] for h in helpers.scan(es_client, index=index, size=25))
    assert scanned == sorted([d["id"] for d in docs] + [scanned_late_id(es_client, index)])


def scanned_late_id(es_client: Any, index: str) -> str:
    hits = es_client.search(index=index, query={"term": {"id": "late"}})["hits"]["hits"]
    assert len(hits) == 1
    return str(hits[0]["_id"])


@pytest.mark.integration
def test_prometheus_scrapes_a_test_exporter(
    prometheus_server: servers.PrometheusServer, prometheus_scrape: Any
) -> None:
    registry = CollectorRegistry()
    Gauge("driftscope_fixture_probe", "set by the fixture test", registry=registry).set(42.5)
    port = servers.free_port()
    httpd, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    address = f"127.0.0.1:{port}"
    try:
        prometheus_scrape(address)
        result = servers.wait_for(
            lambda: prometheus_server.query(f'driftscope_fixture_probe{{instance="{address}"}}'),
            "the scraped sample to be queryable",
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert result[0]["metric"]["job"] == "test"
    assert float(result[0]["value"][1]) == 42.5


@pytest.mark.integration
def test_promtool_checks_rules(promtool: str, tmp_path: Path) -> None:
    import subprocess

    good = tmp_path / "good.yml"
    good.write_text("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n")
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up ==\n")
    assert subprocess.run([promtool, "check", "rules", str(good)], capture_output=True).returncode == 0
    assert subprocess.run([promtool, "check", "rules", str(bad)], capture_output=True).returncode != 0


@pytest.mark.integration
def test_alertmanager_accepts_and_lists_an_alert(alertmanager_server: servers.AlertmanagerServer) -> None:
    test_id = unique_name("t")
    alert = {"labels": {"alertname": "DriftscopeFixture", "test_id": test_id}, "annotations": {"summary": "hi"}}
    servers.http_json(f"{alertmanager_server.url}/api/v2/alerts", [alert])
    listed = servers.wait_for(lambda: alertmanager_server.alerts(test_id=test_id), "the alert to be listed")
    assert [a["labels"]["alertname"] for a in listed] == ["DriftscopeFixture"]
    assert listed[0]["annotations"] == {"summary": "hi"}


def _send_mail(smtp_server: servers.SmtpServer, subject: str) -> None:
    message = EmailMessage()
    message["From"] = "driftscope@example.test"
    message["To"] = "oncall@example.test"
    message["Subject"] = subject
    message.set_content("feature tenure drifted")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        smtp.send_message(message)


@pytest.mark.integration
def test_smtp_captures_mail_and_simulates_outage(smtp_server: servers.SmtpServer) -> None:
    _send_mail(smtp_server, "first")
    smtp_server.stop()
    with pytest.raises(ConnectionRefusedError):
        _send_mail(smtp_server, "lost")
    smtp_server.start()
    _send_mail(smtp_server, "second")
    assert [m.message["Subject"] for m in smtp_server.messages] == ["first", "second"]
    assert smtp_server.messages[0].rcpt_tos == ["oncall@example.test"]
    assert smtp_server.messages[0].message.get_content().strip() == "feature tenure drifted"


@pytest.mark.integration
def test_http_receiver_records_posts_and_follows_its_script(http_receiver: servers.HttpReceiver) -> None:
    http_receiver.script(500, servers.ScriptedResponse(429, headers={"Retry-After": "2"}))
    answers = []
    for n in range(3):
        request = urllib.request.Request(
            http_receiver.url + "/hooks/T1", data=b'{"text": "%d"}' % n, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                answers.append((resp.status, resp.read()))
        except urllib.error.HTTPError as err:
            answers.append((err.code, err.headers.get("Retry-After")))
    assert answers == [(500, None), (429, "2"), (200, b"ok")]
    recorded = http_receiver.wait_for_requests(3)
    assert [(r.method, r.path, r.json()) for r in recorded] == [
        ("POST", "/hooks/T1", {"text": str(n)}) for n in range(3)
    ]


@pytest.mark.e2e
def test_browser_loads_a_local_page_and_screenshots(browser: Any, screenshot: Any, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><head><title>fixture</title></head><body><h1 id='h'>Driftscope</h1></body></html>")
    browser.get(page.as_uri())
    assert browser.title == "fixture"
    assert browser.find_element("id", "h").text == "Driftscope"
    shot = screenshot("local-page")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _not_installed() -> None:
    raise servers.MissingServer("prometheus is not installed: run ./scripts/test.sh or `apt-get install prometheus`")


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_binary_fails_in_ci_and_skips_otherwise(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="apt-get install prometheus"):
        _start(_not_installed)


@pytest.mark.integration
def test_a_server_that_dies_on_start_reports_its_log(tmp_path: Path) -> None:
    (tmp_path / "prometheus.yml").write_text("scrape_configs: [{job_name: x, scrape_interval: nonsense}]\n")
    argv = ["/usr/bin/prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", "--web.listen-address=127.0.0.1:0"]
    if not Path(argv[0]).exists():
        _start(servers.promtool_path)  # same package: fails in CI, skips elsewhere
    process = servers.ManagedProcess("prometheus", argv, tmp_path / "log", tmp_path)
    with pytest.raises(servers.ServerStartError, match=r"(?s)exited with code 2.*not a valid duration string"):
        process.wait_ready(lambda: False)
    process.stop()
