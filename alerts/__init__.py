"""Alerts: rules over scores and metrics → alert state (pending → firing → resolved) → outbox → channels.

The worker calls two functions on a schedule; both take ``now`` so tests run on a simulated clock:

- :func:`evaluate` reads the newest scores and metric points, moves alerts through their lifecycle and
  writes the due notifications to the outbox, in one transaction;
- :func:`deliver_due` delivers due outbox rows with retries and returns how many it delivered.

Human actions (acknowledge, silence) live in :mod:`monitor.store.actions` so the dashboard can use them.
"""

from alerts.engine import evaluate
from alerts.outbox import RetryPolicy, deliver_due
from alerts.rules import RuleError, compile_rules

__all__ = ["RetryPolicy", "RuleError", "compile_rules", "deliver_due", "evaluate"]
