"""The objective metrics by name: what each needs, which way is better, what it means.

The one list the stage, the store and the report read: `compute.compute_video_metrics` returns exactly
the metrics `names(recipes, pose)` lists; the report takes labels, directions (best-value marks) and
descriptions from here. A metric family is computed by one function of `compute.py` with the uniform
result name -> (value or None, parameters, note or None).

Families: "bas" (one metric per BAS recipe of `bas.RECIPES`, pixels + music), "tempo" (pixels, and music
for the music tempo and the ratio), "pose" (2-D keypoints: pose BAS per recipe, kinetic energy, detection
rate) and the report's set-level "pose_dist_k" (Dist_k over a model's videos, not stored per video).
"""

from __future__ import annotations

from dataclasses import dataclass

from mibench.metrics.bas import PUBLISHED, RECIPES


@dataclass(frozen=True)
class Metric:
    name: str
    family: str  # "bas", "tempo", "pose", "set"
    needs: tuple[str, ...]  # of "pixels", "poses", "music"
    better: str | None  # "higher", "lower" or None (descriptive: no best value)
    description: str
    recipe: str | None = None  # the BAS recipe, for "bas" and pose BAS metrics


def _bas(recipe: str, pose: bool) -> Metric:
    chosen = RECIPES[recipe]
    signal = "2-D pose" if pose else "pixel motion"
    return Metric(f"{'pose_' if pose else ''}bas_{recipe}", "pose" if pose else "bas",
                  ("poses" if pose else "pixels", "music"), "higher",
                  f"Beat Alignment Score, {chosen.source} recipe, on the {signal} speed", recipe)


_FIXED = (
    Metric("motion_bpm", "tempo", ("pixels",), None, "tempo of the motion (periodicity of the speed envelope)"),
    Metric("music_bpm", "tempo", ("music",), None, "tempo of the music's beats within the video"),
    Metric("tempo_ratio", "tempo", ("pixels", "music"), None,
           "motion tempo / music tempo (1 = dancing at the music's tempo; 2 or 0.5 = double or half time)"),
    Metric("motion_speed", "tempo", ("pixels",), None, "mean motion speed of the pixels"),
    Metric("frame_consistency", "tempo", ("pixels",), "higher", "mean correlation of consecutive frames"),
    Metric("pose_kinetic_energy", "pose", ("poses",), None,
           "mean horizontal + vertical kinetic energy of the joints (aistplusplus_api kinetic features)"),
    Metric("pose_detected", "pose", ("poses",), "higher", "share of frames in which the pose estimator found a person"),
    Metric("pose_dist_k", "set", ("poses",), "higher",
           "kinetic diversity (Dist_k) of a model's videos: mean pairwise distance of z-normalised kinetic features"),
)

METRICS: dict[str, Metric] = {m.name: m for m in (
    *(_bas(r, pose=False) for r in RECIPES), *(_bas(r, pose=True) for r in RECIPES), *_FIXED)}


def names(recipes=PUBLISHED, *, pose: bool = False) -> tuple[str, ...]:
    """The per-video metrics `compute_video_metrics` returns for these BAS recipes (and the pose path)."""
    chosen = [m for m in METRICS.values() if m.family in ("bas", "tempo") or (pose and m.family == "pose")]
    return tuple(m.name for m in chosen if m.recipe is None or m.recipe in recipes)


def better(name: str) -> str | None:
    """Which way a metric is better ("higher", "lower" or None); None for unknown names."""
    metric = METRICS.get(name)
    return metric.better if metric else None
