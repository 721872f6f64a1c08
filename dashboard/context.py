"""What every page needs: the config, the store and the optional report renderer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from monitor.config import Config

# render_report(monitor, window_start) -> a standalone HTML document (the Evidently window report).
ReportRenderer = Callable[[str, datetime], str]


@dataclass(frozen=True)
class Context:
    config: Config
    engine: Engine
    render_report: ReportRenderer | None = None

    @property
    def login(self) -> bool:
        return self.config.dashboard.auth != "none"

    def now(self) -> datetime:
        return datetime.now(UTC)
