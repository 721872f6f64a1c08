"""A churn model trained at start on synthetic data from a seed: nothing is downloaded.

``python model.py train.csv`` writes its training set with the model's predictions, scores and true
labels: the reference to upload to Driftscope (see README.md).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

VERSION = "1.0.0"
PLANS = ("basic", "pro", "enterprise")


def customers(rows: int, rng: np.random.Generator, tenure_shift: float = 0.0) -> pd.DataFrame:
    """Synthetic customers; ``tenure_shift`` moves the tenure distribution (drift, for demos and tests)."""
    return pd.DataFrame(
        {
            "tenure": np.clip(rng.gamma(2.0, 12.0, rows) + tenure_shift, 0, 120).round(1),
            "monthly_charges": rng.normal(65, 20, rows).clip(15, 150).round(2),
            "plan": rng.choice(PLANS, rows, p=[0.5, 0.35, 0.15]),
        }
    )


def _matrix(frame: pd.DataFrame) -> np.ndarray:
    plans = np.stack([(frame["plan"] == plan).to_numpy(float) for plan in PLANS[1:]], axis=1)
    return np.column_stack([frame["tenure"] / 12, frame["monthly_charges"] / 50, plans])


def churned(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """The true outcome: short tenure and high charges churn more; enterprise customers less."""
    logit = 1.0 - 0.12 * frame["tenure"] + 0.02 * frame["monthly_charges"] - 1.2 * (frame["plan"] == "enterprise")
    return (rng.random(len(frame)) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)


@dataclass(frozen=True)
class Model:
    estimator: LogisticRegression
    training: pd.DataFrame  # features, prediction, score, label and model_version: the reference

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        score = self.estimator.predict_proba(_matrix(frame))[:, 1]
        return (score >= 0.5).astype(int), score


def train(seed: int = 7, rows: int = 5000) -> Model:
    rng = np.random.default_rng(seed)
    frame = customers(rows, rng)
    label = churned(frame, rng)
    estimator = LogisticRegression().fit(_matrix(frame), label)
    model = Model(estimator, frame)
    prediction, score = model.predict(frame)
    training = frame.assign(prediction=prediction, score=score.round(4), label=label, model_version=VERSION)
    return Model(estimator, training)


if __name__ == "__main__":
    train().training.to_csv(sys.argv[1], index=False)
