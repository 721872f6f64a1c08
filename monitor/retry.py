"""Retry transient failures only, with one backoff policy: exponential, capped, jittered.

Used by the collectors, the SDK and the alert outbox. The SDK is imported by model services, so this
module imports nothing of the project and nothing beyond the standard library and tenacity. The
outbox schedules its retries in the store across worker ticks; it takes only :meth:`Backoff.delay`.

>>> policy = Backoff(attempts=3, base=1.0, cap=4.0, jitter=0.0)
>>> [policy.delay(n) for n in (1, 2, 3, 4)]
[1.0, 2.0, 4.0, 4.0]
>>> calls = []
>>> def flaky() -> str:
...     calls.append(1)
...     if len(calls) < 3:
...         raise TimeoutError("slow")
...     return "ok"
>>> call(flaky, policy, sleep=lambda seconds: None)
'ok'
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception

T = TypeVar("T")

# Request timeout and rate limiting; every 5xx is transient as well (see is_transient_status).
TRANSIENT_STATUS = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class Backoff:
    """How often and how long to retry.

    ``attempts`` counts the first try (None: until the caller's own stop condition). The n-th retry
    waits ``min(cap, base * 2**(n-1))`` seconds, of which the fraction ``jitter`` is drawn at random
    ("equal jitter" at 0.5: between half and all of it), so clients that failed together do not
    retry together.
    """

    attempts: int | None = 5
    base: float = 0.5
    cap: float = 30.0
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random | None = None, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        A server's positive ``Retry-After`` wins; zero (or a date in the past) falls back to the
        backoff, so a target cannot make us hammer it.
        """
        if retry_after:
            return retry_after
        full = min(self.cap, self.base * 2 ** max(attempt - 1, 0))
        return full * (1.0 - self.jitter * (rng or _rng).random())


_rng = random.Random()


def is_transient_status(status: int) -> bool:
    """HTTP statuses worth retrying: 408, 429 and every 5xx."""
    return status in TRANSIENT_STATUS or status >= 500


def is_transient(exc: BaseException) -> bool:
    """Whether a retry may help.

    An error that says so decides (``SourceError`` and ``DeliveryError`` carry a ``transient`` flag);
    otherwise OS-level failures (connection refused or reset, DNS, timeouts) are transient, an error
    carrying an HTTP ``status_code`` is transient for 408/429/5xx, and anything else is permanent.
    Third-party errors without either (httpx's, elastic-transport's) are translated by the caller first.
    """
    flag = getattr(exc, "transient", None)
    if isinstance(flag, bool):
        return flag
    if isinstance(exc, OSError):  # ConnectionError, TimeoutError, socket.gaierror are all OSError
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and is_transient_status(status)


OnRetry = Callable[[int, float, BaseException], None]  # (failed attempt number, seconds to wait, its error)


def call(
    fn: Callable[[], T],
    policy: Backoff,
    *,
    stop: Callable[[], bool] | None = None,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """``fn()``, retried while its error :func:`is_transient`, for ``policy.attempts`` tries or until
    ``stop()`` says so, waiting ``policy.delay`` in between. When it gives up, or the error is
    permanent, that error itself is raised."""

    def wait(state: RetryCallState) -> float:
        return policy.delay(state.attempt_number, rng)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if on_retry is not None and error is not None and state.next_action is not None:
            on_retry(state.attempt_number, state.next_action.sleep, error)

    def give_up(state: RetryCallState) -> bool:
        exhausted = policy.attempts is not None and state.attempt_number >= policy.attempts
        return exhausted or (stop is not None and stop())

    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        stop=give_up,
        wait=wait,
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    return retrying(fn)
