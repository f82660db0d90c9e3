"""Behaviour of the VideoLLaMA 2.1-AV judge on the tiny preset and of its strict loader.

Synthetic clips are written with PyAV (moving shapes, a tone in AAC); the strict-loading tests edit
a copy of the golden fixture checkpoint. Run: pytest tests/test_videollama2_judge.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import fixture_set
from safetensors.torch import load_file, save_file

from mibench.errors import ConfigError, MediaError, WeightsError
from mibench.judges.scoring import answer_distribution
from mibench.judges.videollama2 import VideoLLaMA2Judge
from mibench.judges.videollama2 import preprocess as pp
from mibench.judges.videollama2.decode import StopRules
from mibench.judges.videollama2.preprocess import frame_indices
from mibench.media.video import probe

QUESTION = ("Rate the beat alignment of the dance to music 0-10 where: 0 means poor beat alignment, "
            "5 means moderate beat alignment, and 10 means perfect beat alignment. Output only the number.")
RATE = 22050


def write_clip(path: Path, seconds: float = 2.0, fps: int = 12, audio: str | None = "tone") -> Path:
    """H.264 mp4 with two moving rectangles and, optionally, an AAC mono track (a tone or silence)."""
    height, width = 48, 64
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=RATE, layout="mono") if audio else None
        for i in range(int(seconds * fps)):
            image = np.full((height, width, 3), 30, np.uint8)
            x = i * (width - 12) // int(seconds * fps)
            image[10:22, x:x + 12] = (230, 40, 40)
            image[30:40, width - 10 - x // 2:width - x // 2] = (40, 200, 90)
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(video.encode())
        if sound is not None:
            t = np.arange(int(seconds * RATE)) / RATE
            wave = 0.3 * np.sin(2 * np.pi * 440 * t) * (audio == "tone")
            for start in range(0, len(wave), 1024):
                frame = av.AudioFrame.from_ndarray(wave[None, start:start + 1024].astype(np.float32),
                                                   format="fltp", layout="mono")
                frame.sample_rate, frame.pts = RATE, start
                out.mux(sound.encode(frame))
            out.mux(sound.encode())
    return path


@pytest.fixture(scope="module")
def judge():
    return VideoLLaMA2Judge.tiny(seed=0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("vl2") / "dance.mp4")


@pytest.fixture(scope="module")
def encoded(judge, clip):
    return judge.encode(clip)


def test_encode_av(judge, encoded, clip):
    assert encoded.modal == "av" and encoded.jitter_seed is None
    assert encoded.frame_indices == frame_indices(probe(clip).num_frames, judge.settings.num_frames)
    assert len(encoded.clip_ranges) == pp.CLIPS_PER_VIDEO
    fbank_frames = 1 + (pp.PADDED_SAMPLES - pp.SAMPLE_RATE * 25 // 1000) // (pp.SAMPLE_RATE * 10 // 1000)
    patch = judge.model.cfg.beats.input_patch_size
    audio_tokens = (fbank_frames // patch) * (pp.NUM_MEL_BINS // patch)
    assert encoded.tokens.shape == (encoded.num_video_tokens + audio_tokens, judge.model.cfg.llm.hidden_size)


def test_greedy_cached_equals_naive(judge, encoded):
    questions = [QUESTION, "Rate the imaging quality 0-10. Output only the number."]
    cached = judge.ask(encoded, questions, max_new_tokens=6)
    naive = judge.ask(encoded, questions, max_new_tokens=6, cached=False)
    assert [a.token_ids for a in cached] == [a.token_ids for a in naive]
    assert [a.text for a in cached] == [a.text for a in naive]
    assert all(a.expected_score is None and len(a.token_ids) <= 6 for a in cached)


def test_expected_mode(judge, encoded):
    [answer] = judge.ask(encoded, [QUESTION], mode="expected", max_new_tokens=4)
    assert list(answer.distribution) == [str(k) for k in range(11)]
    assert sum(answer.distribution.values()) == pytest.approx(1.0, abs=1e-9)
    assert 0.0 <= answer.expected_score <= 10.0
    assert answer.expected_score == pytest.approx(sum(int(k) * p for k, p in answer.distribution.items()))
    assert 0.0 < answer.valid_mass <= 1.0
    [greedy] = judge.ask(encoded, [QUESTION], max_new_tokens=4)
    assert greedy.token_ids == answer.token_ids


def test_answer_distribution_splits_one_and_ten():
    """P("10") = P("1") P("0"|"1"), P("1") = P("1") (1 - P("0"|"1")); the session is cropped back."""

    class FakeSession:
        length = 5

        def feed_ids(self, ids):
            assert ids == [1]
            return torch.log(torch.tensor([0.25, 0.5, 0.25]))

        def crop(self, length):
            assert length == 5

    first = torch.log(torch.tensor([0.2, 0.6, 0.2]))
    dist, mass = answer_distribution(FakeSession(), first, {"0": [0], "1": [1], "2": [2], "10": [1, 0]})
    raw = {"0": 0.2, "1": 0.6 * 0.75, "2": 0.2, "10": 0.6 * 0.25}
    assert mass == pytest.approx(1.0)
    assert dist == pytest.approx(raw)


def test_stop_rules():
    rules = StopRules(eos_ids=frozenset({9}), keyword="<|im_end|>", keyword_ids=[9], repetition_penalty=1.0,
                      decode=lambda ids: "".join(f"<{i}>" for i in ids))
    assert rules.stops([3, 9], prompt_len=50)
    assert not rules.stops([3, 4], prompt_len=50)


def test_jitter_is_seeded(judge, clip, encoded):
    first = judge.encode(clip, jitter_seed=7)
    again = judge.encode(clip, jitter_seed=7)
    other = judge.encode(clip, jitter_seed=8)
    assert first.frame_indices == again.frame_indices and first.clip_ranges == again.clip_ranges
    assert torch.equal(first.tokens, again.tokens)
    assert (first.frame_indices, first.clip_ranges) != (other.frame_indices, other.clip_ranges)
    assert (first.frame_indices, first.clip_ranges) != (encoded.frame_indices, encoded.clip_ranges)
    for indices in (first.frame_indices, other.frame_indices):
        assert indices == sorted(indices) and indices[0] >= 0 and indices[-1] <= 23


def write_audio(path: Path, channels: np.ndarray, rate: int, layout: str, codec: str = "aac") -> Path:
    """An audio-only file holding `channels` [C, N] (float in [-1, 1], or int16 for pcm_s16le)."""
    fmt, dtype = ("s16", np.int16) if codec == "pcm_s16le" else ("fltp", np.float32)
    with av.open(str(path), "w", format="mov" if codec == "pcm_s16le" else "mp4") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        step = 1024
        for start in range(0, channels.shape[1], step):
            part = channels[:, start:start + step]
            data = part.T.reshape(1, -1) if fmt == "s16" else part
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data, dtype=dtype), format=fmt, layout=layout)
            frame.sample_rate, frame.pts = rate, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.mark.parametrize(("rate", "layout", "tone_channels"), [
    (16000, "mono", [0]), (22050, "mono", [0]), (44100, "stereo", [0]), (48000, "stereo", [0]),
    (48000, "stereo", [0, 1]), (32000, "5.1", [0, 1, 2, 3, 4, 5]), (8000, "mono", [0]),
])
def test_audio_of_any_rate_and_layout(tmp_path, rate, layout, tone_channels):
    """The judge hears any track as ffmpeg's `-ac 1 -ar 16000` would: 16 kHz, channels averaged
    ((L + R)/2 for stereo; the LFE channel has weight 0 and the rest sum to 1 for 5.1)."""
    seconds, amplitude = 1.5, 0.3
    count = len(av.AudioLayout(layout).channels)
    t = np.arange(int(seconds * rate)) / rate
    channels = np.zeros((count, t.size), np.float32)
    channels[tone_channels] = amplitude * np.sin(2 * np.pi * 440 * t)
    pcm = pp.read_audio(write_audio(tmp_path / "tone.mp4", channels, rate, layout))
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    # AAC keeps its end padding (up to one 1024-sample frame), as the reference's ffmpeg 5.1 does
    assert 0 <= len(pcm) - seconds * pp.SAMPLE_RATE <= 1024 * pp.SAMPLE_RATE / rate + 16
    middle = pcm[pp.SAMPLE_RATE // 4: pp.SAMPLE_RATE * 5 // 4].astype(np.float64) / 32768
    spectrum = np.abs(np.fft.rfft(middle))
    assert abs(np.argmax(spectrum) * pp.SAMPLE_RATE / len(middle) - 440) <= 2
    gain = 1.0 if layout != "stereo" else len(tone_channels) / 2
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(gain * amplitude / np.sqrt(2), rel=0.03)


@pytest.mark.parametrize("layout", ["mono", "stereo"])
def test_audio_pcm16k_is_read_exactly(tmp_path, layout):
    """16 kHz int16 PCM comes back bit for bit; a stereo (x + d, x - d) track downmixes to exactly x."""
    x = (np.random.default_rng(0).standard_normal(16000) * 3000).astype(np.int16)
    d = np.random.default_rng(1).integers(-300, 301, x.size)
    channels = x[None] if layout == "mono" else np.stack([x + d, x - d]).astype(np.int16)
    pcm = pp.read_audio(write_audio(tmp_path / "pcm.mov", channels, 16000, layout, "pcm_s16le"))
    assert np.array_equal(pcm, x)


def test_frame_index_formula():
    assert frame_indices(73, 16) == [2, 7, 11, 16, 20, 25, 29, 34, 38, 43, 47, 52, 56, 61, 65, 70]
    assert frame_indices(5, 8) == [0, 1, 1, 2, 2, 3, 3, 4]


def test_missing_audio(judge, tmp_path):
    mute = write_clip(tmp_path / "mute.mp4", audio=None)
    with pytest.raises(MediaError, match="no audio track"):
        judge.encode(mute)
    encoded = judge.encode(mute, modal="video")
    assert encoded.clip_ranges is None and len(encoded.tokens) == encoded.num_video_tokens
    [answer] = judge.ask(encoded, [QUESTION], max_new_tokens=3)
    assert 1 <= len(answer.token_ids) <= 3


def test_silent_audio(judge, tmp_path):
    with pytest.raises(MediaError, match="silent"):
        judge.encode(write_clip(tmp_path / "silent.mp4", audio="silence"))


def test_bad_inputs(judge, encoded, tmp_path):
    with pytest.raises(MediaError, match="not found"):
        judge.encode(tmp_path / "nothing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(MediaError):
        judge.encode(tmp_path / "junk.mp4")
    with pytest.raises(ConfigError):
        judge.encode(tmp_path / "junk.mp4", modal="audio")
    with pytest.raises(ConfigError):
        judge.ask(encoded, [QUESTION], mode="sampled")
    with pytest.raises(ConfigError):
        judge.ask(encoded, [QUESTION], max_new_tokens=0)
    with pytest.raises(ConfigError):
        judge.ask(encoded, ["<video> twice?"])


def test_tiny_is_seeded():
    a, b, c = VideoLLaMA2Judge.tiny(3), VideoLLaMA2Judge.tiny(3), VideoLLaMA2Judge.tiny(4)
    wa, wb, wc = (j.model.state_dict() for j in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(wa["llm.lm_head.weight"], wc["llm.lm_head.weight"])


# strict loading, on a copy of the golden fixture checkpoint


@pytest.fixture()
def checkpoint_copy(tmp_path):
    root = fixture_set("videollama2")
    for name in ("checkpoint", "siglip"):
        shutil.copytree(root / name, tmp_path / name)
        for f in (tmp_path / name).iterdir():
            f.chmod(0o644)
    return tmp_path / "checkpoint"


def edit_weights(folder: Path, edit) -> None:
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors")


def test_fixture_checkpoint_loads(checkpoint_copy):
    judge = VideoLLaMA2Judge.from_pretrained(checkpoint_copy)
    tensors = load_file(checkpoint_copy / "model.safetensors")
    g, v = (tensors[f"model.audio_tower.encoder.pos_conv.0.weight_{x}"] for x in "gv")
    folded = g.float() * v.float() * torch.rsqrt(v.float().pow(2).sum((0, 1), keepdim=True) + 1e-6)
    torch.testing.assert_close(judge.model.audio_tower.encoder.pos_conv.weight, folded)


def _last_bias_copy(tensors: dict) -> str:
    """The relative-bias key of the set's last BEATs layer (a copy of layer 0's table when there are
    several layers; with a single layer, the name a second layer's copy would have)."""
    layers = max(int(k.split(".")[4]) for k in tensors if k.endswith("self_attn.relative_attention_bias.weight"))
    return f"model.audio_tower.encoder.layers.{max(layers, 1)}.self_attn.relative_attention_bias.weight"


def _drop_first_projector_a_tensor(tensors: dict) -> str:
    key = sorted(k for k in tensors if k.startswith("model.mm_projector_a."))[0]
    tensors.pop(key)
    return "missing [" + key.removeprefix("model.")


def _differing_bias_copy(tensors: dict) -> str:
    key = _last_bias_copy(tensors)
    shared = tensors["model.audio_tower.encoder.layers.0.self_attn.relative_attention_bias.weight"]
    tensors[key] = shared + 1
    return key.removeprefix("model.audio_tower.").removesuffix(".weight")


def _pop(key: str, named: str):
    return lambda t: (t.pop(key), named)[1]


def _add(key: str, value: torch.Tensor, named: str):
    return lambda t: (t.update({key: value}), named)[1]


@pytest.mark.parametrize("edit", [
    _drop_first_projector_a_tensor,
    _pop("model.audio_tower.encoder.pos_conv.0.weight_v", "audio_tower.encoder.pos_conv.weight"),
    _add("model.extra.weight", torch.zeros(2), "unexpected [model.extra.weight"),
    _differing_bias_copy,
    _add("model.norm.weight", torch.zeros(3), "wrong shape [llm.model.norm.weight"),
], ids=["missing", "weight-norm", "extra", "bias-copy", "shape"])
def test_strict_loading(checkpoint_copy, edit):
    tensors = load_file(checkpoint_copy / "model.safetensors")
    named = edit(tensors)
    save_file(tensors, checkpoint_copy / "model.safetensors")
    with pytest.raises(WeightsError, match="does not match") as info:
        VideoLLaMA2Judge.from_pretrained(checkpoint_copy)
    assert named in str(info.value) and "\n" not in str(info.value)


def test_siglip_extra_tensor(checkpoint_copy):
    edit_weights(checkpoint_copy.parent / "siglip", lambda t: t.update({"stray": torch.zeros(1)}))
    with pytest.raises(WeightsError, match="unexpected \\[stray"):
        VideoLLaMA2Judge.from_pretrained(checkpoint_copy)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(WeightsError):
        VideoLLaMA2Judge.from_pretrained(tmp_path / "absent")


def test_sharded_checkpoint_loads(checkpoint_copy):
    tensors = load_file(checkpoint_copy / "model.safetensors")
    (checkpoint_copy / "model.safetensors").unlink()
    keys = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, part in shards.items():
        save_file({k: tensors[k] for k in part}, checkpoint_copy / name)
    index = {"weight_map": {k: name for name, part in shards.items() for k in part}}
    (checkpoint_copy / "model.safetensors.index.json").write_text(json.dumps(index))
    judge = VideoLLaMA2Judge.from_pretrained(checkpoint_copy)
    torch.testing.assert_close(judge.model.llm.lm_head.weight, tensors["lm_head.weight"].float())
