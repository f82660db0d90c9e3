"""Objective music–motion metrics of generated dance videos, computed from the pixels, poses and the music.

`music_beats` (librosa beat tracking, by recipe), `motion` (motion-speed envelope from frames), `bas`
(Beat Alignment Score recipes: FACT and Bailando as published, mibench's own), `tempo` (motion/music
tempo and their ratio), `reliability` (agreement of judge runs and modes, judge vs metric correlations),
`registry` (every metric's name, inputs, direction and description) and `compute` (the per-video entry
point). The run stage over a store is `mibench.stages.measure`; the throughput
benchmark is `mibench.speed.metrics`.

`pose` (2-D keypoints with mediapipe's BlazePose, optional) and `kinetics` (keypoint motion envelope,
kinetic features, Dist_k) are the pose path of the paper's Table 8.
"""

from mibench.metrics.compute import compute_video_metrics
from mibench.metrics.registry import METRICS

__all__ = ["METRICS", "compute_video_metrics"]
