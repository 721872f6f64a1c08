"""Deployments as events: who deployed which version of a model, when, from which pipeline run.

``driftscope deploy record``, ``POST /v1/models/{model}/deployments`` and the dashboard's markers all go
through here. A deployment with ``traffic`` (a share in (0, 1]) below 1 is a canary: it does not change
the model's current version. The current version at a time is the version of the newest deployment at or
before it that took all traffic (``traffic`` NULL or 1); a prediction that names no version of its own
belongs to it (:func:`version_at`, :func:`versions_seen`).

Every value is checked before it is stored, and each bad one is named with its field in one
:class:`DeploymentError`: the URL becomes a link on the dashboard, the version a label on charts and in
alert messages, so both are treated as hostile.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine, and_, func, or_, select

from monitor.errors import DriftscopeError
from monitor.store.engine import transaction
from monitor.store.tables import Deployment, Model, Prediction

MAX_VERSION_LENGTH = 100  # prediction.model_version and deployment.version are VARCHAR(100)
MAX_COMMIT_LENGTH = 100
MAX_URL_LENGTH = 2000
MAX_NOTE_LENGTH = 2000
MAX_BY_LENGTH = 200
_PERCENT = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*%\s*")


class DeploymentError(DriftscopeError):
    """A deployment that cannot be recorded (unknown model, bad version, traffic, URL...); names each field."""


def check_version(value: Any) -> str:
    """A model version as sent (``"2.1"``, ``"v2-canary"``); raises ValueError saying what is wrong with it.

    Versions name series in charts, labels in alert messages and rows in the dashboard: a printable
    string of 1 to 100 characters, so nothing upstream can smuggle line breaks or escapes into them.
    """
    if not isinstance(value, str):
        raise ValueError(f"expected a version string, got {_show(value)}")
    if not 1 <= len(value) <= MAX_VERSION_LENGTH:
        raise ValueError(f"version must be 1 to {MAX_VERSION_LENGTH} characters, got {len(value)}")
    if not value.isprintable():
        raise ValueError(
            f"version {_show(value)} contains a non-printable character (control, format or line separator)"
        )
    return value


def _show(value: Any) -> str:
    """A bad value for an error message, as JSON with every non-ASCII character escaped (it is hostile)."""
    try:
        shown = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        shown = repr(value).encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= 60 else shown[:60] + "…"


def parse_traffic(value: str | float | None) -> float | None:
    """``"10%"``, ``"0.1"`` or ``0.1`` → 0.1; None (all traffic) stays None. Raises ValueError outside (0, 1]."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a share like 0.1 or a percentage like 10%, got {value}")
    if isinstance(value, str):
        percent = _PERCENT.fullmatch(value)
        try:
            share = float(percent.group(1)) / 100 if percent else float(value)
        except ValueError:
            raise ValueError(f"expected a share like 0.1 or a percentage like 10%, got {_show(value)}") from None
    else:
        share = float(value)
    if not math.isfinite(share) or not 0 < share <= 1:
        given = _show(value) if isinstance(value, str) else value
        # "--traffic 10" most likely meant 10 %.
        hint = " (a percentage needs %: 10%)" if 1 < share <= 100 and "%" not in str(value) else ""
        raise ValueError(f"must be more than 0 and at most 1 (100%), got {given}{hint}")
    return share


def check_url(value: str) -> str:
    """A pipeline run's address: absolute http(s), with a host, no spaces or control characters."""
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"longer than {MAX_URL_LENGTH} characters")
    if not value.isprintable() or any(c.isspace() for c in value):
        raise ValueError("contains a space or a non-printable character")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) URL with a host, got {_show(value)}")
    return value


def _text(value: str, limit: int, lines: bool = False) -> str:
    if len(value) > limit:
        raise ValueError(f"longer than {limit} characters")
    if not all(c.isprintable() or (lines and c in "\n\t") for c in value):
        raise ValueError("contains a non-printable character")
    return value


@dataclass(frozen=True, slots=True)
class DeploymentRow:
    id: int
    model: str
    version: str
    deployed_at: datetime
    traffic: float | None  # None: all traffic
    commit: str | None
    url: str | None
    deployed_by: str
    note: str | None
    created_at: datetime

    @property
    def full(self) -> bool:
        """Whether it took all traffic, and so became the model's current version."""
        return self.traffic is None or self.traffic >= 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row(model: str, d: Any) -> DeploymentRow:
    """A :class:`Deployment` object or a row of its table's columns."""
    return DeploymentRow(
        d.id, model, d.version, d.deployed_at, d.traffic, d.commit, d.url, d.deployed_by, d.note, d.created_at
    )


def record_deployment(
    engine: Engine,
    model: str,
    version: Any,
    *,
    deployed_by: str,
    at: datetime | None = None,
    traffic: str | float | None = None,
    commit: str | None = None,
    url: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> DeploymentRow:
    """Store one deployment of ``model`` (a name in the store) and return it; every bad field is named at once."""
    now = now or datetime.now(UTC)
    problems: list[str] = []

    def check(field: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ValueError as exc:
            problems.append(f"deployment.{field}: {exc}")
            return None

    version = check("version", check_version, version)
    share = check("traffic", parse_traffic, traffic)
    if commit is not None:
        commit = check("commit", _text, commit, MAX_COMMIT_LENGTH)
    if url is not None:
        url = check("url", check_url, url)
    if note is not None:
        note = check("note", _text, note, MAX_NOTE_LENGTH, True)
    if not deployed_by.strip():
        problems.append("deployment.deployed_by: must not be empty")
    else:
        check("deployed_by", _text, deployed_by, MAX_BY_LENGTH)
    if at is not None and at.tzinfo is None:
        problems.append("deployment.deployed_at: give a timezone-aware time")
    with transaction(engine) as session:
        model_id = session.scalar(select(Model.id).where(Model.name == model))
        if model_id is None:
            known = ", ".join(session.scalars(select(Model.name).order_by(Model.name))) or "none yet"
            problems.insert(0, f"deployment.model: unknown model {model!r} (known: {known})")
        if problems:
            raise DeploymentError("; ".join(problems))
        row = Deployment(
            model_id=model_id,
            version=version,
            deployed_at=(at or now).astimezone(UTC),
            traffic=share,
            commit=commit or None,
            url=url or None,
            deployed_by=deployed_by,
            note=note or None,
            created_at=now,
        )
        session.add(row)
        session.flush()
        return _row(model, row)


def deployments(
    conn: Connection,
    model_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 500,
) -> list[DeploymentRow]:
    """The model's deployments in ``[since, until)``, newest first."""
    name = conn.scalar(select(Model.name).where(Model.id == model_id))
    query = select(*Deployment.__table__.c).where(Deployment.model_id == model_id)
    if since is not None:
        query = query.where(Deployment.deployed_at >= since)
    if until is not None:
        query = query.where(Deployment.deployed_at < until)
    query = query.order_by(Deployment.deployed_at.desc(), Deployment.id.desc()).limit(limit)
    return [_row(str(name), d) for d in conn.execute(query)]


def latest_deployment(conn: Connection, model_id: int, at: datetime) -> DeploymentRow | None:
    """The newest deployment (canary or full) at or before ``at``."""
    found = deployments(conn, model_id, until=_just_after(at), limit=1)
    return found[0] if found else None


def _just_after(at: datetime) -> datetime:
    # deployments() reads [since, until): one microsecond more includes a deployment at exactly ``at``.
    return at + timedelta(microseconds=1)


def _full(query: Any) -> Any:
    return query.where(or_(Deployment.traffic.is_(None), Deployment.traffic >= 1))


def version_at(conn: Connection, model_id: int, ts: datetime) -> str | None:
    """The model's current version at ``ts``: the newest full deployment at or before it (None: none yet)."""
    query = _full(select(Deployment.version).where(Deployment.model_id == model_id, Deployment.deployed_at <= ts))
    return conn.scalar(query.order_by(Deployment.deployed_at.desc(), Deployment.id.desc()).limit(1))


@dataclass(frozen=True, slots=True)
class VersionRows:
    """Predictions of one version in a range: ``tagged`` named it themselves, the rest had no version and
    fell in its time as the current one. ``version`` None: rows with no version before any full deployment."""

    version: str | None
    rows: int
    tagged: int


def versions_seen(conn: Connection, model_id: int, since: datetime, until: datetime) -> list[VersionRows]:
    """Rows per version of ``model_id``'s predictions in ``[since, until)``, most rows first.

    Rows without a version are counted under the version current at their time: one count per stretch
    between full deployments, so the cost grows with the deployments in the range, not with the rows.
    """
    p = Prediction
    in_range = and_(p.model_id == model_id, p.ts >= since, p.ts < until)
    tagged = dict(
        conn.execute(
            select(p.model_version, func.count())
            .where(in_range, p.model_version.is_not(None))
            .group_by(p.model_version)
        ).all()
    )
    full = conn.execute(
        _full(select(Deployment.deployed_at, Deployment.version).where(Deployment.model_id == model_id))
        .where(Deployment.deployed_at < until)
        .order_by(Deployment.deployed_at, Deployment.id)
    ).all()
    # Stretches [start, end) of one current version; before the first full deployment, no version.
    starts = [since] + [d.deployed_at for d in full if d.deployed_at > since]
    owners = [version_at(conn, model_id, since)] + [d.version for d in full if d.deployed_at > since]
    untagged: dict[str | None, int] = {}
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else until
        if end <= start:
            continue
        count = conn.scalar(
            select(func.count()).where(p.model_id == model_id, p.ts >= start, p.ts < end, p.model_version.is_(None))
        )
        if count:
            untagged[owners[index]] = untagged.get(owners[index], 0) + count
    seen = [
        VersionRows(version, tagged.get(version, 0) + untagged.get(version, 0), tagged.get(version, 0))
        for version in {*tagged, *untagged}
    ]
    return sorted(seen, key=lambda v: (-v.rows, v.version or ""))
