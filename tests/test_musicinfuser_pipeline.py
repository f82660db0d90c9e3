"""The MusicInfuser / Mochi DancePipeline on its tiny presets: frames, determinism, music, loading, options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mibench.errors import ConfigError, MediaError, WeightsError
from mibench.generators.musicinfuser import TINY_AUDIO_LAYERS, DancePipeline
from mibench.generators.musicinfuser.tiny import write_tiny_weights

PROMPT = "a professional female dancer dancing k-pop in a studio"
SIZE = dict(num_frames=7, height=16, width=32, steps=3)


def wave(seed: int, seconds: float = 0.5) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(16_000 * seconds)).astype(np.float32)


@pytest.fixture(scope="module")
def infuser():
    return DancePipeline.tiny(with_adapter=True, seed=0)


@pytest.fixture(scope="module")
def baseline():
    return DancePipeline.tiny(with_adapter=False, seed=0)


@pytest.fixture(scope="module")
def infuser_frames(infuser):
    return infuser.generate(PROMPT, wave(0), seed=3, **SIZE)


def test_frames_have_the_requested_size(infuser, infuser_frames):
    assert infuser_frames.dtype == np.uint8
    assert infuser_frames.shape == (7, 16, 32, 3)
    frames = infuser.generate(PROMPT, wave(0), num_frames=13, height=32, width=16, steps=2)
    assert frames.shape == (13, 32, 16, 3)


def test_seed_fixes_the_frames(infuser, infuser_frames):
    assert np.array_equal(infuser.generate(PROMPT, wave(0), seed=3, **SIZE), infuser_frames)
    assert np.array_equal(DancePipeline.tiny(seed=0).generate(PROMPT, wave(0), seed=3, **SIZE), infuser_frames)
    assert not np.array_equal(infuser.generate(PROMPT, wave(0), seed=4, **SIZE), infuser_frames)


def test_music_changes_the_frames(infuser, infuser_frames):
    assert not np.array_equal(infuser.generate(PROMPT, wave(1), seed=3, **SIZE), infuser_frames)


def test_baseline_ignores_music(baseline):
    frames = baseline.generate(PROMPT, None, seed=3, **SIZE)
    assert frames.dtype == np.uint8 and frames.shape == (7, 16, 32, 3)
    assert np.array_equal(baseline.generate(PROMPT, wave(0), seed=3, **SIZE), frames)
    assert np.array_equal(DancePipeline.tiny(with_adapter=False, seed=0).generate(PROMPT, None, seed=3, **SIZE),
                          frames)


def test_music_features(infuser, baseline):
    samples = 8000
    features = infuser.music_features(wave(0, samples / 16_000))
    assert features.dtype == torch.float32
    assert features.shape == (1, (samples - 400) // 320 + 1, infuser.music.feature_dim)
    with pytest.raises(MediaError):
        infuser.music_features(np.zeros((2, 8000), np.float32))
    with pytest.raises(MediaError):
        infuser.music_features(np.zeros(100, np.float32))
    with pytest.raises(ConfigError):
        baseline.music_features(wave(0))


def test_bad_requests(infuser):
    with pytest.raises(ConfigError, match="6k\\+1"):
        infuser.generate(PROMPT, wave(0), num_frames=8, height=16, width=16)
    with pytest.raises(ConfigError, match="multiple of 16"):
        infuser.generate(PROMPT, wave(0), num_frames=7, height=20, width=16)
    with pytest.raises(ConfigError, match="needs music"):
        infuser.generate(PROMPT, None, num_frames=7, height=16, width=16)


def test_progress_and_timings(infuser):
    calls = []
    infuser.generate(PROMPT, wave(0), callback=lambda step, total: calls.append((step, total)), **SIZE)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    timings = infuser.last_timings
    assert len(timings.steps_s) == 3 and all(t > 0 for t in timings.steps_s)
    assert timings.music_s > 0 and timings.text_s > 0 and timings.decode_s > 0


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """The tiny preset written in the `--weights DIR` layout (diffusers parts + official adapter + wav2vec2)."""
    return write_tiny_weights(tmp_path_factory.mktemp("tiny-weights"))


def load(root, **options):
    return DancePipeline.from_weights(root, base=str(root / "no-base"), wav2vec=str(root / "wav2vec2"),
                                      audio_layers=TINY_AUDIO_LAYERS, **options)


def test_from_weights_reproduces_the_tiny_preset(weights_dir, infuser_frames, baseline):
    loaded = load(weights_dir, adapter=weights_dir / "musicinfuser.safetensors", vae_tiling=True)
    assert np.array_equal(loaded.generate(PROMPT, wave(0), seed=3, **SIZE), infuser_frames)
    fused = load(weights_dir, adapter=weights_dir / "musicinfuser.safetensors", fuse_lora=True)
    assert np.abs(fused.generate(PROMPT, wave(0), seed=3, **SIZE).astype(int) - infuser_frames).max() <= 1
    plain = load(weights_dir, adapter=None)
    assert np.array_equal(plain.generate(PROMPT, None, seed=3, **SIZE), baseline.generate(PROMPT, None, seed=3, **SIZE))


def test_bf16_weights_keep_float32_latents(weights_dir):
    loaded = load(weights_dir, adapter=weights_dir / "musicinfuser.safetensors", weight_dtype=torch.bfloat16)
    transformer = loaded.mochi.transformer
    assert transformer.proj_out.weight.dtype == torch.bfloat16
    assert transformer.audio_cross_attn_blocks[0].to_q.weight.dtype == torch.bfloat16
    assert transformer.pos_frequencies.dtype == torch.float32
    frames = loaded.generate(PROMPT, wave(0), seed=3, **SIZE)
    assert frames.dtype == np.uint8 and frames.shape == (7, 16, 32, 3)


def test_from_weights_errors(weights_dir, tmp_path):
    blocks = len(TINY_AUDIO_LAYERS)
    with pytest.raises(WeightsError, match=f"{blocks} audio cross-attention blocks but {blocks - 1}"):
        DancePipeline.from_weights(weights_dir, adapter=weights_dir / "musicinfuser.safetensors",
                                   base=str(weights_dir / "no-base"), wav2vec=str(weights_dir / "wav2vec2"),
                                   audio_layers=TINY_AUDIO_LAYERS[1:])
    with pytest.raises(WeightsError, match="cannot load the Mochi"):
        load(tmp_path, adapter=None)
    with pytest.raises(ConfigError, match="offload needs a GPU"):
        load(weights_dir, adapter=None, offload="model")
    with pytest.raises(ConfigError, match="unknown offload"):
        load(weights_dir, adapter=None, offload="disk", device="cuda")
