"""Uploaded references in the store: which exist, which version each belongs to, and their approval.

A reference dataset (``driftscope reference upload --model M [--version V] [--require-approval] FILE``) is a
``reference`` row holding the file as Parquet. One uploaded for a version serves that version's baseline
under ``reference: {version: current}`` (docs/versions.md, Baselines per version); one uploaded with
``--require-approval`` has ``approved_at`` NULL and is used by no monitor until ``driftscope reference
approve`` sets it. Earlier uploads stay, so a version's earlier references can still be compared.

The profile caches of monitors are ``reference`` rows too (named ``monitor:<name>...``, without a dataset);
everything here reads uploads only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, select

from monitor.store.actions import ActionError
from monitor.store.engine import transaction
from monitor.store.tables import Model, Reference

MAX_BY_LENGTH = 200  # reference.approved_by is VARCHAR(200)


@dataclass(frozen=True, slots=True)
class ReferenceRow:
    """One uploaded reference dataset. ``approved_by`` None with ``approved_at`` set: approved at upload."""

    id: int
    name: str
    version: str | None
    rows: int | None
    content_hash: str | None  # sha256 of the stored Parquet bytes
    created_at: datetime
    approved_at: datetime | None
    approved_by: str | None

    @property
    def approval(self) -> Literal["waiting", "approved", "at upload"]:
        if self.approved_at is None:
            return "waiting"
        return "approved" if self.approved_by is not None else "at upload"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "approval": self.approval}


_COLUMNS = (
    Reference.id,
    Reference.name,
    Reference.version,
    Reference.row_count,
    Reference.profile_key,
    Reference.created_at,
    Reference.approved_at,
    Reference.approved_by,
)


def _row(r: Any) -> ReferenceRow:
    return ReferenceRow(r.id, r.name, r.version, r.row_count, r.profile_key, r.created_at, r.approved_at, r.approved_by)


def uploaded_references(conn: Connection, model_id: int, version: str | None = None) -> list[ReferenceRow]:
    """The model's uploaded references (of one ``version`` when given), newest first."""
    query = select(*_COLUMNS).where(Reference.model_id == model_id, Reference.dataset.is_not(None))
    if version is not None:
        query = query.where(Reference.version == version)
    return [_row(r) for r in conn.execute(query.order_by(Reference.created_at.desc(), Reference.id.desc()))]


def version_reference(conn: Connection, model_id: int, version: str, *, explicit: bool) -> ReferenceRow | None:
    """The reference a monitor uses for ``version``: its newest approved upload (with ``explicit``, approved
    by ``driftscope reference approve``, not at upload); None when there is none. Waiting ones never count."""
    query = select(*_COLUMNS).where(
        Reference.model_id == model_id,
        Reference.dataset.is_not(None),
        Reference.version == version,
        Reference.approved_at.is_not(None),
    )
    if explicit:
        query = query.where(Reference.approved_by.is_not(None))
    found = conn.execute(query.order_by(Reference.created_at.desc(), Reference.id.desc()).limit(1)).first()
    return None if found is None else _row(found)


def approve_reference(
    engine: Engine, model: str, name: str, *, by: str, now: datetime | None = None
) -> tuple[ReferenceRow, bool]:
    """Approve ``model``'s uploaded reference ``name``; returns it and whether this call approved it (False: it
    was approved already by someone, whose name and time stay). One approved at upload gets ``by`` now."""
    by = by.strip()
    if not by or len(by) > MAX_BY_LENGTH or not by.isprintable():
        raise ActionError(f"approved_by: give 1 to {MAX_BY_LENGTH} printable characters")
    with transaction(engine) as session:
        model_id = session.scalar(select(Model.id).where(Model.name == model))
        if model_id is None:
            known = ", ".join(session.scalars(select(Model.name).order_by(Model.name))) or "none yet"
            raise ActionError(f"unknown model {model!r} (known: {known})")
        reference = session.scalar(
            select(Reference)
            .where(Reference.model_id == model_id, Reference.name == name, Reference.dataset.is_not(None))
            .with_for_update()
        )
        if reference is None:
            uploaded = [r.name for r in uploaded_references(session.connection(), model_id)]
            raise ActionError(
                f"model {model!r} has no uploaded reference {name!r} "
                f"(uploaded: {', '.join(repr(n) for n in uploaded) or 'none'})"
            )
        changed = reference.approved_by is None
        if changed:
            reference.approved_at = (now or datetime.now(UTC)).astimezone(UTC)
            reference.approved_by = by
        session.flush()
        return _row(reference), changed
