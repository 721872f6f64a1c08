"""One exception root for Driftscope; third-party errors are translated at the boundary with ``raise … from``.

Every subclass, with the module that defines it (``tests/unit/test_errors.py`` keeps this drawing true)::

    DriftscopeError
    ├── ConfigError               monitor.config: a configuration that cannot be used, every problem with its key path
    │   └── RuleError             alerts.rules: an alert rule that cannot be evaluated (selector, condition, scope)
    ├── StoreError                monitor.errors: the store is not migrated or cannot be used
    │   └── StoreUnreachable      monitor.errors: no connection to the store (down, refused, wrong credentials)
    ├── SourceError               monitor.errors: a collector's source failed (``transient``: whether a retry may help)
    ├── UnknownModelError         monitor.ingest: records or a collector name a model the config does not have
    ├── LabelFileError            monitor.ingest.files: a label file that cannot be read as a whole (type, columns)
    ├── ApiKeyError               monitor.store.api_keys: a duplicate or unknown API key name
    ├── ActionError               monitor.store.actions: a human action that cannot be applied (unknown alert...)
    ├── DeploymentError           monitor.store.deployments: a deployment that cannot be recorded (bad version, URL...)
    ├── ReferenceError            monitor.runs.files: a reference that cannot be read or built
    ├── InsufficientReference     monitor.runs.references: too few reference rows (the run is ``insufficient_data``)
    ├── ReportError               monitor.runs.drilldown: a report that cannot be built (unknown monitor, empty window)
    ├── CheckError                monitor.runs.gate: input ``driftscope check`` cannot use (exit code 2)
    ├── CanaryError               monitor.runs.canary: a canary that cannot be run (unknown model, one version twice)
    └── DeliveryError             alerts.base: a notification not delivered (``transient``, ``retry_after``)

The CLI turns any of them into one line and exit code 2 (exit 1 for an unreachable store); only
transient errors are retried (:mod:`monitor.retry`). Their messages go through :func:`redact`, as
every log line does (:mod:`monitor.logs`): a source URL with a password in it never reaches a terminal.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"

# Query parameters that carry a credential, compared lower-cased.
SECRET_PARAMS = frozenset(
    {
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "apikey",
        "api_key",
        "api-key",
        "key",
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "auth",
        "authorization",
        "signature",
        "sig",
    }
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
# Greedy up to the last "@" of the authority, as urlsplit reads it (a raw "@" in a password included).
_USERINFO = re.compile(r"^([^:]+://)[^/?#]*@")
_PARAM = re.compile(r"([?&;])([^=&;#]+)=([^&;#]*)")


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``[redacted]``: the userinfo
    (``user:password@``) and the values of :data:`SECRET_PARAMS` in the query.

    Works on a URL alone or on a message that quotes URLs.

    >>> redact("Prometheus at http://admin:s3cret@prom:9090/x?step=1&token=abc unreachable")
    'Prometheus at http://[redacted]@prom:9090/x?step=1&token=[redacted] unreachable'
    """
    return _URL.sub(_redact_url, text) if "://" in text else text


def _redact_url(match: re.Match[str]) -> str:
    url = _USERINFO.sub(rf"\1{REDACTED}@", match[0], count=1)
    return _PARAM.sub(_redact_param, url)


def _redact_param(match: re.Match[str]) -> str:
    if match[2].lower() in SECRET_PARAMS:
        return f"{match[1]}{match[2]}={REDACTED}"
    return match[0]


class DriftscopeError(Exception):
    """Base of every error Driftscope raises on purpose; string arguments are :func:`redact`-ed."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(arg) if isinstance(arg, str) else arg for arg in args))


class StoreError(DriftscopeError):
    pass


class StoreUnreachable(StoreError):
    """The store could not be connected to; the message names it (without its password) and why."""


class SourceError(DriftscopeError):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient
