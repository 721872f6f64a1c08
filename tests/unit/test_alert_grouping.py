"""Group timing: group_wait, group_interval, repeat_interval, as Alertmanager."""

from __future__ import annotations

import doctest
import inspect
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest

import alerts
import alerts.grouping
import alerts.state
from alerts.grouping import Member, Timing, due_event, group_key

T0 = datetime(2026, 3, 2, tzinfo=UTC)
S = timedelta(seconds=1)
TIMING = Timing(group_wait=30 * S, group_interval=300 * S, repeat_interval=3600 * S)


def test_new_group_waits_group_wait_after_its_first_alert() -> None:
    firing = [Member(1, T0), Member(2, T0 + 20 * S)]
    assert due_event(firing, (), None, (), TIMING, T0 + 29 * S) is None
    assert due_event(firing, (), None, (), TIMING, T0 + 30 * S) == "firing"


def test_changes_wait_group_interval_and_unchanged_groups_repeat() -> None:
    sent = T0 + 30 * S
    one, two = Member(1, T0), Member(2, T0 + 60 * S)
    assert due_event([one], (), sent, {1}, TIMING, sent + 299 * S) is None
    assert due_event([one, two], (), sent, {1}, TIMING, sent + 299 * S) is None
    assert due_event([one, two], (), sent, {1}, TIMING, sent + 300 * S) == "firing"
    assert due_event([one], (), sent, {1}, TIMING, sent + 3599 * S) is None
    assert due_event([one], (), sent, {1}, TIMING, sent + 3600 * S) == "repeat"


def test_resolves_are_changes_and_an_all_resolved_group_starts_over() -> None:
    sent = T0
    assert due_event([Member(2, T0)], [1], sent, {1, 2}, TIMING, sent + 300 * S) == "update"
    assert due_event([], [1], sent, {1}, TIMING, sent + 299 * S) is None
    assert due_event([], [1], sent, {1}, TIMING, sent + 300 * S) == "resolved"
    # After "resolved" was sent (no firing ids), a new alert is a new group: group_wait again.
    late = sent + 400 * S
    assert due_event([Member(3, late)], (), sent + 300 * S, (), TIMING, late + 29 * S) is None
    assert due_event([Member(3, late)], (), sent + 300 * S, (), TIMING, late + 30 * S) == "firing"


def test_acknowledged_groups_do_not_repeat() -> None:
    assert due_event([Member(1, T0, acknowledged=True)], (), T0, {1}, TIMING, T0 + 10 * 3600 * S) is None
    assert due_event([Member(1, T0, True), Member(2, T0)], (), T0, {1, 2}, TIMING, T0 + 3600 * S) == "repeat"


def test_group_key_depends_on_channel_and_labels_only() -> None:
    assert group_key("slack", {"rule": "r", "model": "m"}) == group_key("slack", {"model": "m", "rule": "r"})
    assert group_key("slack", {"rule": "r"}) != group_key("email", {"rule": "r"})
    assert len(group_key("slack", {})) == 64


@pytest.mark.parametrize("module", [alerts.state, alerts.grouping], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_public_api_is_pinned() -> None:
    assert sorted(alerts.__all__) == ["RetryPolicy", "RuleError", "compile_rules", "deliver_due", "evaluate"]
    assert list(inspect.signature(alerts.evaluate).parameters) == ["engine", "config", "now"]
    assert list(inspect.signature(alerts.deliver_due).parameters)[:3] == ["engine", "config", "now"]
