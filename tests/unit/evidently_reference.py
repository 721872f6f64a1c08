"""Run Evidently 0.7's DataDriftPreset on a frame pair and return its numbers, keyed like ours."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pandas as pd

# Evidently reports the display name of the test it picked; our registry uses its keys.
DISPLAY_TO_KEY = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
    "Anderson-Darling": "anderson",
    "Cramer-von Mises": "cramer_von_mises",
    "Hellinger distance": "hellinger",
}


@dataclass(frozen=True)
class EvidentlyDrift:
    columns: dict[str, tuple[str, float, float]]  # column -> (method key, value, threshold)
    count: float
    share: float


def evidently_drift(
    reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str], **preset_kwargs
) -> EvidentlyDrift:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    with warnings.catch_warnings():
        # Evidently's own chi-square divides by zero on unseen categories; that is its business.
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset(**preset_kwargs)]).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
    columns: dict[str, tuple[str, float, float]] = {}
    count = share = float("nan")
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = (DISPLAY_TO_KEY[config["method"]], metric["value"], config["threshold"])
        elif config["type"].endswith("DriftedColumnsCount"):
            count, share = metric["value"]["count"], metric["value"]["share"]
    return EvidentlyDrift(columns, count, share)
