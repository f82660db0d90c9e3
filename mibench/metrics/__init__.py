"""Objective music–motion metrics of generated dance videos, computed from the pixels, poses and the music.

`music_beats` (librosa beat tracking), `motion` (motion-speed envelope from frames), `bas` (Beat
Alignment Score, FACT and Bailando variants), `tempo` (motion/music tempo and their ratio),
`reliability` (agreement of judge runs and modes, judge vs metric correlations) and `compute` (the
per-video entry point). The run stage over a store is `mibench.stages.measure`; the throughput
benchmark is `mibench.speed.metrics`.

`pose` (2-D keypoints with mediapipe's BlazePose, optional) and `kinetics` (keypoint motion envelope,
kinetic features, Dist_k) are the pose path of the paper's Table 8.
"""

from mibench.metrics.compute import METRICS, compute_video_metrics

__all__ = ["METRICS", "compute_video_metrics"]
