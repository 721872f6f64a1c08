"""The dashboard's pages, one module each (see :mod:`dashboard.pages.base` for the interface).

:data:`PAGES` is the one registry: the router tries each page's path in this order.
"""

from typing import Any

from dashboard.pages import alerts, compare, feature, model, overview, report
from dashboard.pages.base import Page

PAGES: tuple[Page[Any], ...] = (overview.PAGE, model.PAGE, compare.PAGE, feature.PAGE, alerts.PAGE, report.PAGE)
