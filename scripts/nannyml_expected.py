"""Compute NannyML 0.13.1's multiclass CBPE and regression DLE figures on its own sample data.

Run by hand, never by the test suite, in a throw-away virtualenv so NannyML stays out of the
project's dependencies (it also needs statsmodels, which its package does not declare, and pandas
< 3: its DLE reshapes string columns, which pandas 3 stores as Arrow arrays that cannot)::

    python3 -m venv /tmp/nml
    /tmp/nml/bin/pip install nannyml==0.13.1 statsmodels "pandas<3"
    NML_DISABLE_USAGE_LOGGING=1 /tmp/nml/bin/python scripts/nannyml_expected.py

It writes ``tests/data/nannyml_expected/cbpe_multiclass.json`` and ``dle_regression.json``: per
chunk of ``CHUNK_SIZE`` rows, NannyML's estimate, sampling error, confidence band, alert
thresholds and realized value (the analysis targets are joined in so NannyML reports the realized
metric beside its estimate). ``tests/unit/test_estimation.py`` compares Driftscope's figures with
these.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

if os.environ.get("NML_DISABLE_USAGE_LOGGING") != "1":
    sys.exit("set NML_DISABLE_USAGE_LOGGING=1: NannyML otherwise sends usage data")

import lightgbm
import nannyml as nml
import numpy as np
import pandas as pd
import sklearn

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "nannyml"
OUT = ROOT / "tests" / "data" / "nannyml_expected"
CHUNK_SIZE = 5000
MC_METRICS = ["roc_auc", "f1", "precision", "recall", "accuracy"]
DLE_METRICS = ["mae", "mse", "rmse"]
REGRESSION_FEATURES = ["car_age", "km_driven", "price_new", "accident_count", "door_count", "fuel", "transmission"]
FIELDS = [
    "value",
    "sampling_error",
    "realized",
    "lower_confidence_boundary",
    "upper_confidence_boundary",
    "lower_threshold",
    "upper_threshold",
    "alert",
]


def _load(name: str, targets: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    reference = pd.read_csv(DATA / f"{name}_reference.csv.gz")
    analysis = pd.read_csv(DATA / f"{name}_analysis.csv.gz")
    analysis = analysis.merge(pd.read_csv(DATA / f"{name}_{targets}.csv.gz"), on="id", validate="one_to_one")
    return reference, analysis


def _plain(value: Any) -> Any:
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if value is None or pd.isna(value):
        return None
    return float(value)


def _chunks(result: Any, metrics: list[str]) -> list[dict[str, Any]]:
    data = result.to_df()
    rows = []
    for _, row in data.iterrows():
        record: dict[str, Any] = {
            "period": row[("chunk", "period")],
            "start_index": int(row[("chunk", "start_index")]),
            "end_index": int(row[("chunk", "end_index")]),
        }
        for metric in metrics:
            record[metric] = {field: _plain(row[(metric, field)]) for field in FIELDS}
        rows.append(record)
    return rows


def _provenance(files: list[str]) -> dict[str, Any]:
    return {
        "generated_by": "scripts/nannyml_expected.py",
        "versions": {
            "nannyml": nml.__version__,
            "lightgbm": lightgbm.__version__,
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "data_sha256": {f: hashlib.sha256((DATA / f).read_bytes()).hexdigest() for f in files},
        "chunk_size": CHUNK_SIZE,
    }


def multiclass() -> dict[str, Any]:
    reference, analysis = _load("mc", "analysis_gt")
    classes = ["highstreet_card", "prepaid_card", "upmarket_card"]
    estimator = nml.CBPE(
        y_pred_proba={c: f"y_pred_proba_{c}" for c in classes},
        y_pred="y_pred",
        y_true="y_true",
        problem_type="classification_multiclass",
        metrics=MC_METRICS,
        chunk_size=CHUNK_SIZE,
    )
    estimator.fit(reference)
    result = estimator.estimate(analysis)
    calibrated = {c: type(cal).__name__ != "NoopCalibrator" for c, cal in estimator._calibrators.items()}
    return {
        **_provenance(["mc_reference.csv.gz", "mc_analysis.csv.gz", "mc_analysis_gt.csv.gz"]),
        "estimator": "CBPE(problem_type='classification_multiclass')",
        "classes": classes,
        "calibrated": calibrated,
        "metrics": MC_METRICS,
        "chunks": _chunks(result, MC_METRICS),
    }


def regression() -> dict[str, Any]:
    reference, analysis = _load("regression_synthetic", "analysis_targets")
    estimator = nml.DLE(
        feature_column_names=REGRESSION_FEATURES,
        y_pred="y_pred",
        y_true="y_true",
        metrics=DLE_METRICS,
        chunk_size=CHUNK_SIZE,
    )
    estimator.fit(reference)
    result = estimator.estimate(analysis)
    return {
        **_provenance(
            [
                "regression_synthetic_reference.csv.gz",
                "regression_synthetic_analysis.csv.gz",
                "regression_synthetic_analysis_targets.csv.gz",
            ]
        ),
        "estimator": "DLE(default LGBMRegressor, no tuning)",
        "features": REGRESSION_FEATURES,
        "metrics": DLE_METRICS,
        "chunks": _chunks(result, DLE_METRICS),
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, build in (("cbpe_multiclass", multiclass), ("dle_regression", regression)):
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(build(), indent=1) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
