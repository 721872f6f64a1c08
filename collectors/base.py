"""The one extension point for sources: a :class:`Collector` reads from outside and writes to the store.

A collector keeps its position in the ``checkpoint`` table, written in the same transaction as
the rows it covers, so a crash at any point neither loses nor doubles anything on restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CollectResult:
    """What one :meth:`Collector.collect` call did."""

    collector: str
    stored: int
    rejected: int
    position: datetime | None
    caught_up: bool


class Collector(Protocol):
    """Reads one source for one model, incrementally, from its checkpoint."""

    @property
    def name(self) -> str:
        """Stable checkpoint key, e.g. ``elasticsearch:churn``."""
        ...

    @property
    def interval(self) -> timedelta:
        """How often the worker calls :meth:`collect` (the source's ``interval``)."""
        ...

    def collect(self, until: datetime | None = None) -> CollectResult:
        """Read what is new since the checkpoint (up to ``until``) and store it; safe to call repeatedly."""
        ...
