"""The Driftscope dashboard (Dash + Plotly): read-only views of the store.

``create_app(config, engine, render_report=None)`` builds the app; ``driftscope dashboard`` serves it.
"""

from dashboard.app import create_app

__all__ = ["create_app"]
