"""Objective music–motion metrics of generated dance videos, computed from the pixels and the music.

`music_beats` (librosa beat tracking), `motion` (motion-speed envelope from frames), `bas` (Beat
Alignment Score, FACT and Bailando variants), `tempo` (motion/music tempo and their ratio),
`reliability` (agreement of judge runs and modes, judge vs metric correlations) and `compute` (the
per-video entry point, the run stage over a store and the throughput benchmark).

There is no 2-D pose path (the paper's Table 8 computes BeatAlign and Dist_k on 2-D poses): no pose
estimator installs from PyPI with its weights AND beside numpy 2. mediapipe 0.10.21, the last with
`pose_landmark_full.tflite` in the wheel, requires numpy<2 (plus jax, matplotlib, opencv-contrib);
later mediapipe, rtmlib and ultralytics download their weights at run time. Motion comes from pixels.
"""

from mibench.metrics.compute import METRICS, bench_metrics, compute_run_metrics, compute_video_metrics

__all__ = ["METRICS", "bench_metrics", "compute_run_metrics", "compute_video_metrics"]
