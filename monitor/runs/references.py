"""References: the data a monitor compares each window with, profiled once and cached in the store.

A monitor's reference is one of (``monitors.<m>.reference`` in the config):

- ``range: [start, end]`` — the model's own predictions in that time range;
- ``dataset: NAME`` — a file uploaded with ``driftscope reference upload --model M FILE``
  (CSV or Parquet; kept in ``reference.dataset`` as Parquet under the file's name);
- ``previous_windows: N`` — the N windows before the window being computed;
- ``version: current`` — a baseline per model version: the newest approved dataset uploaded with
  ``--version V`` for the version that served the rows (the whole window: the model's current version,
  its latest full deployment; each version's segment: that version). A version without one makes the run
  (or its segment) ``insufficient_data`` with the command to run; no other version's reference stands in.

Fixed references (range, dataset) are reduced once to a :class:`~monitor.runs.evaluation.Baseline`
(sorted samples, histograms, category counts, bands, calibration) and its bytes cached in the
``reference`` row ``monitor:<name>`` with a ``profile_key``: a hash of everything the profile
depends on (the reference spec, the model's schema, the monitor's settings and a fingerprint of
the data: row and label counts of a range, the content hash of a dataset). A config change or
new data in the range changes the key, and the next window re-profiles. Rolling references
(previous_windows) differ for every window, so they are profiled in memory and not cached. A version's
baseline is cached in the row ``monitor:<name>#<reference id>``, its key holding the dataset's id and hash.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyarrow import ArrowException
from sqlalchemy import Engine, func, select

from monitor.config import Config, ModelConfig, MonitorConfig, ReferenceSpec, as_utc
from monitor.errors import DriftscopeError
from monitor.runs.evaluation import Baseline, classification_classes, fit_baseline
from monitor.runs.files import Progress, ReferenceError, frame_to_batch, read_table
from monitor.runs.windows import Batch, load_window
from monitor.store.deployments import check_version, version_at
from monitor.store.engine import transaction
from monitor.store.queries import sync_models, upsert_insert
from monitor.store.references import ReferenceRow, uploaded_references, version_reference
from monitor.store.tables import Prediction, Reference, utcnow

log = logging.getLogger(__name__)

_PROFILE_VERSION = 1


class InsufficientReference(DriftscopeError):
    """The reference has too few rows; the run gets status ``insufficient_data`` with this reason."""


# ------------------------------------------------------------------------------------- datasets


def _stored_span(spec: ReferenceSpec, window: timedelta, window_start: datetime) -> tuple[datetime, datetime] | None:
    """The [start, end) of a reference read from the stored predictions; None for an uploaded dataset."""
    if spec.range is not None:
        return as_utc(spec.range[0]), as_utc(spec.range[1])
    if spec.previous_windows is not None:
        return window_start - window * spec.previous_windows, window_start
    return None


def _windows_with_rows(ts: np.ndarray | None, window_start: datetime, window: timedelta, count: int) -> int:
    """How many of the ``count`` windows before ``window_start`` hold at least one row."""
    if ts is None or not len(ts):
        return 0
    start = np.datetime64(window_start.astimezone(UTC).replace(tzinfo=None), "us")
    back = -((ts[~np.isnat(ts)] - start) // np.timedelta64(window))  # 1: the window just before, 2: the one before
    return len(np.unique(back[(back >= 1) & (back <= count)]))


def _seconds_spanned(ts: np.ndarray | None) -> float | None:
    if ts is None or len(ts) < 2 or np.isnat(ts).all():
        return None
    span = (np.nanmax(ts) - np.nanmin(ts)) / np.timedelta64(1, "s")
    return float(span) if span > 0 else None


def upload_dataset(
    engine: Engine,
    config: Config,
    model: str,
    path: Path,
    *,
    name: str | None = None,
    version: str | None = None,
    require_approval: bool = False,
    progress: Progress | None = None,
) -> tuple[str, int]:
    """Store a CSV/Parquet file as the reference dataset ``name`` of ``model``; returns ``(name, rows)``.

    The file is checked against the model's schema first. With ``version`` it is that model version's
    reference, named ``<file name>@<version>`` unless ``name`` is given; an upload never replaces a dataset
    of another version (earlier versions' references stay). With ``require_approval`` no monitor uses it
    until ``driftscope reference approve``; otherwise it counts as approved when stored.
    """
    spec = config.models.get(model)
    if spec is None:
        raise ReferenceError(f"unknown model {model!r} (known: {', '.join(sorted(config.models)) or 'none'})")
    if version is not None:
        try:
            check_version(version)
        except ValueError as exc:
            raise ReferenceError(f"--version: {exc}") from None
    name = name or (Path(path).name if version is None else f"{Path(path).name}@{version}")
    if not 1 <= len(name) <= 200 or name.startswith("monitor:"):
        raise ReferenceError(f"reference name {name[:60]!r}: give 1 to 200 characters, not starting with 'monitor:'")
    model_id = sync_models(engine, config)[model]
    with engine.connect() as connection:
        stored_version = connection.execute(
            select(Reference.version).where(Reference.model_id == model_id, Reference.name == name)
        ).one_or_none()
    if stored_version is not None and stored_version[0] != version:
        raise ReferenceError(
            f"reference {name!r} of model {model!r} belongs to version {stored_version[0] or '(none)'}, not "
            f"{version or '(none)'}; give another --name (earlier references are kept, never replaced)"
        )
    frame = read_table(path, progress)
    frame_to_batch(frame, spec, source=str(path))  # validates the columns before anything is stored
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, index=False)
    except (ValueError, TypeError, ArrowException) as exc:  # e.g. a column mixing numbers and text
        raise ReferenceError(f"{path}: cannot store as Parquet ({exc})") from exc
    data = buffer.getvalue()
    now = utcnow()
    values = {
        "model_id": model_id,
        "name": name,
        "kind": "dataset",
        "spec": {"dataset": name, "file": str(path)},
        "dataset": data,
        "row_count": len(frame),
        "profile_key": hashlib.sha256(data).hexdigest(),
        "created_at": now,
        "version": version,
        "approved_at": None if require_approval else now,
        "approved_by": None,
    }
    with transaction(engine) as session:
        insert = upsert_insert(session.get_bind().dialect.name)
        stmt = insert(Reference).values(**values)
        session.execute(
            stmt.on_conflict_do_update(index_elements=["model_id", "name"], set_={k: stmt.excluded[k] for k in values})
        )
    log.info(
        "reference dataset uploaded",
        extra={"model": model, "reference": name, "rows": len(frame), "version": version, "waiting": require_approval},
    )
    return name, len(frame)


# ------------------------------------------------------------------------------------- baselines


class References:
    """Baselines of every monitor of a config, cached in memory and in the store."""

    def __init__(self, config: Config, engine: Engine, model_ids: dict[str, int]) -> None:
        self._config, self._engine, self._model_ids = config, engine, model_ids
        self._memory: dict[str, tuple[str, Baseline]] = {}
        self._fingerprints: dict[str, Any] = {}

    def refresh(self) -> None:
        """Look at the reference data again on the next use (the scheduler calls it once per tick).

        Fingerprinting a range reference counts its rows; doing that once per tick rather than
        once per window keeps a catch-up of many windows from re-reading the reference each time.
        """
        self._fingerprints.clear()

    def baseline(self, monitor_name: str, window_start: datetime, version: str | None = None) -> Baseline:
        """The baseline for one window of a monitor; profiles and caches it when its key changed.

        ``version``: with ``reference: {version: current}``, the baseline of that version's rows (a segment);
        None: of the whole window, the model's current version's. Ignored by other references.
        """
        monitor = self._config.monitors[monitor_name]
        model = self._config.models[monitor.model]
        wanted = monitor.reference.previous_windows
        if wanted is not None:
            batch, seconds = self._batch(monitor_name, window_start, None)
            # A monitor's first windows would otherwise be compared with one or two windows' rows, where
            # chance differences look like drift.
            present = _windows_with_rows(batch.ts, window_start, monitor.window, wanted)
            if present < wanted:
                raise InsufficientReference(f"reference has {present} of {wanted} previous windows")
            return self._fit(monitor_name, model, monitor, batch, seconds)
        uploaded = self._version_reference(monitor_name, window_start, version)
        if uploaded is None:
            if monitor_name not in self._fingerprints:
                self._fingerprints[monitor_name] = self._fingerprint(monitor)
            key = self._profile_key(monitor, model, self._fingerprints[monitor_name])
            row_name = f"monitor:{monitor_name}"
        else:
            key = self._profile_key(monitor, model, [uploaded.id, uploaded.content_hash])
            row_name = f"monitor:{monitor_name}#{uploaded.id}"
        cached = self._memory.get(row_name)
        if cached is not None and cached[0] == key:
            return cached[1]
        with self._engine.connect() as connection:
            stored = connection.execute(
                select(Reference.profile).where(
                    Reference.model_id == self._model_ids[monitor.model],
                    Reference.name == row_name,
                    Reference.profile_key == key,
                )
            ).scalar_one_or_none()
        if stored is not None:
            baseline = Baseline.from_bytes(stored)
            if baseline.needs_dle:  # the bytes cannot hold DLE's learners: refit them, once per key
                baseline = baseline.with_dle(model, self._batch(monitor_name, window_start, uploaded)[0])
        else:
            batch, seconds = self._batch(monitor_name, window_start, uploaded)
            baseline = self._fit(monitor_name, model, monitor, batch, seconds)
            self._store(monitor_name, monitor, row_name, key, baseline, uploaded)
        self._memory[row_name] = (key, baseline)
        return baseline

    def reference_batch(
        self, monitor_name: str, window_start: datetime, version: str | None = None
    ) -> tuple[Batch, float | None]:
        """The reference rows of a monitor (for a window; ``version`` as in :meth:`baseline`) and the seconds
        they span, if known."""
        return self._batch(monitor_name, window_start, self._version_reference(monitor_name, window_start, version))

    def _version_reference(self, monitor_name: str, window_start: datetime, version: str | None) -> ReferenceRow | None:
        """The uploaded reference of ``version`` (None: the version current at the window's end) under
        ``reference: {version: current}``; None for other references. Raises InsufficientReference, naming the
        command to run, when the version has no approved reference or the model no current version."""
        monitor = self._config.monitors[monitor_name]
        spec = monitor.reference
        if spec.version is None:
            return None
        model_id = self._model_ids[monitor.model]
        with self._engine.connect() as connection:
            if version is None:
                end = window_start + monitor.window
                version = version_at(connection, model_id, end - timedelta(microseconds=1))
                if version is None:
                    raise InsufficientReference(
                        f"reference is the current version's, and model {monitor.model!r} had no full deployment "
                        f"by {end.astimezone(UTC).isoformat()}; record one with `driftscope deploy record "
                        f"--model {monitor.model} --version V`"
                    )
            explicit = spec.approval == "required"
            found = version_reference(connection, model_id, version, explicit=explicit)
            if found is not None:
                return found
            others = uploaded_references(connection, model_id, version)
        # Versions and names are data: quoted, the suggested commands are safe to paste into a shell.
        model, quoted_version = shlex.quote(monitor.model), shlex.quote(version)
        upload = f"`driftscope reference upload --model {model} --version {quoted_version} FILE`"
        unused = [r for r in others if r.approved_at is None or explicit]
        if not unused:
            raise InsufficientReference(f"no reference for version {version} of model {monitor.model!r}; run {upload}")
        why = "waits for approval" if unused[0].approved_at is None else "was not approved with reference approve"
        raise InsufficientReference(
            f"no approved reference for version {version} of model {monitor.model!r}: {unused[0].name!r} {why}; "
            f"run `driftscope reference approve --model {model} {shlex.quote(unused[0].name)}` (or {upload})"
        )

    def _batch(
        self, monitor_name: str, window_start: datetime, uploaded: ReferenceRow | None
    ) -> tuple[Batch, float | None]:
        monitor = self._config.monitors[monitor_name]
        model = self._config.models[monitor.model]
        model_id = self._model_ids[monitor.model]
        spec = monitor.reference
        classes = model.classes if model.task == "multiclass" else None
        span = _stored_span(spec, monitor.window, window_start)
        if span is not None:
            start, end = span
            with self._engine.connect() as connection:
                batch = load_window(connection, model_id, model.features, start, end, score_classes=classes)
                if model.task == "multiclass" and classes is None and batch.label_count:
                    # Per-class scores are read in class order; without configured classes that
                    # order is learned from the reference's labels, so read it once more with it.
                    learned = classification_classes(model, batch.label)
                    batch = load_window(connection, model_id, model.features, start, end, score_classes=learned)
            return batch, (end - start).total_seconds()
        name = uploaded.name if uploaded is not None else spec.dataset
        with self._engine.connect() as connection:
            where = Reference.id == uploaded.id if uploaded is not None else Reference.name == spec.dataset
            data = connection.execute(
                select(Reference.dataset).where(Reference.model_id == model_id, where)
            ).scalar_one_or_none()
        if data is None:
            raise ReferenceError(
                f"monitor {monitor_name!r}: reference dataset {name!r} not uploaded for model "
                f"{monitor.model!r}; run `driftscope reference upload --model {monitor.model} {name}`"
            )
        frame = pd.read_parquet(io.BytesIO(data))
        source = f"reference dataset {name!r}"
        batch = frame_to_batch(frame, model, source=source, classes=classes)
        if model.task == "multiclass" and classes is None and batch.label_count:
            batch = frame_to_batch(frame, model, source=source, classes=classification_classes(model, batch.label))
        return batch, _seconds_spanned(batch.ts)

    def _fit(
        self, monitor_name: str, model: ModelConfig, monitor: MonitorConfig, batch: Batch, seconds: float | None
    ) -> Baseline:
        if batch.n < monitor.min_rows:
            raise InsufficientReference(f"reference has {batch.n} rows (min_rows {monitor.min_rows})")
        baseline = fit_baseline(model, monitor, batch, reference_seconds=seconds)
        for part, note in baseline.notes.items():
            log.warning("reference of %s: %s", monitor_name, note, extra={"monitor": monitor_name, "part": part})
        return baseline

    def _profile_key(self, monitor: MonitorConfig, model: ModelConfig, data: Any) -> str:
        payload = {
            "version": _PROFILE_VERSION,
            "reference": monitor.reference.model_dump(mode="json"),
            "model": model.model_dump(mode="json", include={"task", "features", "fields", "classes", "positive_class"}),
            "monitor": monitor.model_dump(
                mode="json",
                include={
                    "window": True,
                    "min_rows": True,
                    "performance": True,
                    "estimated_performance": True,
                    "drift": {"multivariate"},
                },
            ),
            "data": data,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def _fingerprint(self, monitor: MonitorConfig) -> Any:
        """What identifies the reference's data: row/label counts of a range, the content hash of a dataset."""
        model_id = self._model_ids[monitor.model]
        spec = monitor.reference
        with self._engine.connect() as connection:
            if spec.range is not None:
                p = Prediction
                rows, labels, last_label = connection.execute(
                    select(func.count(), func.count(p.label_ts), func.max(p.label_ts)).where(
                        p.model_id == model_id, p.ts >= as_utc(spec.range[0]), p.ts < as_utc(spec.range[1])
                    )
                ).one()
                return [rows, labels, str(last_label)]
            return connection.execute(
                select(Reference.profile_key).where(Reference.model_id == model_id, Reference.name == spec.dataset)
            ).scalar_one_or_none()

    def _store(
        self,
        monitor_name: str,
        monitor: MonitorConfig,
        row_name: str,
        key: str,
        baseline: Baseline,
        uploaded: ReferenceRow | None,
    ) -> None:
        spec = monitor.reference
        described = spec.model_dump(mode="json", exclude_none=True)
        if uploaded is not None:
            described |= {"dataset": uploaded.name, "of_version": uploaded.version}
        values = {
            "model_id": self._model_ids[monitor.model],
            "name": row_name,
            "kind": "range" if spec.range is not None else "dataset",
            "spec": described,
            "row_count": baseline.n_rows,
            "profile": baseline.to_bytes(),
            "profile_key": key,
            "profiled_at": utcnow(),
        }
        # Two workers may profile the same reference at once; both write the same bytes.
        with transaction(self._engine) as session:
            insert = upsert_insert(session.get_bind().dialect.name)
            stmt = insert(Reference).values(**values)
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["model_id", "name"], set_={k: stmt.excluded[k] for k in values}
                )
            )
        log.info("reference profiled", extra={"monitor": monitor_name, "rows": baseline.n_rows})
