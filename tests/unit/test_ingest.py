"""Record validation of monitor.ingest: pure functions, no store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.config import parse_config
from monitor.ingest.records import (
    Problem,
    Rejection,
    UnparsableRecord,
    parse_timestamp,
    resolve_path,
    validate_labels,
    validate_predictions,
)

CONFIG = parse_config(
    {
        "models": {
            "churn": {
                "task": "binary",
                "fields": {
                    "id": "request_id",
                    "timestamp": "@timestamp",
                    "prediction": "output.label",
                    "score": "output.proba",
                    "label": "outcome",
                    "features": "input",
                },
                "features": {"tenure": "numeric", "plan": "categorical"},
            },
            "species": {"task": "multiclass", "classes": ["a", "b", "c"], "features": {"x": "numeric"}},
            "price": {"task": "regression", "features": {"x": "numeric"}},
        }
    }
)
CHURN, SPECIES, PRICE = (CONFIG.models[n] for n in ("churn", "species", "price"))


def native(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "request_id": "r1",
        "@timestamp": "2026-03-01T12:00:00+02:00",
        "output": {"label": True, "proba": 0.9},
        "input": {"tenure": 3, "plan": 2},
        "host": "web-1",  # native documents carry other fields; they are ignored
    }
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-01T12:00:00Z", datetime(2026, 3, 1, 12, tzinfo=UTC)),
        ("2026-03-01T14:00:00+02:00", datetime(2026, 3, 1, 12, tzinfo=UTC)),
        ("2026-03-01 12:00:00", datetime(2026, 3, 1, 12, tzinfo=UTC)),  # no offset: UTC
        (1772366400, datetime(2026, 3, 1, 12, tzinfo=UTC)),  # epoch seconds
        (1772366400.5, datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        (1772366400500, datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)),  # epoch milliseconds
    ],
)
def test_timestamps(value: object, expected: datetime) -> None:
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize("value", ["yesterday", "", True, None, float("nan"), float("inf"), 1e20, "9" * 100, [1]])
def test_bad_timestamps(value: object) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_timestamp(value)


def test_paths_match_nested_objects_or_flat_dotted_keys() -> None:
    assert resolve_path({"a": {"b": {"c": 1}}}, "a.b.c") == 1
    assert resolve_path({"a.b": 2}, "a.b") == 2
    assert resolve_path({"a": 1}, "a.b") is resolve_path({}, "x")  # both missing


def test_native_record_is_normalised() -> None:
    good, bad = validate_predictions(CHURN, [native()])
    assert bad == []
    row = good[0]
    assert (row.id, row.ts, row.prediction, row.score, row.label) == (
        "r1",
        datetime(2026, 3, 1, 10, tzinfo=UTC),
        1,
        0.9,
        None,
    )
    assert row.features == {"tenure": 3, "plan": "2"}  # categories are strings, numbers stay numbers


def test_each_bad_record_names_its_index_and_field() -> None:
    records = [
        native(),
        native(request_id=None),
        native(request_id="x" * 201),
        native(input={"tenure": "abc"}),
        native(input={"tenure": float("nan")}),
        native(input={"tenure": 1, "colour": "red"}),
        native(input=[1, 2]),
        native(output={"label": 1, "proba": 2}),
        native(output={"label": [1]}),
        native(outcome={"x": 1}),
        native(**{"@timestamp": "noon"}),
        UnparsableRecord("not valid JSON: unexpected character", "{"),
        42,
    ]
    good, bad = validate_predictions(CHURN, records)
    assert len(good) == 1
    assert [r.message for r in bad] == [
        "[1].request_id: required field is null",
        "[2].request_id: id must be 1 to 200 characters, got 201",
        '[3].input.tenure: expected number, got "abc"',
        "[4].input.tenure: expected a finite number, got nan",
        "[5].input.colour: unknown feature (known: tenure, plan)",
        "[6].input: expected object, got array",
        "[7].output.proba: expected a probability in [0, 1], got 2",
        "[8].output.label: expected a class (string or integer), got [1]",
        '[9].outcome: expected a class (string or integer), got {"x":1}',
        '[10].@timestamp: expected an ISO-8601 time or epoch seconds/milliseconds, got "noon"',
        "[11]: not valid JSON: unexpected character",
        "[12]: expected a JSON object, got number",
    ]
    assert bad[1].record_ref == "index=2" and bad[2].record_ref == "id=r1"


def test_a_missing_key_and_an_explicit_null_are_told_apart() -> None:
    base = {"id": "r1", "timestamp": 0, "features": {"x": 1}, "prediction": 1.0}
    records = []
    for key in ("id", "timestamp", "features", "prediction"):
        records += [{k: v for k, v in base.items() if k != key}, {**base, key: None}]
    _, bad = validate_predictions(PRICE, records, shape="canonical")
    reasons = [(p.field, p.reason) for r in bad for p in r.problems]
    assert reasons == [
        (key, f"required field is {state}")
        for key in ("id", "timestamp", "features", "prediction")
        for state in ("missing", "null")
    ]


def test_a_rejection_lists_every_problem_of_its_record() -> None:
    record = {
        "id": "r1",
        "timestamp": "noon",
        "features": {"x": "big", "age": 40},
        "prediction": None,
        "score": 1,
        "colour": "red",
    }
    valid = {"id": "r0", "timestamp": 0, "features": {"x": 1}, "prediction": 2.5}
    good, (rejection,) = validate_predictions(PRICE, [valid, record], shape="canonical")
    assert len(good) == 1 and rejection.index == 1
    assert [(p.field, p.reason.split(" (")[0]) for p in rejection.problems] == [
        ("colour", "unknown field"),
        ("timestamp", 'expected an ISO-8601 time or epoch seconds/milliseconds, got "noon"'),
        ("features.age", "unknown feature"),
        ("features.x", 'expected number, got "big"'),
        ("prediction", "required field is null"),
    ]
    assert rejection.fields == "colour, timestamp, features.age, features.x, prediction"
    assert rejection.message.startswith("[1].colour: unknown field (expected ")
    assert rejection.message.endswith(
        '; [1].features.x: expected number, got "big"; [1].prediction: required field is null'
    )
    answer = rejection.to_dict()
    assert (answer["field"], answer["reason"]) == ("colour", rejection.problems[0].reason)  # the first, as before
    assert Rejection.from_dict(answer) == rejection


def test_a_rejection_stored_before_problems_existed_reads_back() -> None:
    legacy = {"index": 2, "field": "id", "reason": "required field is missing", "record_ref": "index=2"}
    assert Rejection.from_dict(legacy) == Rejection(2, (Problem("id", "required field is missing"),), "index=2")


def test_missing_features_are_null_not_errors() -> None:
    good, bad = validate_predictions(CHURN, [native(input={})])
    assert bad == [] and good[0].features == {"tenure": None, "plan": None}


def test_canonical_shape_rejects_unknown_top_level_keys() -> None:
    record = {"id": 1, "timestamp": 0, "features": {"x": 1}, "prediction": "a", "score": {"a": 0.7, "b": 0.3}}
    good, bad = validate_predictions(SPECIES, [record, {**record, "extra": 1}], shape="canonical")
    assert good[0].score == {"a": 0.7, "b": 0.3} and good[0].id == "1"
    assert bad[0].message == (
        "[1].extra: unknown field (expected features, id, label, model_version, prediction, score, timestamp)"
    )


def test_a_model_version_is_kept_and_a_record_without_one_has_none() -> None:
    record = {"id": 1, "timestamp": 0, "features": {"x": 1}, "prediction": 2.5}
    records = [{**record, "model_version": "2.1"}, record, {**record, "model_version": None}]
    good, bad = validate_predictions(PRICE, records, shape="canonical")
    assert bad == [] and [row.model_version for row in good] == ["2.1", None, None]
    # The native shape reads it at the configured path (default: model_version).
    good, _ = validate_predictions(CHURN, [native(model_version="v2-canary")])
    assert good[0].model_version == "v2-canary"
    nested = parse_config(
        {"models": {"m": {"task": "regression", "features": {"x": "numeric"}, "fields": {"model_version": "meta.v"}}}}
    ).models["m"]
    good, _ = validate_predictions(nested, [{"id": 1, "timestamp": 0, "x": 1, "prediction": 1, "meta": {"v": "7"}}])
    assert good[0].model_version == "7"


def test_a_bad_model_version_names_the_record_and_the_field() -> None:
    record = {"id": "r", "timestamp": 0, "features": {"x": 1}, "prediction": 2.5}
    versions = ["", "v" * 101, 2.1, ["2"], "2.1\n", "2.1\x1b[31m", "2.1\u202e"]
    good, bad = validate_predictions(PRICE, [{**record, "model_version": v} for v in versions], shape="canonical")
    assert good == []
    assert [r.fields for r in bad] == ["model_version"] * len(versions)
    assert [r.message for r in bad] == [
        "[0].model_version: version must be 1 to 100 characters, got 0",
        "[1].model_version: version must be 1 to 100 characters, got 101",
        "[2].model_version: expected a version string, got 2.1",
        '[3].model_version: expected a version string, got ["2"]',
        '[4].model_version: version "2.1\\n" contains a non-printable character (control, format or line separator)',
        '[5].model_version: version "2.1\\u001b[31m" contains a non-printable character (control, format or line'
        " separator)",
        '[6].model_version: version "2.1\\u202e" contains a non-printable character (control, format or line'
        " separator)",
    ]


def test_classes_and_regression_targets() -> None:
    base = {"id": 1, "timestamp": 0, "features": {"x": 1.5}}
    _, bad = validate_predictions(SPECIES, [{**base, "prediction": "d"}], shape="canonical")
    assert bad[0].message == "[0].prediction: \"d\" is not one of the classes ['a', 'b', 'c']"
    good, bad = validate_predictions(PRICE, [{**base, "prediction": 3.25}, {**base, "prediction": "3"}], "canonical")
    assert good[0].prediction == 3.25
    assert bad[0].message == '[1].prediction: expected number, got "3"'


def test_labels() -> None:
    now = datetime(2026, 3, 2, tzinfo=UTC)
    records = [
        {"request_id": "r1", "outcome": 1.0},
        {"request_id": "r2"},
        {"request_id": "r3", "outcome": 0, "@timestamp": 0},
        {"request_id": "r4", "outcome": None},  # what log_label(id, None) sends
    ]
    good, bad = validate_labels(CHURN, records, now=now)
    assert [(g.id, g.label, g.ts) for g in good] == [("r1", 1, now), ("r3", 0, datetime(1970, 1, 1, tzinfo=UTC))]
    assert bad[0].message == "[1].outcome: required field is missing"
    assert bad[1].message == "[3].outcome: required field is null"
    _, bad = validate_labels(SPECIES, [{"id": 1, "label": "a"}], shape="native")
    assert bad[0].message == "[0]: the model's config maps no label field (models.<name>.fields.label)"
