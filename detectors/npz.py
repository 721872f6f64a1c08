"""The one ``.npz`` container of cached references: a JSON ``meta`` dict beside named arrays, no pickle.

Reference profiles, multivariate references and whole baselines are stored in the ``reference`` table
as these bytes; loading never unpickles, so a stored blob cannot run code, and every way it can be
unreadable becomes one :class:`~detectors.types.ProfileError` naming what was being loaded.

>>> meta, arrays = unpack(pack({"version": 1}, {"x": np.arange(3)}), "example", version=1)
>>> meta, arrays["x"].tolist()
({'version': 1}, [0, 1, 2])
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from detectors.types import ProfileError

_META = "meta"


def pack(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bytes:
    """``meta`` (JSON-serialisable) and ``arrays`` as ``.npz`` bytes."""
    if _META in arrays:
        raise ValueError(f"{_META!r} is reserved for the metadata")
    members: dict[str, Any] = {_META: np.array(json.dumps(meta)), **arrays}
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    return buffer.getvalue()


def unpack(data: bytes, what: str, *, version: int | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The ``meta`` and arrays written by :func:`pack`; with ``version``, ``meta["version"]`` must equal it."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = json.loads(str(npz[_META]))
            arrays = {name: npz[name] for name in npz.files if name != _META}
    except (OSError, ValueError, KeyError) as exc:  # not an .npz, a pickled member, no meta, bad JSON
        raise ProfileError(f"{what}: cannot load ({exc})") from exc
    if not isinstance(meta, dict):
        raise ProfileError(f"{what}: cannot load (metadata is not an object)")
    if version is not None and meta.get("version") != version:
        raise ProfileError(f"{what}: unsupported format version {meta.get('version')!r} (expected {version})")
    return meta, arrays
