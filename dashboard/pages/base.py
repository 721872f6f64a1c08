"""The one interface every dashboard page implements.

A page answers a URL pattern. The router (``dashboard/app.py``) matches the URL, calls ``query`` (the
store reads, through :mod:`dashboard.queries`) and hands the result to ``render`` (components and
figures, no store access), so what a page shows is a function of the URL and the data alone.
``register_callbacks`` wires the page's controls once at start-up; controls only rewrite the URL or act
on the store, and the router re-renders.

Adding a page: one module under ``dashboard/pages/`` that ends with ``PAGE = Page(...)``, and one
entry in :data:`dashboard.pages.PAGES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import dash
from dash.development.base_component import Component

from dashboard.context import Context
from dashboard.state import Location

D = TypeVar("D")


@dataclass(frozen=True)
class Page(Generic[D]):
    # Route pattern; ``<name>`` matches one path segment and reaches the page as ``location.params[name]``.
    path: str
    query: Callable[[Context, Location], D]
    render: Callable[[Location, D], Component]
    register_callbacks: Callable[[dash.Dash, Context], None]
    # False where a periodic re-render would lose work: an open dialog, an expensive embedded report.
    auto_refresh: bool = True

    def layout(self, ctx: Context, location: Location) -> Component:
        return self.render(location, self.query(ctx, location))
