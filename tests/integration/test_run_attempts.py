"""Leases renewed by heartbeat, attempt limits and retries of runs, on both stores."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from monitor.config import Config
from monitor.runs.scheduler import Scheduler
from monitor.store.tables import Run
from tests.integration.test_scheduler import HOUR, T0, add_predictions, clock_at, make_config

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
