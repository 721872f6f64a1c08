"""Multivariate drift: PCA reconstruction error against scikit-learn, both detectors on NannyML data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from detectors.multivariate import MultivariateReference, fit_multivariate, multivariate_scores

DATA = Path(__file__).resolve().parents[1] / "data" / "nannyml"  # NannyML sample, see its README
FEATURES = {
    "distance_from_office": "numeric",
    "salary_range": "categorical",
    "gas_price_per_litre": "numeric",
    "public_transportation_cost": "numeric",
    "wfh_prev_workday": "categorical",
    "workday": "categorical",
    "tenure": "numeric",
}


def _arrays(df: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: df[c].to_numpy() for c in FEATURES}


@pytest.fixture(scope="module")
def fitted() -> tuple[MultivariateReference, pd.DataFrame, pd.DataFrame]:
    ref = pd.read_csv(DATA / "synthetic_sample_reference.csv.gz").iloc[:20_000]
    analysis = pd.read_csv(DATA / "synthetic_sample_analysis.csv.gz")
    return fit_multivariate(_arrays(ref), FEATURES, seed=0), ref, analysis


def test_pca_error_equals_sklearn_pipeline(fitted) -> None:
    model, ref, analysis = fitted
    window = analysis.iloc[40_000:42_000]

    def encode(df: pd.DataFrame) -> np.ndarray:
        cols = []
        for c, kind in FEATURES.items():
            if kind == "numeric":
                cols.append(df[c].to_numpy(dtype=float))
            else:
                freq = ref[c].astype(str).value_counts(normalize=True)
                cols.append(df[c].astype(str).map(freq).fillna(0).to_numpy())
        return np.column_stack(cols)

    scaler = StandardScaler().fit(encode(ref))
    pca = PCA(n_components=0.65, svd_solver="full").fit(scaler.transform(encode(ref)))
    z = scaler.transform(encode(window))
    expected = np.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1).mean()
    score = multivariate_scores(model, _arrays(window))[0]
    assert score.method == "pca_reconstruction_error"
    assert score.value == pytest.approx(expected, abs=1e-9)


def test_drift_flagged_in_drifted_chunks_only(fitted) -> None:
    model, ref, analysis = fitted
    for frame, start, drifted in (
        (ref, 0, False),
        (ref, 15_000, False),
        (analysis, 0, False),
        (analysis, 35_000, True),
        (analysis, 45_000, True),
    ):
        scores = multivariate_scores(model, _arrays(frame.iloc[start : start + 2000]))
        assert [s.breached for s in scores] == [drifted, drifted], (start, scores)
        assert all(s.feature is None and s.kind == "drift" for s in scores)


def test_round_trip_and_determinism(fitted) -> None:
    model, _, analysis = fitted
    window = _arrays(analysis.iloc[30_000:31_000])
    loaded = MultivariateReference.from_bytes(model.to_bytes())
    assert multivariate_scores(loaded, window) == multivariate_scores(model, window)


def test_too_little_data_and_missing_values(fitted) -> None:
    model, _, analysis = fitted
    one_row = _arrays(analysis.iloc[:1])
    assert [s.status for s in multivariate_scores(model, one_row)] == ["insufficient_data"] * 2
    assert multivariate_scores(model, {})[0].reason.startswith("window lacks columns")
    window = analysis.iloc[:500].copy()
    window["tenure"] = np.nan
    window.loc[::3, "workday"] = None
    scores = multivariate_scores(model, _arrays(window))
    assert all(s.status == "ok" and np.isfinite(s.value) for s in scores)
