"""The objective metrics by name: every family (`family.Family`), the metrics it returns, what they need,
which way is better and what they mean.

The one list the stage, the store and the report read: `compute.compute_video_metrics` runs the families
of `FAMILIES` (the "poses" one only with the pose path) and returns exactly `names(recipes, pose)`; the
report takes directions (best-value marks) and descriptions from `METRICS`. Adding a family is one module
and one entry in `FAMILIES`. `pose_dist_k` is the report's set-level metric (Dist_k over a model's
videos, not stored per video), normalised with a reference set as published; without one the report
names it `pose_dist_k_pooled` (normalised with every model of the run: not the published recipe).
"""

from __future__ import annotations

from collections.abc import Sequence

from mibench.metrics import bas, pose_path, tempo
from mibench.metrics.bas import PUBLISHED, RECIPES
from mibench.metrics.family import Family, Metric

FAMILIES: tuple[Family, ...] = (bas.FAMILY, tempo.FAMILY, pose_path.FAMILY)
DIST_K = Metric("pose_dist_k", "set", ("poses",), "higher",
                "kinetic diversity (Dist_k) of a model's videos: mean pairwise distance of kinetic features "
                "z-normalised with the reference set's (report --dist-reference: the real dances, as published)")
DIST_K_POOLED = Metric("pose_dist_k_pooled", "set", ("poses",), "higher",
                       "kinetic diversity of a model's videos with the features z-normalised over every model of "
                       "the run (no --dist-reference: not the published recipe, and it moves when models are added)")

METRICS: dict[str, Metric] = {m.name: m for family in FAMILIES for m in family.metrics(tuple(RECIPES))} | {
    DIST_K.name: DIST_K, DIST_K_POOLED.name: DIST_K_POOLED}


def families(*, pose: bool = False) -> tuple[Family, ...]:
    """The families a video's metrics come from (the "poses" one only with the pose path)."""
    return tuple(f for f in FAMILIES if pose or "poses" not in f.needs)


def names(recipes: Sequence[str] = PUBLISHED, *, pose: bool = False) -> tuple[str, ...]:
    """The per-video metrics `compute_video_metrics` returns for these BAS recipes (and the pose path)."""
    return tuple(m.name for family in families(pose=pose) for m in family.metrics(tuple(recipes)))


def better(name: str) -> str | None:
    """Which way a metric is better ("higher", "lower" or None); None for unknown names."""
    metric = METRICS.get(name)
    return metric.better if metric else None
