"""Run Evidently 0.7's DataDriftPreset on a frame pair and return its numbers, keyed like ours."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pandas as pd

with warnings.catch_warnings():
    # Importing Evidently pulls in its UI stack, whose litestar dependency warns about its own
    # deprecations at import time; that is no concern of the drift comparisons here.
    warnings.simplefilter("ignore")
    from evidently import DataDefinition, Dataset, Report
    from evidently.legacy.calculations import stattests as legacy_stattests
    from evidently.legacy.core import ColumnType
    from evidently.presets import DataDriftPreset

__all__ = ["ColumnType", "EvidentlyDrift", "evidently_drift", "evidently_stattest", "legacy_stattests"]

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
            # An auto-picked method is reported by display name, an explicit one by its key.
            method = DISPLAY_TO_KEY.get(config["method"], config["method"])
            columns[config["column"]] = (method, metric["value"], config["threshold"])
        elif config["type"].endswith("DriftedColumnsCount"):
            count, share = metric["value"]["count"], metric["value"]["share"]
    return EvidentlyDrift(columns, count, share)


def evidently_stattest(key: str, reference: object, current: object, column_type: ColumnType):
    """Evidently's own registered test ``key`` on two samples (its default threshold)."""
    test = {t.name: t for t in vars(legacy_stattests).values() if isinstance(t, legacy_stattests.StatTest)}[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its chi-square divides by zero; SciPy's anderson warns on its cap
        return test(pd.Series(reference), pd.Series(current), column_type, None)
