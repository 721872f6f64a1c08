"""The one .npz container of cached references: round trip, no pickle, one error for every bad blob."""

from __future__ import annotations

import io

import numpy as np
import pytest

from detectors.npz import pack, unpack
from detectors.types import ProfileError


def test_round_trip_keeps_meta_and_arrays() -> None:
    arrays = {"values": np.linspace(0, 1, 5), "labels": np.array(["a", "b"]), "empty": np.array([], dtype=np.int64)}
    meta, loaded = unpack(pack({"version": 2, "names": ["x"]}, arrays), "thing", version=2)
    assert meta == {"version": 2, "names": ["x"]}
    assert loaded.keys() == arrays.keys()
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and np.array_equal(loaded[name], array)


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        b"not an npz",
        _npz(values=np.arange(3)),  # no meta
        _npz(meta=np.array("{not json")),
        _npz(meta=np.array('["a list"]')),
        _npz(meta=np.array("{}"), objects=np.array([{"a": 1}], dtype=object)),  # would need pickle
    ],
)
def test_every_unreadable_blob_is_one_profile_error_naming_what(data: bytes) -> None:
    with pytest.raises(ProfileError, match=r"^thing: cannot load"):
        unpack(data, "thing")


def test_a_version_mismatch_is_refused() -> None:
    with pytest.raises(ProfileError, match=r"thing: unsupported format version 1 \(expected 2\)"):
        unpack(pack({"version": 1}, {}), "thing", version=2)


def test_meta_is_a_reserved_name() -> None:
    with pytest.raises(ValueError, match="reserved"):
        pack({}, {"meta": np.arange(2)})
