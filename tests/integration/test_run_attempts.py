"""Leases renewed by heartbeat, attempt limits and retries of runs, on both stores."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sqlalchemy import Engine, select, update

from monitor.config import Config, load_config
from monitor.runs.references import upload_dataset
from monitor.runs.scheduler import Scheduler
from monitor.store.actions import ActionError, retry_failed, retry_run
from monitor.store.tables import Run, Score
from tests.integration.test_scheduler import HOUR, T0, add_predictions, clock_at, make_config
from tests.integration.test_scheduler_cli import invoke

LEASE = timedelta(seconds=1.5)


def with_worker(config: Config, **settings: Any) -> Config:
    return config.model_copy(update={"worker": config.worker.model_copy(update=settings)})


def one_pending_window(engine: Engine, config: Config) -> None:
    """Plan the single window T0 (a closed hour of data) so that competing workers race for it alone."""
    add_predictions(engine, config, range(2))
    Scheduler(config, engine, clock=clock_at(T0 + HOUR + timedelta(minutes=5))).plan()


def the_run(engine: Engine) -> Any:
    with engine.connect() as connection:
        return connection.execute(select(Run)).one()


def slowed(scheduler: Scheduler, during: Any) -> None:
    """Make ``scheduler``'s next computation call ``during()`` before it loads its reference."""
    baseline = scheduler.references.baseline

    def slow(*args: Any) -> Any:
        during()
        return baseline(*args)

    scheduler.references.baseline = slow  # type: ignore[method-assign]


def test_a_run_slower_than_its_lease_keeps_it_by_heartbeat(store_engine: Engine) -> None:
    config = with_worker(make_config(), run_lease=LEASE)
    one_pending_window(store_engine, config)
    # Real clocks: the heartbeat and the rival's view of the lease must agree.
    slow = Scheduler(config, store_engine, worker_id="slow")
    rival = Scheduler(config, store_engine, worker_id="rival")
    rival_claims = []

    def compete() -> None:  # three leases long, the rival trying to take the run all along
        deadline = time.monotonic() + 3 * LEASE.total_seconds()
        while time.monotonic() < deadline:
            rival_claims.append(rival.claim())
            time.sleep(0.1)

    slowed(slow, compete)
    claim = slow.claim()
    assert claim is not None
    assert slow.compute(claim) == "succeeded"
    assert len(rival_claims) > 10 and set(rival_claims) == {None}
    run = the_run(store_engine)
    assert (run.status, run.claimed_by, run.attempts, run.claimed_until, run.claim_token) == (
        "succeeded",
        "slow",
        1,
        None,
        None,
    )


def test_a_worker_that_lost_its_claim_stops_renewing_and_writes_nothing(store_engine: Engine) -> None:
    config = with_worker(make_config(), run_lease=LEASE)
    one_pending_window(store_engine, config)
    stalled = Scheduler(config, store_engine, worker_id="stalled")
    rival = Scheduler(config, store_engine, worker_id="rival")
    taken: dict[str, Any] = {}

    def lose_the_claim() -> None:
        # As if this worker had been frozen past its lease: the lease expires and the rival takes the run.
        with store_engine.begin() as connection:
            connection.execute(update(Run).values(claimed_until=datetime(2000, 1, 1, tzinfo=T0.tzinfo)))
        taken["claim"] = rival.claim()
        taken["until"] = the_run(store_engine).claimed_until
        time.sleep(2 * LEASE.total_seconds() / 3 + 0.3)  # two heartbeats of the stalled worker

    slowed(stalled, lose_the_claim)
    claim = stalled.claim()
    assert claim is not None
    assert stalled.compute(claim) == "lost"
    assert taken["claim"] is not None and taken["claim"].token != claim.token
    run = the_run(store_engine)
    # The rival's lease was not extended by the stalled worker's heartbeat, and no result was written.
    assert (run.claimed_by, run.claim_token, run.claimed_until) == ("rival", taken["claim"].token, taken["until"])
    assert (run.status, run.finished_at) == ("running", None)
    assert rival.compute(taken["claim"]) == "succeeded"


def test_a_run_abandoned_on_every_attempt_ends_failed(store_engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    config = with_worker(make_config(), max_attempts=2)  # run_lease 10m
    one_pending_window(store_engine, config)
    now = T0 + 2 * HOUR
    # Two workers die in turn while computing the window (say it makes them run out of memory).
    for attempt, died_at in enumerate((now, now + timedelta(minutes=11)), start=1):
        claim = Scheduler(config, store_engine, worker_id=f"dead{attempt}", clock=clock_at(died_at)).claim()
        assert claim is not None and claim.attempt == attempt
    survivor = Scheduler(config, store_engine, worker_id="survivor", clock=clock_at(now + timedelta(minutes=22)))
    with caplog.at_level("WARNING", logger="monitor.runs.scheduler"):
        assert survivor.run_due() == 0
    run = the_run(store_engine)
    assert (run.status, run.attempts, run.claimed_by, run.claimed_until) == ("failed", 2, "dead2", None)
    assert run.error.startswith("abandoned after 2 attempts: the lease of the last one expired")
    assert [r.getMessage() for r in caplog.records] == ["run abandoned after its last attempt: failed"]
    assert survivor.run_due() == 0  # for good, until retried


def test_a_failing_recompute_stops_after_its_attempts_and_keeps_its_scores(store_engine: Engine) -> None:
    config = with_worker(make_config(), max_attempts=2)
    one_pending_window(store_engine, config)
    now = T0 + 2 * HOUR
    assert Scheduler(config, store_engine, clock=clock_at(now)).run_due() == 1
    computed = the_run(store_engine)
    assert (computed.status, computed.attempts) == ("succeeded", 1)
    scores_before = score_ids(store_engine)
    # Late data makes the window stale, and its reference can no longer be loaded.
    with store_engine.begin() as connection:
        connection.execute(update(Run).values(stale_since=now + timedelta(minutes=1)))
    broken = make_config(reference={"dataset": "gone.parquet"})
    broken = with_worker(broken, max_attempts=2)
    recompute = Scheduler(broken, store_engine, clock=clock_at(now + timedelta(minutes=2)))
    assert recompute.run_due() == 1
    run = the_run(store_engine)
    # The recompute's first attempt (not the run's second): the run keeps its result meanwhile.
    assert (run.status, run.attempts, run.stale_since is not None) == ("succeeded", 1, True)
    assert recompute.run_due() == 0  # its back-off: one lease
    recompute.clock = clock_at(now + timedelta(minutes=13))
    assert recompute.run_due() == 1
    run = the_run(store_engine)
    assert (run.status, run.attempts, run.claimed_until, run.stale_since is not None) == ("failed", 2, None, True)
    assert "reference dataset 'gone.parquet' not uploaded" in run.error
    assert score_ids(store_engine) == scores_before  # the last result stays readable, marked failed and stale
    recompute.clock = clock_at(now + timedelta(hours=5))
    assert recompute.run_due() == 0


def score_ids(engine: Engine) -> set[int]:
    with engine.connect() as connection:
        return set(connection.scalars(select(Score.id)))


def test_runs_list_shows_why_a_run_failed_and_retry_computes_it_again(sqlite_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "driftscope.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "store": str(sqlite_engine.url),
                "models": {"churn": make_config().models["churn"].model_dump(mode="json", exclude_defaults=True)},
                "monitors": {
                    "churn-hourly": {
                        "model": "churn",
                        "window": "1h",
                        "lateness": "5m",
                        "min_rows": 20,
                        "reference": {"dataset": "train.csv"},
                    }
                },
                "worker": {"metrics_port": None, "max_attempts": 2, "run_lease": "1m"},
            }
        )
    )
    config = load_config(path)
    add_predictions(sqlite_engine, config, range(1))
    now = T0 + HOUR + timedelta(minutes=5)
    scheduler = Scheduler(config, sqlite_engine, clock=clock_at(now))
    assert scheduler.tick() == 1  # the dataset was never uploaded
    scheduler.clock = clock_at(now + timedelta(minutes=2))
    assert scheduler.tick() == 1
    assert scheduler.tick() == 0  # out of attempts

    listed = invoke("runs", "list", "--status", "failed", "--config", str(path))
    assert listed.exit_code == 0, listed.output
    header, line = [row for row in listed.output.splitlines() if "\t" in row]  # piped: tab-separated
    assert header.split("\t") == ["id", "monitor", "window", "status", "attempts", "rows", "finished", "error"]
    run_id, monitor, window, status, attempts, _, _, error = line.split("\t")
    assert (monitor, window, status, attempts) == ("churn-hourly", "2026-03-02 00:00:00Z", "failed", "2")
    assert "run `driftscope reference upload --model churn train.csv`" in error

    # The fix the error names, then the retry.
    rng = np.random.default_rng(3)
    tenure = rng.normal(0, 1, 300)
    pd.DataFrame(
        {"tenure": tenure, "plan": rng.choice(["basic", "pro"], 300), "prediction": (tenure > 0).astype(int),
         "score": 1 / (1 + np.exp(-tenure)), "label": (rng.random(300) < 0.5).astype(int)}
    ).to_csv(tmp_path / "train.csv", index=False)  # fmt: skip
    upload_dataset(sqlite_engine, config, "churn", tmp_path / "train.csv")
    retried = invoke(
        "runs", "retry", "--monitor", "churn-hourly", "--window", "2026-03-02T00:30Z", "--config", str(path)
    )
    assert retried.exit_code == 0, retried.output
    assert f"run {run_id} (churn-hourly, window 2026-03-02T00:30Z) pending again" in retried.output
    run = the_run(sqlite_engine)
    assert (run.status, run.attempts, run.claimed_until) == ("pending", 0, None)
    assert scheduler.tick() == 1
    run = the_run(sqlite_engine)
    assert (run.status, run.attempts, run.error) == ("succeeded", 1, None)

    nothing = invoke("runs", "retry", "--all-failed", "--config", str(path))
    assert nothing.exit_code == 0 and nothing.output.endswith("\n0 failed run(s) pending again\n")
    unknown = invoke("runs", "retry", "--id", "999", "--config", str(path))
    assert unknown.exit_code == 2 and "run 999 does not exist" in unknown.output
    vague = invoke("runs", "retry", "--monitor", "churn-hourly", "--config", str(path))
    assert vague.exit_code == 2 and "give one of --id, --monitor with --window, or --all-failed" in vague.output


def test_retry_all_failed_and_a_held_run_is_not_retried(store_engine: Engine) -> None:
    config = with_worker(make_config(reference={"dataset": "gone.parquet"}), max_attempts=1)
    add_predictions(store_engine, config, range(3))
    scheduler = Scheduler(config, store_engine, clock=clock_at(T0 + 3 * HOUR + timedelta(minutes=5)))
    assert scheduler.tick() == 3
    assert {r.status for r in all_runs(store_engine)} == {"failed"}
    assert retry_failed(store_engine, ["another-monitor"]) == 0
    assert retry_failed(store_engine, ["churn-hourly"]) == 3
    assert {(r.status, r.attempts) for r in all_runs(store_engine)} == {("pending", 0)}
    claim = scheduler.claim()
    assert claim is not None
    with pytest.raises(ActionError, match=f"run {claim.run_id} is being computed by {scheduler.worker_id}"):
        retry_run(store_engine, claim.run_id, now=T0 + 3 * HOUR + timedelta(minutes=6))


def all_runs(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(select(Run).order_by(Run.window_start)).all()
