"""Label-free error estimation for regression models: direct loss estimation (DLE, as NannyML).

A second model learns, on the labelled reference, the loss of each prediction from the features and
the prediction itself: one for the absolute error, one for the squared error. On a window without
labels, the mean of its predicted losses (clipped at 0) estimates MAE and MSE; RMSE is the square
root of the estimated MSE. Like CBPE it assumes the relation between inputs and outcome,
P(y | x), stays as in the reference: it follows covariate shift, not concept shift.

Learner: NannyML fits LightGBM's ``LGBMRegressor`` with its defaults; Driftscope keeps to
scikit-learn and fits :class:`~sklearn.ensemble.HistGradientBoostingRegressor` set to the same shape
— 100 boosting rounds (no early stopping), learning rate 0.1, at most 31 leaves grown best-first,
at least 20 rows a leaf, no L2 penalty, 255 histogram bins, categorical features split natively.
The two still differ in how they bin numeric values (LightGBM merges bins by distinct values, sklearn
cuts at quantiles) and split categories (LightGBM one-vs-rest for up to 4 categories, sklearn orders
categories by gradient), so the per-row losses differ and the window estimates agree with NannyML's
to within about 1 % on its sample data, not to the last digit (``tests/unit/test_estimation.py``
states the tolerance).

Alert band: the realized metric on reference chunks, ``mean ± 3 std``, floored at 0; breached above
it. Sampling error of an estimate on ``n`` rows (NannyML's closed forms,
``sampling_error/regression.py``): ``std(|e|) / sqrt(n)`` for MAE, ``std(e²) / sqrt(n)`` for MSE and,
by the delta method, ``std(e²) / (2 sqrt(mean(e²)) sqrt(n))`` for RMSE, with ``e`` the reference
errors; ``details`` carry ``estimate ± 3 sampling_error``.

References
----------
- NannyML, "Direct Loss Estimation (DLE)",
  https://nannyml.readthedocs.io/en/stable/how_it_works/performance_estimation.html
- NannyML source: ``nannyml/performance_estimation/direct_loss_estimation/dle.py`` and ``metrics.py``.

Example
-------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> x = pd.DataFrame({"x": rng.normal(size=4000)})
>>> y = x["x"] + rng.normal(scale=np.where(x["x"] > 0, 2.0, 0.5))   # noisier for x > 0
>>> model = fit_dle(x, x["x"], y, chunk_size=1000)
>>> window = pd.DataFrame({"x": rng.normal(1.0, 0.5, size=1000)})   # shifted to the noisy side
>>> est = {s.method: s for s in estimated_regression_scores(model, window, window["x"])}
>>> round(est["mae"].value, 1), est["mae"].breached
(1.6, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # scikit-learn's own dependency

from detectors.estimation import check_metrics, window_scores
from detectors.performance import Band, band_from_values
from detectors.types import Score
from monitor.methods import ESTIMATED_REGRESSION_METRICS

DLE_METRICS = ESTIMATED_REGRESSION_METRICS
# The learner's OpenMP threads spin while waiting: beside the worker's other jobs on a small machine
# that made a reference fit ten times slower (20 s instead of 2 s on 60k rows, 2 busy cores).
_THREADS = 1


@dataclass(frozen=True, slots=True)
class DLEModel:
    """Everything DLE learns from the reference. The two fitted learners are sklearn objects: cache
    the reference and refit, or pickle it where the store trusts its own bytes."""

    features: tuple[str, ...]
    # categorical feature -> its reference categories, in code order (unseen ones become missing)
    categories: Mapping[str, tuple[Any, ...]]
    absolute_error: HistGradientBoostingRegressor
    squared_error: HistGradientBoostingRegressor
    bands: Mapping[str, Band]
    # sampling error × sqrt(rows), per metric
    sampling_error_unit: Mapping[str, float]
    n_reference: int

    def design(self, features: pd.DataFrame, predictions: np.ndarray) -> np.ndarray:
        """Learner input: the features (categories as reference codes) and the prediction, as NannyML."""
        columns = []
        for name in self.features:
            if name not in features:
                raise ValueError(f"features lack column {name!r}")
            col = features[name]
            if name in self.categories:
                codes = pd.Categorical(col, categories=list(self.categories[name])).codes.astype(np.float64)
                columns.append(np.where(codes < 0, np.nan, codes))
            else:
                columns.append(pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64))
        columns.append(np.asarray(predictions, dtype=np.float64))
        return np.column_stack(columns)


def _learner(categorical: np.ndarray, seed: int) -> HistGradientBoostingRegressor:
    # LightGBM's LGBMRegressor() defaults, as far as sklearn's learner has them (module docstring).
    return HistGradientBoostingRegressor(
        max_iter=100,
        learning_rate=0.1,
        max_leaf_nodes=31,
        min_samples_leaf=20,
        l2_regularization=0.0,
        max_bins=255,
        early_stopping=False,
        categorical_features=categorical,
        random_state=seed,
    )


def _is_categorical(col: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col))


def fit_dle(
    reference_features: pd.DataFrame,
    reference_predictions: Any,
    reference_targets: Any,
    *,
    chunk_size: int,
    categorical: Sequence[str] | None = None,
    std_multiplier: float = 3.0,
    seed: int = 0,
) -> DLEModel:
    """Fit DLE on a labelled regression reference.

    ``reference_features`` holds the model's input columns (all of them are used); ``categorical``
    names those to split as categories (default: every non-numeric or boolean column).
    ``chunk_size`` rows per reference chunk for the alert band. Rows without a target or prediction
    are left out; missing feature values are kept (the learner routes them). Raises ``ValueError``
    when fewer than ``2 * chunk_size`` rows remain.
    """
    features = pd.DataFrame(reference_features).reset_index(drop=True)
    pred = np.asarray(reference_predictions, dtype=np.float64)
    target = np.asarray(reference_targets, dtype=np.float64)
    if not len(features) == len(pred) == len(target):
        raise ValueError(
            f"reference_features, reference_predictions and reference_targets have {len(features)}, "
            f"{len(pred)} and {len(target)} rows"
        )
    keep = np.isfinite(pred) & np.isfinite(target)
    features, pred, target = features[keep].reset_index(drop=True), pred[keep], target[keep]
    if len(pred) < 2 * chunk_size:
        raise ValueError(f"{len(pred)} labelled reference rows: DLE needs at least two chunks of {chunk_size}")
    names = [str(c) for c in features.columns]
    cat_names = [n for n in names if _is_categorical(features[n])] if categorical is None else list(categorical)
    categories = {n: tuple(pd.Categorical(features[n].dropna()).categories.tolist()) for n in cat_names}
    mask = np.array([n in categories for n in names] + [False])

    error = pred - target
    absolute, squared = np.abs(error), error**2
    bare = DLEModel(tuple(names), categories, _learner(mask, seed), _learner(mask, seed), {}, {}, len(pred))
    x = bare.design(features, pred)
    with threadpool_limits(limits=_THREADS, user_api="openmp"):
        bare.absolute_error.fit(x, absolute)
        bare.squared_error.fit(x, squared)

    starts = range(0, len(pred) - chunk_size + 1, chunk_size)
    chunk_mae = [absolute[s : s + chunk_size].mean() for s in starts]
    chunk_mse = [squared[s : s + chunk_size].mean() for s in starts]
    bands = {}
    for name, values in (("mae", chunk_mae), ("mse", chunk_mse), ("rmse", np.sqrt(chunk_mse).tolist())):
        band = band_from_values(values, name, std_multiplier)
        if band is not None:
            bands[name] = replace(band, lower=max(band.lower, 0.0))
    unit = {
        "mae": float(np.std(absolute)),
        "mse": float(np.std(squared)),
        "rmse": float(np.std(squared) / (2.0 * np.sqrt(squared.mean()))) if squared.mean() > 0 else 0.0,
    }
    return replace(bare, bands=bands, sampling_error_unit=unit)


def estimated_regression_scores(
    model: DLEModel,
    features: pd.DataFrame,
    predictions: Any,
    *,
    metrics: Sequence[str] = DLE_METRICS,
    min_rows: int = 2,
) -> list[Score]:
    """Estimated error of one regression window without targets (``kind="estimated_performance"``).

    Rows without a finite prediction are left out. Breached when the estimate is above the band.
    """
    check_metrics(metrics, DLE_METRICS)
    frame = pd.DataFrame(features).reset_index(drop=True)
    pred = np.asarray(predictions, dtype=np.float64)
    if len(pred) != len(frame):
        raise ValueError(f"predictions has {len(pred)} rows but features has {len(frame)}")
    keep = np.isfinite(pred)
    n = int(keep.sum())
    if n < min_rows:
        reason = f"{n} predicted rows in window, need at least {min_rows}"
        return [Score.insufficient("estimated_performance", name, reason) for name in metrics]
    x = model.design(frame[keep], pred[keep])
    with threadpool_limits(limits=_THREADS, user_api="openmp"):
        absolute, squared = model.absolute_error.predict(x), model.squared_error.predict(x)
    # a learner can predict a negative loss; NannyML clips each row at 0 before averaging
    mse = float(np.maximum(squared, 0.0).mean())
    values = {"mae": float(np.maximum(absolute, 0.0).mean()), "mse": mse, "rmse": float(np.sqrt(mse))}
    details = {"n": n, "dropped_rows": int((~keep).sum())}
    return window_scores(
        values, metrics, model.sampling_error_unit, model.bands, details, upper_limit=np.inf, lower_is_better=True
    )
