"""The outbox under failure: a long SMTP outage, and workers SIGKILLed in the middle of delivery."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from alerts import RetryPolicy, deliver_due, evaluate
from alerts.email import message_id
from alerts.message import probe_payload
from monitor.config import parse_config
from monitor.store.engine import make_engine, transaction, upgrade
from monitor.store.tables import Notification
from tests import servers
from tests.alert_support import HOUR, MONITOR, T0, add_window, make_config, setup_models

pytestmark = pytest.mark.integration
MINUTE = timedelta(minutes=1)
REPO = Path(__file__).resolve().parents[2]

FLAPPING = {
    "name": "ks drift",
    "when": "drift.ks.p_value < 0.01",
    "group_by": ["rule", "model", "feature"],
    "repeat_interval": "7d",
}


def _rows(engine: Engine) -> list[Notification]:
    with transaction(engine) as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def _flip_features(engine: Engine, config, windows: int, features: int, start: datetime) -> None:  # type: ignore[no-untyped-def]
    """Every feature flips between drifted and not each window: one notification per feature and window."""
    model = setup_models(engine, config)["churn"]
    for i in range(windows):
        p = {f"f{j:02d}": 0.001 if (i + j) % 2 == 0 else 0.5 for j in range(features)}
        add_window(engine, model, start + i * HOUR, None, p)
        evaluate(engine, config, start + (i + 1) * HOUR)


def test_long_smtp_outage_then_every_notification_exactly_once_in_order(
    sqlite_engine: Engine, smtp_server: servers.SmtpServer
) -> None:
    channel = {"kind": "email", "smtp": f"smtp://{smtp_server.host}:{smtp_server.port}", "to": ["oncall@example.test"]}
    config = make_config([{**FLAPPING, "notify": ["mail"]}], {"mail": channel}, group_wait="0s", group_interval="0s")
    model = setup_models(sqlite_engine, config)["churn"]
    smtp_server.stop()
    now = T0
    for i in range(12):  # twelve hours down; the worker keeps trying every 5 minutes
        p = {"tenure": 0.001 if i % 2 == 0 else 0.5, "plan": 0.001 if i % 3 == 0 else 0.5}
        add_window(sqlite_engine, model, T0 + i * HOUR, None, p)
        for _ in range(12):
            now += 5 * MINUTE
            evaluate(sqlite_engine, config, now)
            assert deliver_due(sqlite_engine, config, now) == 0
    rows = _rows(sqlite_engine)
    assert len(rows) >= 12 and {r.status for r in rows} == {"pending"}
    assert rows[0].attempts > 10 and "smtp: connection failed" in (rows[0].last_error or "")
    smtp_server.start()
    delivered = 0
    for _ in range(40):  # the head of the queue may be backing off for up to the 30 min cap
        now += 5 * MINUTE
        delivered += deliver_due(sqlite_engine, config, now)
    rows = _rows(sqlite_engine)
    assert {r.status for r in rows} == {"delivered"} and delivered == len(rows)
    received = [m.message["Message-ID"] for m in smtp_server.messages]
    assert received == [message_id(r.idempotency_key) for r in rows]  # exactly once each, in order
    subjects = [m.message["Subject"] for m in smtp_server.messages]
    assert subjects[:3] == [
        "[FIRING:1] ks drift · model=churn feature=plan",
        "[FIRING:1] ks drift · model=churn feature=tenure",
        "[RESOLVED] ks drift · model=churn feature=plan",
    ]


# Imports once, then forks one delivery worker per line read (its clock skew generation), printing its
# pid: each worker is a real process killed with SIGKILL, without paying the interpreter start each time.
ZYGOTE = """
import json, os, signal, sys, time
from datetime import UTC, datetime
from alerts import RetryPolicy, deliver_due
from monitor.config import parse_config
from monitor.store.engine import make_engine

config = parse_config(json.loads(sys.argv[1]), env={})
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed workers are reaped by the kernel
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        engine = make_engine(config.store)
        # Each worker runs its clock one claim_ttl further ahead than the one killed before it, so
        # that one's claims have expired without the test sleeping through them.
        skew = int(line) * config.worker.claim_ttl
        while True:
            deliver_due(engine, config, datetime.now(UTC) + skew, policy=RetryPolicy(batch=2))
            time.sleep(0.005)
    print(pid, flush=True)
"""


def test_workers_killed_mid_delivery_lose_nothing(postgres_url: str, http_receiver: servers.HttpReceiver) -> None:
    """A worker is SIGKILLed 10 times at random moments while it delivers; nothing is lost.

    The webhook carries each notification's Idempotency-Key: the receiver may see a key twice (the
    request went out, the worker died before recording it) — at most once per kill — but never zero times.
    """
    channel = {"kind": "webhook", "url": f"{http_receiver.url}/hook", "allow_private": True}
    raw = {
        "store": postgres_url,
        "models": {"churn": {"task": "binary", "features": {"tenure": "numeric", "plan": "numeric"}}},
        "monitors": {MONITOR: {"model": "churn", "reference": {"previous_windows": 3}}},
        "alerts": {
            "rules": [{**FLAPPING, "notify": ["hook"]}],
            "channels": {"hook": channel},
            "group_wait": "0s",
            "group_interval": "0s",
        },
        "worker": {"claim_ttl": "1m"},
    }
    config = parse_config(raw, env={})
    engine = make_engine(postgres_url)
    upgrade(engine)
    start = datetime.now(UTC) - 20 * HOUR
    _flip_features(engine, config, 10, 20, start)
    total = len(_rows(engine))
    assert total == 10 + 9 * 20  # half the features fire in the first window, then all flip each window
    rng = random.Random(11)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    kills = 0
    with subprocess.Popen(
        [sys.executable, "-c", ZYGOTE, json.dumps(raw)],
        env=env,
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as zygote:
        assert zygote.stdin is not None and zygote.stdout is not None
        while kills < 10:
            before = len(http_receiver.requests)
            zygote.stdin.write(f"{kills}\n")
            zygote.stdin.flush()
            worker = int(zygote.stdout.readline())
            try:
                servers.wait_for(lambda b=before: len(http_receiver.requests) > b, "the worker to deliver", timeout=30)
                time.sleep(rng.uniform(0.0, 0.05))  # a few deliveries each: 190 outlast 10 workers
            finally:
                os.kill(worker, signal.SIGKILL)
            kills += 1
        zygote.kill()
    with transaction(engine) as session:
        stuck = session.scalar(select(func.count()).where(Notification.status == "sending"))
    # What is left, including rows a dead worker held, goes out once their claims expire.
    later = datetime.now(UTC) + HOUR
    while deliver_due(engine, config, later):
        pass
    rows = _rows(engine)
    engine.dispose()
    assert {r.status for r in rows} == {"delivered"}
    seen = Counter(request.headers["Idempotency-Key"] for request in http_receiver.requests)
    assert set(seen) == {r.idempotency_key for r in rows}  # nothing lost
    duplicates = sum(n - 1 for n in seen.values())
    assert duplicates <= kills  # at most one per kill: the request in flight when it died
    sys.stderr.write(f"\nkills={kills} notifications={total} held-by-dead-workers={stuck} duplicates={duplicates}\n")


def test_an_unreadable_stored_payload_fails_at_once_and_the_channel_goes_on(sqlite_engine: Engine) -> None:
    config = make_config([], {"ops": {"kind": "console"}})
    with transaction(sqlite_engine) as session:
        for key, payload in (("broken", {"event": "firing", "channel": "ops"}), ("fine", probe_payload("ops", T0))):
            session.add(
                Notification(idempotency_key=key, channel="ops", event="firing", payload=payload, next_attempt_at=T0)
            )
    assert deliver_due(sqlite_engine, config, T0) == 1
    broken, fine = _rows(sqlite_engine)
    assert (broken.status, fine.status) == ("failed", "delivered")
    assert broken.last_error is not None and broken.last_error.startswith("notification payload lacks alerts")


def test_backoff_doubles_from_30s_up_to_30min_with_jitter() -> None:
    policy = RetryPolicy().backoff
    rng = random.Random(3)
    for attempt, full in [(1, 30), (2, 60), (3, 120), (6, 960), (7, 1800), (20, 1800)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert full / 2 <= min(delays) and max(delays) <= full
        assert max(delays) - min(delays) > full / 4  # jittered, not constant


def test_concurrent_workers_send_each_notification_once(
    postgres_engine: Engine, http_receiver: servers.HttpReceiver
) -> None:
    channel = {"kind": "webhook", "url": http_receiver.url, "allow_private": True}
    config = make_config([{**FLAPPING, "notify": ["hook"]}], {"hook": channel}, group_wait="0s", group_interval="0s")
    _flip_features(postgres_engine, config, 4, 10, T0)
    rows = _rows(postgres_engine)
    now = T0 + 10 * HOUR

    def drain(_: int) -> int:
        sent = 0
        while delivered := deliver_due(postgres_engine, config, now, policy=RetryPolicy(batch=3)):
            sent += delivered
        return sent

    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(drain, range(4))) == len(rows)
    keys = [request.headers["Idempotency-Key"] for request in http_receiver.requests]
    assert keys == [r.idempotency_key for r in rows]  # once each, and in order
