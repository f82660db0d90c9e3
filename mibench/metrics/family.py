"""What a metric family is: the metrics it returns, what it needs and the one function that computes them.

Adding a metric family is one module that defines a `Family` (listed in `registry.FAMILIES`): a name,
the inputs it needs ("pixels", "music", "poses"), the `Metric`s it returns for the chosen BAS recipes
(name, direction, description) and `compute(inputs) -> {name: (value or None, parameters, note or
None)}`, with `Inputs` the shared readings of one video (its pixel motion signal and its music's beats;
a "poses" family runs the pose estimator itself, only when the pose path is asked for).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mibench.metrics.bas import Recipe
    from mibench.metrics.motion import MotionSignal
    from mibench.metrics.music_beats import MusicBeats, MusicRecipe

MetricValue = tuple[float | None, dict, str | None]


@dataclass(frozen=True)
class Metric:
    name: str
    family: str
    needs: tuple[str, ...]  # of "pixels", "poses", "music"
    better: str | None  # "higher", "lower" or None (descriptive: no best value)
    description: str
    recipe: str | None = None  # the BAS recipe behind it, if any


@dataclass(frozen=True)
class Inputs:
    """One video's shared readings: where it is and its timing, its pixel motion, its music's beats by
    music recipe (None with `music_note` saying why there are none), the known tempo and the BAS recipes."""

    video: Path
    fps: float
    timestamps: bool
    motion: MotionSignal
    beats: Callable[[MusicRecipe], MusicBeats] | None
    music_note: str | None
    bpm: float | None
    recipes: tuple[Recipe, ...]


@dataclass(frozen=True)
class Family:
    name: str
    needs: tuple[str, ...]
    metrics: Callable[[Sequence[str]], tuple[Metric, ...]]  # the metrics for these BAS recipe names
    compute: Callable[[Inputs], dict[str, MetricValue]]


def noted(metric: MetricValue, warning: str | None) -> MetricValue:
    """`metric` with `warning` (e.g. about the frames' timing) joined to its note with "; "."""
    value, params, note = metric
    return value, params, "; ".join(part for part in (note, warning) if part) or None
