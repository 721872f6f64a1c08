"""One exception root for Driftscope; third-party errors are translated at the boundary with ``raise … from``.

Every subclass, with the module that defines it (``tests/unit/test_errors.py`` keeps this drawing true)::

    DriftscopeError
    ├── ConfigError               monitor.config: a configuration that cannot be used, every problem with its key path
    │   └── RuleError             alerts.rules: an alert rule that cannot be evaluated (selector, condition, scope)
    ├── StoreError                monitor.errors: the store is not migrated or cannot be used
    │   └── StoreUnreachable      monitor.errors: no connection to the store (down, refused, wrong credentials)
    ├── SourceError               monitor.errors: a collector's source failed (``transient``: whether a retry may help)
    ├── UnknownModelError         monitor.ingest: records or a collector name a model the config does not have
    ├── ApiKeyError               monitor.store.api_keys: a duplicate or unknown API key name
    ├── ActionError               monitor.store.actions: a human action that cannot be applied (unknown alert...)
    ├── ReferenceError            monitor.runs.references: a reference that cannot be read or built
    ├── InsufficientReference     monitor.runs.references: too few reference rows (the run is ``insufficient_data``)
    ├── ReportError               monitor.runs.drilldown: a report that cannot be built (unknown monitor, empty window)
    ├── CheckError                monitor.runs.gate: input ``driftscope check`` cannot use (exit code 2)
    └── DeliveryError             alerts.base: a notification not delivered (``transient``, ``retry_after``)

The CLI turns any of them into one line and exit code 2 (exit 1 for an unreachable store); only
transient errors are retried (:mod:`monitor.retry`).
"""

from __future__ import annotations


class DriftscopeError(Exception):
    """Base of every error Driftscope raises on purpose."""


class StoreError(DriftscopeError):
    pass


class StoreUnreachable(StoreError):
    """The store could not be connected to; the message names it (without its password) and why."""


class SourceError(DriftscopeError):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient
