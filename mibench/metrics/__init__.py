"""Objective music–motion metrics of generated dance videos, computed from the pixels, poses and the music.

`music_beats` (librosa beat tracking), `motion` (motion-speed envelope from frames), `bas` (Beat
Alignment Score, FACT and Bailando variants), `tempo` (motion/music tempo and their ratio),
`reliability` (agreement of judge runs and modes, judge vs metric correlations), `compute` (the
per-video entry point and the throughput benchmark) and `stage` (the run stage over a store).

`pose` (2-D keypoints with mediapipe's BlazePose, optional) and `kinetics` (keypoint motion envelope,
kinetic features, Dist_k) are the pose path of the paper's Table 8.
"""

from mibench.metrics.compute import METRICS, bench_metrics, compute_video_metrics
from mibench.metrics.stage import compute_run_metrics

__all__ = ["METRICS", "bench_metrics", "compute_run_metrics", "compute_video_metrics"]
