"""The notification payload crosses the store as JSON; reading it back checks its shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from alerts.message import probe_payload
from alerts.payload import from_stored, to_stored


def test_a_payload_survives_the_store_round_trip() -> None:
    payload = probe_payload("ops", datetime(2026, 3, 1, tzinfo=UTC))
    assert from_stored(json.loads(json.dumps(to_stored(payload)))) == payload


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("alerts"), "lacks alerts"),
        (lambda p: p.pop("group_key") and p.pop("sent_at"), "lacks group_key, sent_at"),
        (lambda p: p["alerts"][0].pop("severity"), r"lacks alerts\[0\]\.severity"),
        (lambda p: p.update(alerts={"0": {}}), "alerts is not a list"),
        (lambda p: p.update(alerts=["firing"]), r"alerts\[0\] is not an object"),
    ],
)
def test_a_broken_stored_payload_names_what_is_missing(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    stored = json.loads(json.dumps(to_stored(probe_payload("ops", datetime(2026, 3, 1, tzinfo=UTC)))))
    mutate(stored)
    with pytest.raises(ValueError, match=message):
        from_stored(stored)
