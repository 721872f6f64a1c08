"""``driftscope demo``: a made-up loan-approval model whose traffic drifts, on an embedded store.

The simulator writes through the same ingestion function as the HTTP API, so the demo
exercises the real path end to end: ingestion → scheduler → detectors → alerts → dashboard.

On first start it backfills a few hours of history (with one past drift episode, so the
dashboard has something to show at once), then streams live traffic; live drift begins
half a minute in, so a newcomer sees it appear within two minutes. Labels arrive later than their
predictions, as they do in production. Its state (when it started, how far it wrote) is kept
in the store, so a restart continues where it stopped.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine

from monitor.config import Config, parse_config
from monitor.ingest import ingest_labels, ingest_predictions
from monitor.ingest.writer import read_checkpoint, write_checkpoint
from monitor.store.engine import transaction

log = logging.getLogger(__name__)

MODEL = "loan-approval"
MONITOR = "loan-approval-1m"
WINDOW = timedelta(minutes=1)
DEFAULT_HISTORY = timedelta(hours=3)
LIVE_DRIFT_AFTER = timedelta(seconds=30)
LABEL_DELAY = timedelta(seconds=20)
RATE_PER_SECOND = 8.0
STATE_KEY = "demo:simulator"

PURPOSES = ["debt_consolidation", "home_improvement", "car", "education", "medical", "small_business"]
PURPOSE_MIX = np.array([0.38, 0.18, 0.16, 0.12, 0.08, 0.08])
DRIFTED_PURPOSE_MIX = np.array([0.20, 0.10, 0.12, 0.10, 0.08, 0.40])
HOMES = ["rent", "mortgage", "own"]
HOME_MIX = np.array([0.45, 0.40, 0.15])
CHANNELS = ["web", "mobile", "branch", "partner"]
CHANNEL_MIX = np.array([0.5, 0.3, 0.2, 0.0])
DRIFTED_CHANNEL_MIX = np.array([0.3, 0.2, 0.1, 0.4])


@dataclass(frozen=True, slots=True)
class Timeline:
    """When the demo started and how much history it backfilled; everything else follows from these.

    The first third of the history is the reference; a drift episode fills 60–75 % of it; live
    traffic starts drifting ``LIVE_DRIFT_AFTER`` the start.
    """

    started_at: datetime
    history: timedelta = DEFAULT_HISTORY

    @property
    def history_start(self) -> datetime:
        # On a whole minute, so windows are too.
        return (self.started_at - self.history).replace(second=0, microsecond=0)

    @property
    def reference(self) -> tuple[datetime, datetime]:
        return self.history_start, self.history_start + self.history / 3

    @property
    def past_episode(self) -> tuple[datetime, datetime]:
        return self.history_start + self.history * 0.6, self.history_start + self.history * 0.75

    def drift_at(self, ts: datetime) -> float:
        """How far traffic at ``ts`` has drifted from the reference population, in [0, 1]."""
        episode_start, episode_end = self.past_episode
        if episode_start <= ts < episode_end:
            return 0.8
        live_drift_start = self.started_at + LIVE_DRIFT_AFTER
        if ts < live_drift_start:
            return 0.0
        # Ramps in quickly, so the first drifted window is already clearly drifted.
        return min(1.0, 0.6 + (ts - live_drift_start).total_seconds() / 150)

    def to_state(self, written_until: datetime) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "history_seconds": self.history.total_seconds(),
            "written_until": written_until.isoformat(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Timeline:
        history = timedelta(seconds=state.get("history_seconds", DEFAULT_HISTORY.total_seconds()))
        return cls(datetime.fromisoformat(state["started_at"]), history)


def demo_config(store_url: str, timeline: Timeline, port: int = 8050) -> Config:
    """The demo's configuration, anchored at the simulator's first start."""
    start = timeline.history_start
    reference_start, reference_end = timeline.reference
    return parse_config(
        {
            "store": store_url,
            "models": {
                MODEL: {
                    "task": "binary",
                    "positive_class": "1",
                    "features": {
                        "income": "numeric",
                        "loan_amount": "numeric",
                        "credit_score": "numeric",
                        "debt_to_income": "numeric",
                        "employment_years": "numeric",
                        "age": "numeric",
                        "open_accounts": "numeric",
                        "purpose": "categorical",
                        "home_ownership": "categorical",
                        "channel": "categorical",
                    },
                }
            },
            "monitors": {
                MONITOR: {
                    "model": MODEL,
                    "window": "1m",
                    "lateness": "5s",
                    "start": start.isoformat(),
                    "min_rows": 20,
                    "reference": {"range": [reference_start.isoformat(), reference_end.isoformat()]},
                    "performance": ["roc_auc", "accuracy", "f1"],
                    "estimated_performance": True,
                    # 1-minute windows of ~480 rows: Evidently's fixed thresholds flag a feature in
                    # 22 % of calm windows here; calibrated ones keep the budget and still catch
                    # every drifted window (bench/demo_calm.py, docs/benchmarks.md).
                    "drift": {"threshold": "calibrated", "false_alarms": "1 per 30 days"},
                }
            },
            "alerts": {
                "rules": [
                    {
                        "name": "feature drift",
                        "when": "drift.share_drifted > 0.3",
                        "resolve_when": "drift.share_drifted < 0.2",
                        "for": "2 windows",
                        "severity": "warning",
                        "notify": ["console"],
                    },
                    {
                        "name": "AUC drop",
                        "when": "performance.roc_auc < 0.78",
                        "resolve_when": "performance.roc_auc > 0.82",
                        "for": "2 windows",
                        "severity": "critical",
                        "notify": ["console"],
                    },
                ],
                "channels": {"console": {"kind": "console"}},
                "group_wait": "5s",
                "group_interval": "1m",
            },
            "dashboard": {"port": port, "public_url": f"http://127.0.0.1:{port}"},
            "worker": {"tick": "5s", "metrics_port": None},
        },
        source="demo",
    )


@dataclass(frozen=True, slots=True)
class Applicant:
    """One simulated prediction with the label the world will reveal later."""

    id: str
    timestamp: datetime
    features: dict[str, Any]
    score: float
    label: int


class LoanTraffic:
    """Deterministic traffic: the same seed and times give the same applicants.

    ``drift`` in [0, 1] blends the applicant population from its reference shape into a
    riskier one (lower incomes and credit scores, more small-business loans, a new partner
    channel), and weakens the model's score as its learned relationship goes stale.
    """

    def __init__(self, seed: int = 7) -> None:
        self._rng = np.random.default_rng(seed)
        self._counter = 0

    def applicants(self, timestamps: list[datetime], drift: np.ndarray) -> list[Applicant]:
        """One applicant per timestamp; ``drift[i]`` is how far the population has moved at ``timestamps[i]``."""
        n = len(timestamps)
        if n == 0:
            return []
        rng = self._rng
        income = rng.lognormal(mean=math.log(62_000) - 0.35 * drift, sigma=0.45, size=n)
        credit = np.clip(rng.normal(690 - 45 * drift, 55 + 10 * drift, size=n), 300, 850)
        dti = np.clip(rng.beta(2.2 + 1.5 * drift, 6.0, size=n), 0, 1)
        employment = np.clip(rng.gamma(2.0, 3.0, size=n), 0, 45)
        age = np.clip(rng.normal(41, 11, size=n), 18, 90)
        accounts = rng.poisson(7 + 2 * drift, size=n)
        loan = np.clip(income * rng.uniform(0.08, 0.45, size=n) * (1 + 0.4 * drift), 1_000, 250_000)
        column = drift[:, None]
        purpose = _choose(rng, (1 - column) * PURPOSE_MIX + column * DRIFTED_PURPOSE_MIX)
        home = _choose(rng, np.broadcast_to(HOME_MIX, (n, len(HOMES))))
        channel = _choose(rng, (1 - column) * CHANNEL_MIX + column * DRIFTED_CHANNEL_MIX)

        # The world: how likely an applicant really repays. Under drift, small-business and
        # partner-channel loans behave worse than the model learned.
        logit_true = (
            -0.6
            + 2.2 * (credit - 690) / 55
            - 2.8 * (dti - 0.27)
            + 0.5 * np.log(income / 62_000)
            - 0.9 * np.log(loan / 12_000) / 2
            - 3.0 * drift * ((purpose == PURPOSES.index("small_business")) | (channel == CHANNELS.index("partner")))
        )
        label = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit_true))).astype(int)
        # The model: learned on reference traffic. On applicants unlike those it grows unsure (scores
        # closer to 0.5: what label-free estimation reads as a drop, before any label arrives) and
        # noisier; scores made extreme by noise would instead raise the estimate while accuracy falls.
        logit_model = (
            -0.6
            + 2.0 * (credit - 690) / 55
            - 2.5 * (dti - 0.27)
            + 0.45 * np.log(income / 62_000)
            - 0.4 * np.log(loan / 12_000) / 2
        ) * (1 - 0.8 * drift) + rng.normal(0, 0.5 + 0.5 * drift, size=n)
        score = 1 / (1 + np.exp(-logit_model))

        out = []
        for i, ts in enumerate(timestamps):
            self._counter += 1
            out.append(
                Applicant(
                    id=f"app-{int(ts.timestamp() * 1000)}-{self._counter}",
                    timestamp=ts,
                    features={
                        "income": round(float(income[i]), 2),
                        "loan_amount": round(float(loan[i]), 2),
                        "credit_score": round(float(credit[i])),
                        "debt_to_income": round(float(dti[i]), 4),
                        "employment_years": round(float(employment[i]), 1),
                        "age": round(float(age[i])),
                        "open_accounts": int(accounts[i]),
                        "purpose": PURPOSES[purpose[i]],
                        "home_ownership": HOMES[home[i]],
                        "channel": CHANNELS[channel[i]],
                    },
                    score=round(float(score[i]), 5),
                    label=int(label[i]),
                )
            )
        return out


def _choose(rng: np.random.Generator, mix: np.ndarray) -> np.ndarray:
    """One category index per row of ``mix`` (rows of probabilities), vectorized."""
    cumulative = np.cumsum(mix, axis=1)
    return (rng.uniform(size=(len(mix), 1)) * cumulative[:, -1:] > cumulative).sum(axis=1)


def timestamps_between(start: datetime, end: datetime, rate: float, rng: np.random.Generator) -> list[datetime]:
    """Poisson arrivals at ``rate`` per second in [start, end)."""
    seconds = (end - start).total_seconds()
    if seconds <= 0:
        return []
    offsets = np.sort(rng.uniform(0, seconds, size=rng.poisson(rate * seconds)))
    return [start + timedelta(seconds=float(s)) for s in offsets]


def prediction_record(applicant: Applicant) -> dict[str, Any]:
    return {
        "id": applicant.id,
        "timestamp": applicant.timestamp.isoformat(),
        "features": applicant.features,
        "prediction": "1" if applicant.score >= 0.5 else "0",
        "score": applicant.score,
    }


def label_record(applicant: Applicant) -> dict[str, Any]:
    return {
        "id": applicant.id,
        "timestamp": (applicant.timestamp + LABEL_DELAY).isoformat(),
        "label": str(applicant.label),
    }


def load_timeline(engine: Engine, now: datetime, history: timedelta = DEFAULT_HISTORY) -> Timeline:
    """The demo's timeline: remembered in the store, so a restart continues the same story."""
    state = read_checkpoint(engine, STATE_KEY)
    if state is not None:
        return Timeline.from_state(state)
    timeline = Timeline(now, history)
    with transaction(engine) as session:
        write_checkpoint(session, STATE_KEY, timeline.to_state(timeline.history_start))
    return timeline


class Simulator:
    """Writes traffic (and labels after ``LABEL_DELAY``) up to the present, then keeps up live."""

    def __init__(self, engine: Engine, config: Config, timeline: Timeline, seed: int = 7) -> None:
        self.engine = engine
        self.config = config
        self.timeline = timeline
        self.traffic = LoanTraffic(seed)
        self._arrivals = np.random.default_rng(seed + 1)
        self._pending_labels: list[Applicant] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def write_until(self, until: datetime, on_slice: Callable[[datetime, int], None] | None = None) -> int:
        """Write predictions from the stored position up to ``until``, in one-minute slices.

        Each slice's predictions and the new position commit in one transaction, so a crash
        never writes a slice twice. Labels still in flight when the process stops are lost,
        as they would be from a real service that went down.
        """
        position = self.written_until()
        written = 0
        while position < until:
            end = min(until, position + WINDOW)
            times = timestamps_between(position, end, RATE_PER_SECOND, self._arrivals)
            applicants = self.traffic.applicants(times, np.array([self.timeline.drift_at(t) for t in times]))
            ingest_predictions(
                self.engine,
                self.config,
                MODEL,
                [prediction_record(a) for a in applicants],
                "demo",
                shape="canonical",
                checkpoint=(STATE_KEY, self.timeline.to_state(end)),
            )
            self._pending_labels.extend(applicants)
            due = [a for a in self._pending_labels if a.timestamp + LABEL_DELAY <= end]
            if due:
                ingest_labels(
                    self.engine, self.config, MODEL, [label_record(a) for a in due], "demo", shape="canonical"
                )
                self._pending_labels = self._pending_labels[len(due) :]
            position = end
            written += len(applicants)
            if on_slice is not None:
                on_slice(end, written)
        return written

    def written_until(self) -> datetime:
        state = read_checkpoint(self.engine, STATE_KEY)
        return datetime.fromisoformat(state["written_until"]) if state else self.timeline.history_start

    def start(self, tick: float = 1.0) -> None:
        """Keep writing live traffic every ``tick`` seconds on a background thread."""
        self._thread = threading.Thread(target=self._run, args=(tick,), name="demo-traffic", daemon=True)
        self._thread.start()

    def _run(self, tick: float) -> None:
        while not self._stop.wait(tick):
            try:
                self.write_until(datetime.now(UTC))
            except Exception:
                log.exception("demo traffic failed; retrying")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
