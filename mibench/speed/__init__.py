"""`mibench bench ...`: speed and peak memory of each stage, as medians of repeated timed runs.

`generate` (a generator's seconds per video and per denoising step), `judge` (the VideoLLaMA 2 judge,
naive vs cached), `metrics` (the objective metrics, x real time) and `memory` (peak memory readings).
Speed is measured here, never asserted in tests.
"""
