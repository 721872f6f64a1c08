"""One exception root for Driftscope; third-party errors are translated at the boundary::

DriftscopeError
├── ConfigError        (monitor.config) a configuration that cannot be used
├── StoreError         the store is not migrated or cannot be used
│   └── StoreUnreachable   no connection to the store (down, refused, wrong credentials)
└── SourceError        a collector's source failed (``transient`` tells whether a retry may help)
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
