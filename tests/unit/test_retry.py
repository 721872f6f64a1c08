"""The shared retry helper: transient errors are retried with capped, jittered backoff; the rest are not."""

from __future__ import annotations

import random

import pytest

from alerts.base import DeliveryError
from monitor.errors import SourceError
from monitor.retry import Backoff, call, is_transient, is_transient_status


class _Status(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class Script:
    """A call that fails with the scripted errors, then returns "ok"; records the fake clock's sleeps."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors: list[BaseException] = list(errors)
        self.calls = 0
        self.slept: list[float] = []

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (SourceError("down", transient=True), True),
        (SourceError("bad query", transient=False), False),
        (DeliveryError("rate limited", transient=True, retry_after=3), True),
        (DeliveryError("HTTP 404", transient=False), False),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (_Status(408), True),
        (_Status(429), True),
        (_Status(503), True),
        (_Status(400), False),
        (_Status(404), False),
        (ValueError("a bug"), False),
        (KeyError("a bug"), False),
    ],
)
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_transient_statuses() -> None:
    assert [
        s for s in (200, 301, 400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504) if is_transient_status(s)
    ] == [
        408,
        429,
        500,
        502,
        503,
        504,
    ]


def test_transient_errors_are_retried_with_backoff_until_success() -> None:
    script = Script(TimeoutError(), SourceError("503", transient=True))
    retries: list[tuple[int, float]] = []
    result = call(
        script,
        Backoff(attempts=5, base=1.0, cap=10.0, jitter=0.0),
        sleep=script.sleep,
        on_retry=lambda n, wait, exc: retries.append((n, wait)),
    )
    assert (result, script.calls, script.slept) == ("ok", 3, [1.0, 2.0])
    assert retries == [(1, 1.0), (2, 2.0)]


def test_a_permanent_error_is_raised_at_once() -> None:
    script = Script(SourceError("bad query", transient=False))
    with pytest.raises(SourceError, match="bad query"):
        call(script, Backoff(attempts=5), sleep=script.sleep)
    assert (script.calls, script.slept) == (1, [])


def test_giving_up_raises_the_last_error_itself() -> None:
    errors = [SourceError(f"down {i}", transient=True) for i in range(5)]
    script = Script(*errors)
    with pytest.raises(SourceError, match="down 2"):
        call(script, Backoff(attempts=3, base=0.0), sleep=script.sleep)
    assert script.calls == 3


def test_unlimited_attempts_stop_when_the_caller_says_so() -> None:
    script = Script(*[ConnectionResetError() for _ in range(100)])
    with pytest.raises(ConnectionResetError):
        call(script, Backoff(attempts=None, base=0.0), sleep=script.sleep, stop=lambda: script.calls >= 7)
    assert script.calls == 7


def test_backoff_doubles_up_to_the_cap_with_equal_jitter() -> None:
    policy = Backoff(base=0.5, cap=8.0)
    rng = random.Random(3)
    for attempt, full in [(1, 0.5), (2, 1), (3, 2), (5, 8), (6, 8), (40, 8)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert full / 2 <= min(delays) and max(delays) <= full
        assert max(delays) - min(delays) > full / 4  # jittered, not constant


def test_a_positive_retry_after_wins_over_the_backoff() -> None:
    assert Backoff(base=30.0).delay(1, retry_after=120.0) == 120.0
    assert Backoff(base=30.0).delay(1, retry_after=5.0) == 5.0
    assert 15.0 <= Backoff(base=30.0).delay(1, retry_after=0.0) <= 30.0  # "now" must not mean a busy loop
