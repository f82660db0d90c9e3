"""Uncertainty of the report's numbers: the clustered bootstrap, its intervals and p-values, and the Holm
correction of a family of paired comparisons.

Videos that share a music track (or a prompt) are not independent: a judge that likes one track likes
every video made on it. The paper's suite crosses 10 tracks with 10 prompts, so a bootstrap over videos
treats 100 correlated videos as 100 independent ones and its intervals are too narrow. Here each
resample draws music tracks and prompts, not videos (`CLUSTER_FACTORS`): a factor clusters when it has
at least two levels and some level holds more than one unit (a factor whose every level holds one
unit resamples exactly like the units); with two such factors the resample draws both independently
and weighs a unit by the product of its track's and its prompt's draw counts (the two-way "pigeonhole"
bootstrap, Owen 2007, for crossed designs); with none it draws the units themselves. A resample whose
drawn tracks and prompts share no unit has no value and is left out of the percentiles.

A paired p-value (`bootstrap_p(samples, n)`) is never below 2^(1 - n) for n pairs: under "no difference"
the two videos of an item are exchangeable, so the exact sign-flip test over the n pairs cannot give a
smaller two-sided p-value, and with few pairs the bootstrap's own share of resamples beyond 0 would claim
more certainty than n pairs hold. A score made of several questions (a category, overall) is the mean of its questions'
means (`resampled_score`): each resample reweighs every question's values with the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CLUSTER_FACTORS = {"music_id": "music track", "prompt_id": "prompt"}


@dataclass(frozen=True)
class Resamples:
    """Bootstrap weights of n units: `weights[b, i]` is how often unit i counts in resample b; `factors`
    names what was drawn (column -> name; empty: the units themselves, called `unit`)."""

    weights: np.ndarray
    factors: dict[str, str]
    unit: str = "video"

    @property
    def clustering(self) -> str:
        return " x ".join(self.factors.values()) if self.factors else self.unit


def clustering_factors(units: pd.DataFrame, factors: dict[str, str] = CLUSTER_FACTORS) -> tuple[str, ...]:
    """The columns of `factors` that cluster these units (see the module docstring)."""
    found = []
    for factor in factors:
        if factor in units:
            sizes = units[factor].fillna("").value_counts()
            if len(sizes) >= 2 and sizes.max() >= 2:
                found.append(factor)
    return tuple(found)


def resample(units: pd.DataFrame, n_boot: int, seed: int, *, clustered: bool = True,
             factors: dict[str, str] = CLUSTER_FACTORS, unit: str = "video") -> Resamples:
    """Weights of `n_boot` resamples of the rows of `units`, drawn by `numpy.random.default_rng(seed)`:
    clustered by the columns of `factors` (column -> name; default music track and prompt) as the module
    docstring says, or, with `clustered=False`, the naive bootstrap over the rows (`unit`s)."""
    rng = np.random.default_rng(seed)
    n = len(units)
    used = clustering_factors(units, factors) if clustered else ()
    if not used:
        return Resamples(rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float), {}, unit)
    weights = np.ones((n_boot, n))
    for factor in used:
        codes, levels = pd.factorize(units[factor].fillna(""), sort=True)
        counts = rng.multinomial(len(levels), np.full(len(levels), 1.0 / len(levels)), size=n_boot)
        weights *= counts[:, codes]
    return Resamples(weights, {f: factors[f] for f in used}, unit)


def resampled_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted column means (NaN = missing, skipped) of every resample: (n, m) values -> (n_boot, m);
    NaN where a resample holds no value of a column."""
    present = ~np.isnan(values)
    sums = weights @ np.where(present, values, 0.0)
    counts = weights @ present
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def resampled_score(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A score made of the columns (questions) of `values` in every resample: the mean over the columns of
    their weighted means (`resampled_means`), (n, m) values -> (n_boot,); NaN (undefined) where a resample
    holds no value of some column."""
    return resampled_means(values, weights).mean(axis=1)


def enough_for_interval(values: np.ndarray) -> bool:
    """Whether an interval of a score made of the columns of `values` (n units, m questions) is worth
    computing: at least 2 units with a value in every column (else some column's resampled mean is fixed
    or undefined and the interval too narrow)."""
    return values.ndim == 2 and values.shape[1] > 0 and int((~np.isnan(values)).sum(axis=0).min()) >= 2


def percentile_ci(samples: np.ndarray) -> tuple[float, float]:
    """The 2.5 and 97.5 percentiles of the defined resampled statistics (NaN, NaN when none)."""
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return np.nan, np.nan
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(low), float(high)


def bootstrap_p(samples: np.ndarray, n: int | None = None) -> float:
    """Two-sided p-value of "the statistic is 0" from its resampled values: twice the smaller share of
    resamples on either side of 0, each counted as (j + 1) / (B + 1) so it is never 0 (the test the
    percentile interval inverts: p < 0.05 exactly when 0 lies outside the 95% interval, up to ties), and
    for a paired statistic of `n` pairs never below 2^(1 - n) (see the module docstring). NaN without a
    defined resample."""
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return np.nan
    below = (np.sum(samples <= 0) + 1) / (samples.size + 1)
    above = (np.sum(samples >= 0) + 1) / (samples.size + 1)
    p_value = min(1.0, 2 * min(below, above))
    if n is not None:
        p_value = max(p_value, min(1.0, 2.0 ** (1 - n)))
    return float(p_value)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN and is not counted): the i-th
    smallest of m is multiplied by m - i (i from 0), made monotone, capped at 1."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    defined = np.flatnonzero(~np.isnan(p))
    order = defined[np.argsort(p[defined], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()
