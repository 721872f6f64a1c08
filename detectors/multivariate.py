"""Multivariate drift: PCA reconstruction error and a domain classifier, thresholds from the reference.

Both see all features at once, so they catch changes in the joint distribution (a correlation
that breaks) that per-column tests miss.

* ``pca_reconstruction_error`` — NannyML's data reconstruction drift: impute (numeric: the
  reference mean; categorical: the reference's most frequent category), encode categories by
  their reference frequency, standardize, keep the principal components that explain 65% of the
  reference variance, and average the Euclidean distance between each row and its
  reconstruction. The alert band is the mean ± 3 standard deviations of that error over 10
  reference chunks (NannyML's default chunking and threshold).
* ``domain_classifier_auc`` — a random forest learns to tell reference rows from
  window rows; the cross-validated ROC AUC is 0.5 when they are indistinguishable. The threshold
  is the mean + 3 standard deviations of the same AUC measured between random halves of the
  reference, floored at 0.55 so a very stable reference does not page on noise.

Fit once with :func:`fit_multivariate` (the result serializes like the reference profile), then
call :func:`multivariate_scores` per window. Randomness is seeded: same data, same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from detectors.npz import pack, unpack
from detectors.profile import category_counts
from detectors.types import ColumnKind, ProfileError, Score

PCA_VARIANCE = 0.65
REFERENCE_CHUNKS = 10
BAND_STDS = 3.0
AUC_FLOOR = 0.55
CV_SPLITS = 5
# The classifier sees at most this many rows per side: AUC is stable well before that, and the
# scheduler's latency must not grow with the reference.
CLASSIFIER_MAX_ROWS = 2_000
MIN_ROWS = 2 * CV_SPLITS


@dataclass(frozen=True, slots=True, eq=False)
class MultivariateReference:
    """What the multivariate detectors learned from the reference."""

    names: tuple[str, ...]
    kinds: tuple[ColumnKind, ...]
    fill: np.ndarray  # per column: numeric mean, or the frequency code of the most frequent category
    categories: tuple[np.ndarray, ...]  # per column (empty for numeric): reference categories
    frequencies: tuple[np.ndarray, ...]  # their reference frequencies (the encoding)
    scale_mean: np.ndarray
    scale_std: np.ndarray
    components: np.ndarray
    pca_mean: np.ndarray
    pca_lower: float
    pca_upper: float
    sample: np.ndarray  # encoded reference rows for the classifier (at most CLASSIFIER_MAX_ROWS)
    auc_threshold: float
    seed: int

    def to_bytes(self) -> bytes:
        """``.npz`` bytes, no pickle."""
        meta = {
            "names": list(self.names),
            "kinds": list(self.kinds),
            "pca_lower": self.pca_lower,
            "pca_upper": self.pca_upper,
            "auc_threshold": self.auc_threshold,
            "seed": self.seed,
        }
        arrays = {f"categories_{i}": c for i, c in enumerate(self.categories)}
        arrays |= {f"frequencies_{i}": f for i, f in enumerate(self.frequencies)}
        arrays |= {
            "fill": self.fill,
            "scale_mean": self.scale_mean,
            "scale_std": self.scale_std,
            "components": self.components,
            "pca_mean": self.pca_mean,
            "sample": self.sample,
        }
        return pack(meta, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> MultivariateReference:
        meta, arrays = unpack(data, "multivariate reference")
        n = len(meta["names"])
        return cls(
            names=tuple(meta["names"]),
            kinds=tuple(meta["kinds"]),
            fill=arrays["fill"],
            categories=tuple(arrays[f"categories_{i}"] for i in range(n)),
            frequencies=tuple(arrays[f"frequencies_{i}"] for i in range(n)),
            scale_mean=arrays["scale_mean"],
            scale_std=arrays["scale_std"],
            components=arrays["components"],
            pca_mean=arrays["pca_mean"],
            pca_lower=meta["pca_lower"],
            pca_upper=meta["pca_upper"],
            sample=arrays["sample"],
            auc_threshold=meta["auc_threshold"],
            seed=meta["seed"],
        )


def _encode_column(values: np.ndarray, kind: ColumnKind, categories: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Numeric: float64 with NaN for missing. Categorical: reference frequency (0 if unseen)."""
    arr = np.asarray(values).ravel()
    if kind == "numeric":
        out = arr.astype(np.float64)
        out[~np.isfinite(out)] = np.nan
        return out
    keys, inverse, missing = _category_codes(arr)
    known = np.zeros(keys.size)
    pos = np.searchsorted(categories, keys)
    hit = (pos < categories.size) & (categories[np.minimum(pos, categories.size - 1)] == keys)
    known[hit] = freqs[pos[hit]]
    out = known[inverse]
    out[missing] = np.nan
    return out


def _category_codes(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct strings, each row's index into them, and the missing mask (None/NaN)."""
    missing = np.array([v is None or (isinstance(v, float) and not np.isfinite(v)) for v in arr], dtype=bool)
    keys, inverse = np.unique(arr.astype(str), return_inverse=True)
    return keys, inverse, missing


def _matrix(ref: MultivariateReference, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    encoded = [
        _encode_column(columns[name], kind, cats, freqs)
        for name, kind, cats, freqs in zip(ref.names, ref.kinds, ref.categories, ref.frequencies, strict=True)
    ]
    return np.column_stack(encoded)


def _impute(x: np.ndarray, fill: np.ndarray) -> np.ndarray:
    x = x.copy()
    rows, cols = np.nonzero(np.isnan(x))
    x[rows, cols] = fill[cols]
    return x


def _reconstruction_errors(ref: MultivariateReference, x: np.ndarray) -> np.ndarray:
    z = (_impute(x, ref.fill) - ref.scale_mean) / ref.scale_std
    centered = z - ref.pca_mean
    reconstructed = centered @ ref.components.T @ ref.components + ref.pca_mean
    return np.linalg.norm(z - reconstructed, axis=1)


def _classifier_auc(a: np.ndarray, b: np.ndarray, seed: int) -> float:
    x = np.vstack([a, b])
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    # A small single-threaded forest: non-linear enough to see broken correlations, and it does
    # not fight the scheduler's other work for cores as OpenMP-threaded boosting does.
    model = RandomForestClassifier(n_estimators=40, max_depth=8, min_samples_leaf=5, n_jobs=1, random_state=seed)
    folds = StratifiedKFold(n_splits=CV_SPLITS, shuffle=True, random_state=seed)
    proba = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, proba))


def _subsample(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if len(x) <= CLASSIFIER_MAX_ROWS:
        return x
    return x[np.sort(rng.choice(len(x), CLASSIFIER_MAX_ROWS, replace=False))]


def fit_multivariate(
    columns: Mapping[str, np.ndarray], kinds: Mapping[str, ColumnKind], seed: int = 0
) -> MultivariateReference:
    """Learn encodings, the PCA, and both thresholds from the reference."""
    names = tuple(kinds)
    n_rows = {len(np.asarray(columns[name])) for name in names}
    if len(n_rows) != 1 or min(n_rows) < REFERENCE_CHUNKS * MIN_ROWS:
        raise ProfileError(
            f"multivariate reference: columns need equal lengths of at least {REFERENCE_CHUNKS * MIN_ROWS} rows"
        )
    categories, frequencies = [], []
    for name in names:
        if kinds[name] == "categorical":
            cats, counts, _ = category_counts(columns[name])
            categories.append(cats)
            frequencies.append(counts / max(counts.sum(), 1))
        else:
            categories.append(np.empty(0, dtype=str))
            frequencies.append(np.empty(0))
    partial = MultivariateReference(
        names, tuple(kinds[n] for n in names), np.zeros(len(names)), tuple(categories), tuple(frequencies),
        np.zeros(len(names)), np.ones(len(names)), np.zeros((0, len(names))), np.zeros(len(names)), 0.0, 0.0,
        np.zeros((0, len(names))), 0.0, seed,
    )  # fmt: skip
    x = _matrix(partial, columns)
    with np.errstate(all="ignore"):
        fill = np.array(
            [
                np.nanmean(x[:, j]) if kinds[n] == "numeric" else (frequencies[j].max() if frequencies[j].size else 0)
                for j, n in enumerate(names)
            ]
        )
    fill = np.nan_to_num(fill)
    imputed = _impute(x, fill)
    scale_mean = imputed.mean(axis=0)
    scale_std = imputed.std(axis=0)
    scale_std[scale_std == 0] = 1.0  # a constant column carries no variance to reconstruct
    pca = PCA(n_components=PCA_VARIANCE, svd_solver="full", random_state=seed).fit((imputed - scale_mean) / scale_std)
    fitted = MultivariateReference(
        names, partial.kinds, fill, partial.categories, partial.frequencies, scale_mean, scale_std,
        pca.components_, pca.mean_, 0.0, 0.0, np.zeros((0, len(names))), 0.0, seed,
    )  # fmt: skip
    errors = _reconstruction_errors(fitted, x)
    chunk_means = np.array([chunk.mean() for chunk in np.array_split(errors, REFERENCE_CHUNKS)])
    pca_lower = float(chunk_means.mean() - BAND_STDS * chunk_means.std())
    pca_upper = float(chunk_means.mean() + BAND_STDS * chunk_means.std())

    rng = np.random.default_rng(seed)
    sample = _subsample(imputed, rng)
    null_aucs = []
    for round_ in range(3):
        order = np.random.default_rng(seed + round_).permutation(len(sample))
        half = len(sample) // 2
        null_aucs.append(_classifier_auc(sample[order[:half]], sample[order[half:]], seed))
    auc_threshold = max(AUC_FLOOR, float(np.mean(null_aucs) + BAND_STDS * np.std(null_aucs)))
    return MultivariateReference(
        names, partial.kinds, fill, partial.categories, partial.frequencies, scale_mean, scale_std,
        pca.components_, pca.mean_, pca_lower, pca_upper, sample, auc_threshold, seed,
    )  # fmt: skip


def multivariate_scores(reference: MultivariateReference, current_columns: Mapping[str, np.ndarray]) -> Sequence[Score]:
    """``pca_reconstruction_error`` and ``domain_classifier_auc`` for one window (feature=None)."""
    absent = [n for n in reference.names if n not in current_columns]
    lengths = {len(np.asarray(current_columns[n])) for n in reference.names if n not in absent}
    methods = ("pca_reconstruction_error", "domain_classifier_auc")
    if absent or len(lengths) != 1:
        reason = f"window lacks columns {absent}" if absent else "window columns have different lengths"
        return [Score.insufficient("drift", m, reason) for m in methods]
    n_rows = lengths.pop()
    if n_rows < MIN_ROWS:
        reason = f"window has {n_rows} rows; multivariate drift needs at least {MIN_ROWS}"
        return [Score.insufficient("drift", m, reason) for m in methods]
    x = _matrix(reference, current_columns)
    details = {"n_current": n_rows, "missing_values": "imputed with the reference mean / most frequent category"}
    error = float(_reconstruction_errors(reference, x).mean())
    pca_score = Score(
        "drift", "pca_reconstruction_error", error, None, reference.pca_upper,
        not reference.pca_lower <= error <= reference.pca_upper,
        details={**details, "lower_threshold": reference.pca_lower, "upper_threshold": reference.pca_upper},
    )  # fmt: skip
    current = _subsample(_impute(x, reference.fill), np.random.default_rng(reference.seed))
    auc = _classifier_auc(reference.sample, current, reference.seed)
    auc_score = Score(
        "drift", "domain_classifier_auc", auc, None, reference.auc_threshold, auc >= reference.auc_threshold,
        details={**details, "n_reference_sample": len(reference.sample), "n_current_sample": len(current)},
    )  # fmt: skip
    return [pca_score, auc_score]
