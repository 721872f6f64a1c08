"""The closed sets of detector names a configuration may use: drift methods and performance metrics.

Pure data, no imports of the project. It sits in the monitor core, not in ``detectors/``,
because the config validates against it at load and the core imports no detector; the
detectors import it in turn and register one implementation per key
(``detectors.stattests`` refuses a key that is not declared here and
``tests/unit/test_methods.py`` fails when a declared key has no implementation), so a name the
config accepts always has a detector behind it.

Users bring names from the tools they know; those are aliases of our keys::

    >>> resolve_drift_method("chi2"), resolve_drift_method("ks_2samp")
    ('chisquare', 'ks')
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

AUTO = "auto"
# Slow-drift detectors (config drift.slow_drift.method): one sequential drift score per feature and window,
# beside the window's own test; readers that count drifted windows keep them apart.
SEQUENTIAL_METHODS = ("cusum", "page_hinkley")
NUMERIC, CATEGORICAL = "numeric", "categorical"


@dataclass(frozen=True, slots=True)
class DriftMethod:
    """A drift test: its key, the column kinds a user may choose it for, and the other tools' names for it."""

    key: str
    kinds: frozenset[str]
    aliases: tuple[str, ...] = ()
    title: str = ""


_BOTH = frozenset((NUMERIC, CATEGORICAL))
_NUM = frozenset((NUMERIC,))
_CAT = frozenset((CATEGORICAL,))

# Kinds follow Evidently's ``allowed_feature_types``, except Hellinger, which we compute on
# categories only. (``auto`` may still test a numeric column with few distinct values by χ² or
# Z, as Evidently does: that is a choice on the data, not one a user configures.)
DRIFT_METHODS: Mapping[str, DriftMethod] = {
    m.key: m
    for m in (
        DriftMethod("ks", _NUM, ("kolmogorov_smirnov", "ks_2samp"), "two-sample Kolmogorov–Smirnov p-value"),
        DriftMethod(
            "wasserstein", _NUM, ("wasserstein_distance",), "Wasserstein distance, normed by the reference std"
        ),
        DriftMethod("psi", _BOTH, (), "population stability index"),
        DriftMethod("jensenshannon", _BOTH, ("jensen_shannon",), "Jensen–Shannon distance"),
        DriftMethod("anderson", _NUM, ("anderson_ksamp",), "k-sample Anderson–Darling p-value"),
        DriftMethod("cramer_von_mises", _NUM, ("cramervonmises_2samp",), "two-sample Cramér–von Mises p-value"),
        DriftMethod("chisquare", _CAT, ("chi2",), "χ² goodness-of-fit p-value"),
        DriftMethod("z", _CAT, (), "two-proportion Z-test p-value"),
        DriftMethod("hellinger", _CAT, (), "Hellinger distance"),
        DriftMethod("unseen_share", _CAT, (), "share of categories unseen in the reference"),
    )
}

# Where each alias comes from, for the documentation's alias table.
ALIAS_ORIGINS: Mapping[str, str] = {
    "kolmogorov_smirnov": "NannyML",
    "ks_2samp": "SciPy",
    "wasserstein_distance": "SciPy",
    "jensen_shannon": "NannyML",
    "anderson_ksamp": "SciPy",
    "cramervonmises_2samp": "SciPy",
    "chi2": "NannyML",
}

# Names other tools use for tests Driftscope does not implement: refused with that reason
# rather than as a typo.
UNSUPPORTED_DRIFT_METHODS: Mapping[str, str] = {
    "kl_div": "Evidently's Kullback–Leibler divergence",
    "tvd": "Evidently's total variation distance",
    "fisher_exact": "Evidently's and SciPy's Fisher exact test",
    "g_test": "Evidently's G-test",
    "empirical_mmd": "Evidently's maximum mean discrepancy",
    "mannw": "Evidently's Mann–Whitney U test",
    "mannwhitneyu": "SciPy's Mann–Whitney U test",
    "ed": "Evidently's energy distance",
    "energy_distance": "Evidently's and SciPy's energy distance",
    "es": "Evidently's Epps–Singleton test",
    "epps_singleton": "Evidently's Epps–Singleton test",
    "epps_singleton_2samp": "SciPy's Epps–Singleton test",
    "t_test": "Evidently's t-test",
    "ttest_ind": "SciPy's t-test",
    "perc_text_content_drift": "Evidently's text drift",
    "abs_text_content_drift": "Evidently's text drift",
    "l_infinity": "NannyML's L-infinity distance",
}

_BY_NAME: Mapping[str, str] = {
    name: method.key for method in DRIFT_METHODS.values() for name in (method.key, *method.aliases)
}

CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS: tuple[str, ...] = ("mae", "rmse", "mape", "r2")
PERFORMANCE_METRICS: tuple[str, ...] = CLASSIFICATION_METRICS + REGRESSION_METRICS
# What CBPE can estimate without labels (binary and multiclass classifiers).
ESTIMATED_METRICS: tuple[str, ...] = ("roc_auc", "accuracy", "precision", "recall", "f1")
# What DLE estimates for a regression model without targets; mse has no realized twin, so a monitor
# estimates it only when its `performance` is empty (every estimable metric).
ESTIMATED_REGRESSION_METRICS: tuple[str, ...] = ("mae", "mse", "rmse")
# Metrics computed from the model's scores rather than its decisions.
SCORE_METRICS: frozenset[str] = frozenset({"roc_auc", "log_loss"})


class UnknownMethodError(ValueError):
    """A name outside a closed set; the message lists the valid names and the nearest one."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'ks'?"`` when a choice is close to ``name``, else ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def resolve_drift_method(name: str) -> str:
    """The key of the drift method called ``name`` (a key or an alias, any case); ``auto`` stays ``auto``."""
    lowered = name.lower()
    if lowered == AUTO:
        return AUTO
    if lowered in _BY_NAME:
        return _BY_NAME[lowered]
    valid = ", ".join(sorted(DRIFT_METHODS))
    if lowered in UNSUPPORTED_DRIFT_METHODS:
        raise UnknownMethodError(
            f"drift method {name!r} ({UNSUPPORTED_DRIFT_METHODS[lowered]}) is not implemented in Driftscope "
            f"(implemented: {AUTO}, {valid})"
        )
    raise UnknownMethodError(
        f"unknown drift method {name!r}{did_you_mean(lowered, [AUTO, *_BY_NAME])} (valid: {AUTO}, {valid};"
        " NannyML's, Evidently's and SciPy's names for them are accepted too)"
    )


def drift_methods_for(kind: str) -> list[str]:
    """Keys of the drift methods a user may choose for a column of ``kind``."""
    return sorted(key for key, method in DRIFT_METHODS.items() if kind in method.kinds)


def kind_mismatch(key: str, kind: str) -> str | None:
    """Why method ``key`` cannot be configured for a ``kind`` column, or None when it can."""
    if key == AUTO or kind in DRIFT_METHODS[key].kinds:
        return None
    return f"{key!r} does not apply to {kind} columns (for {kind}: {AUTO}, {', '.join(drift_methods_for(kind))})"


def metrics_for(task: str) -> tuple[str, ...]:
    """The performance metrics of a ``binary``, ``multiclass`` or ``regression`` model."""
    return REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS


def estimated_metrics_for(task: str) -> tuple[str, ...]:
    """The metrics label-free estimation gives for a ``binary``, ``multiclass`` or ``regression`` model."""
    return ESTIMATED_REGRESSION_METRICS if task == "regression" else ESTIMATED_METRICS
