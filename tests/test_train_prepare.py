"""`mibench.train.prepare` on synthetic dancers: clip windows, captions, exclusions, the cache and resuming.

Tiny settings: 7-frame clips of 48x32 at 30 fps (a 0.3 s span), 60 clips per minute so that seconds-long
videos get several clips, encoded by `Encoders.tiny()`.
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from mibench.errors import ConfigError
from mibench.generators.musicinfuser import DancePipeline
from mibench.generators.musicinfuser.tiny import write_tiny_weights
from mibench.media.audio import load_audio
from mibench.media.synth import dancer_video, drum_track
from mibench.media.video import decoded_frames, probe, write_mp4
from mibench.train.captions import TEMPLATES, parse_aist_name
from mibench.train.clips import clip_seconds, clip_starts, crop_box, cut_clips
from mibench.train.prepare import Encoders, find_videos, prepare

SETTINGS = dict(frames=7, fps=30, height=32, width=48, crops_per_minute=60, seed=0)
SPAN = clip_seconds(7, 30)  # 0.3 s
FIELDS = {"clip_id", "source", "kind", "start_s", "frames", "fps", "height", "width", "caption", "basic_caption",
          "genre", "situation", "camera", "dancer", "music_id", "cache"}
AIST_SIZE, WILD_SIZE = (108, 192), (64, 96)  # (H, W): AIST's 16:9, the clips' 3:2


def _video(path, seconds, size, *, music=True, silent=False):
    frames = dancer_video(120, seconds, 30, size)
    wave = np.zeros(round(seconds * 16000), np.float32) if silent else drum_track(120, seconds)
    write_mp4(path, frames, 30, **({"audio": wave, "audio_sr": 16000} if music else {}))
    return path


class Counting:
    """Encoders whose encode calls are counted."""

    def __init__(self, encoders, monkeypatch):
        self.calls = 0
        for name in ("encode_video", "encode_text", "encode_music"):
            monkeypatch.setattr(encoders, name, self._counted(getattr(encoders, name)))

    def _counted(self, method):
        def call(*args):
            self.calls += 1
            return method(*args)
        return call


@pytest.fixture(scope="module")
def encoders():
    return Encoders.tiny()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    _video(root / "gBR_sBM_c01_d04_mBR1_ch01.mp4", 1.0, AIST_SIZE)
    _video(root / "gBR_sBM_c01_d04_mBR0_ch01.mp4", 1.0, AIST_SIZE)  # test-split music
    _video(root / "gBR_sBM_c02_d04_mBR1_ch01.mp4", 1.0, AIST_SIZE)  # another camera
    _video(root / "gBR_sBM_c01_d04_mBR0_ch01_1080p.mp4", 1.0, AIST_SIZE)  # renamed: music and camera unknown
    _video(root / "wild_captioned.mp4", 2.5, WILD_SIZE)
    (root / "wild_captioned.txt").write_text("  a woman dancing hip-hop in a park\n")
    _video(root / "wild_plain.mp4", 1.0, WILD_SIZE)
    _video(root / "wild_short.mp4", 0.33, WILD_SIZE)  # 0.33 s * 0.9 <= 0.3 s: no room away from the edges
    _video(root / "wild_silent.mp4", 1.0, WILD_SIZE, silent=True)
    _video(root / "wild_mute.mp4", 1.0, WILD_SIZE, music=False)
    _video(root / "wild_small.mp4", 1.0, (16, 24))
    (root / "wild_corrupt.mp4").write_bytes(b"not a video" * 100)
    return root


@pytest.fixture(scope="module")
def prepared(videos, encoders, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    summary = prepare([videos], out, encoders=encoders, **SETTINGS)
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return out, summary, {record["clip_id"]: record for record in manifest}


def test_clip_count_rule_and_windows():
    assert [len(clip_starts(d, 2.5, crops_per_minute=5, edge_margin=0.05, seed=0, key="v")) for d in
            (10.0, 60.0, 61.0, 600.0)] == [1, 5, 6, 50]
    assert clip_starts(2.7, 2.5, crops_per_minute=5, edge_margin=0.05, seed=0, key="v") == []
    starts = clip_starts(600.0, 2.5, crops_per_minute=5, edge_margin=0.05, seed=3, key="v")
    assert starts == sorted(starts) and min(starts) >= 30.0 and max(starts) + 2.5 <= 570.0
    assert starts == clip_starts(600.0, 2.5, crops_per_minute=5, edge_margin=0.05, seed=3, key="v")
    assert starts != clip_starts(600.0, 2.5, crops_per_minute=5, edge_margin=0.05, seed=4, key="v")
    assert clip_seconds(73, 30) == 2.5 and clip_seconds(145, 30) == 4.9


def test_crop_boxes():
    assert crop_box(True, 1920, 1080, 848, 480) == (324, 270, 1272, 720)  # the official AIST crop
    assert crop_box(False, 1920, 1080, 848, 480) == (6, 0, 1908, 1080)  # 848x480 is a little wider than 16:9
    assert crop_box(False, 1280, 720, 480, 480) == (280, 0, 720, 720)
    assert crop_box(False, 720, 1280, 848, 480) == (0, 436, 720, 407)


def test_clip_frames_follow_the_timestamps(tmp_path):
    """A 60 fps source whose frame i is grey level 4 i: 30 fps clip frame k shows source frame
    floor((start + k / 30) * 60), the frame on screen then."""
    levels = np.repeat(4 * np.arange(60, dtype=np.uint8), 32 * 48 * 3).reshape(60, 32, 48, 3)
    path = write_mp4(tmp_path / "ramp.mp4", levels, 60, crf=0)
    box = crop_box(False, 48, 32, 48, 32)
    clips = dict(cut_clips(path, [0.5, 0.1], frames=7, fps=30, source_fps=60, box=box, out_width=48,
                           out_height=32))
    for i, start in enumerate((0.5, 0.1)):
        shown = np.round(clips[i].reshape(7, -1).mean(axis=1) / 4)
        assert shown.tolist() == [math.floor((start + k / 30) * 60 + 1e-6) for k in range(7)]


def test_aist_names():
    name = parse_aist_name("gJB_sFM_c10_d07_d08_mJB2_ch03")
    assert (name.genre, name.situation, name.camera_view, name.music_id) == \
        ("Ballet Jazz", "advanced dance", "moving front view", "mJB2")
    assert name.dancers_text == "a professional female dancer and a professional female dancer"
    assert parse_aist_name("gBR_sBM_c01_d04_mBR1_ch01").dancers_text == "a professional male dancer"
    assert parse_aist_name("my_dance_video") is None
    with pytest.raises(ConfigError, match="unknown genre code 'XX'"):
        parse_aist_name("gXX_sBM_c01_d04_mBR1_ch01")


def test_clips_per_video_and_windows(prepared, videos):
    out, summary, clips = prepared
    per_video = {}
    for record in clips.values():
        per_video.setdefault(record["source"], []).append(record)
    assert {p.split("/")[-1]: len(r) for p, r in per_video.items()} == \
        {"gBR_sBM_c01_d04_mBR1_ch01.mp4": 1, "wild_captioned.mp4": 3, "wild_plain.mp4": 1}
    for source, records in per_video.items():
        duration = probe(source).duration
        assert len(records) == math.ceil(duration / 60 * SETTINGS["crops_per_minute"])
        for record in records:
            assert 0.05 * duration <= record["start_s"] and record["start_s"] + SPAN <= 0.95 * duration
    assert summary.computed == 5 and summary.reused == 0


def test_manifest_fields_and_captions(prepared):
    out, _, clips = prepared
    assert all(set(record) == FIELDS for record in clips.values())
    aist = clips["gBR_sBM_c01_d04_mBR1_ch01.seg0"]
    filled = {t.format(dancers="a professional male dancer", genre="Break", situation="basic dance",
                       camera="front view") for t in TEMPLATES}
    assert aist["caption"] in filled
    assert aist["basic_caption"] == "a professional dancer dancing in a studio with a white backdrop"
    assert (aist["kind"], aist["genre"], aist["situation"], aist["camera"], aist["dancer"], aist["music_id"]) == \
        ("aist", "BR", "BM", "c01", "d04", "mBR1")
    wild = clips["wild_captioned.seg2"]
    assert (wild["kind"], wild["caption"], wild["basic_caption"]) == \
        ("wild", "a woman dancing hip-hop in a park", "a dance video")
    assert clips["wild_plain.seg0"]["caption"] == "a YouTube dance video"
    assert all(wild[k] is None for k in ("genre", "situation", "camera", "dancer", "music_id"))
    assert (wild["frames"], wild["fps"], wild["height"], wild["width"], wild["cache"]) == \
        (7, 30, 32, 48, "clips/wild_captioned.seg2.safetensors")
    settings = json.loads((out / "prepare.json").read_text())
    assert settings["settings"]["clip_seconds"] == SPAN and "torch" in settings["versions"]


def test_exclusions_and_skips(prepared):
    out, summary, _ = prepared
    assert {(p.split("/")[-1], r) for p, r in summary.excluded} == {
        ("gBR_sBM_c01_d04_mBR0_ch01.mp4", "test-split music mBR0"),
        ("gBR_sBM_c02_d04_mBR1_ch01.mp4", "camera c02 (front-left diagonal view) is not one of c01, c10"),
        ("gBR_sBM_c01_d04_mBR0_ch01_1080p.mp4", "an AIST-style name that does not parse, so its music and camera are "
                                                "unknown (rename it as gBR_sBM_c01_d04_mBR1_ch01 to use it)")}
    skipped = {json.loads(line)["source"].split("/")[-1]: json.loads(line)["reason"]
               for line in (out / "skipped.jsonl").read_text().splitlines()}
    assert set(skipped) == {"wild_short.mp4", "wild_silent.mp4", "wild_mute.mp4", "wild_small.mp4", "wild_corrupt.mp4"}
    assert "too short" in skipped["wild_short.mp4"] and "silent" in skipped["wild_silent.mp4"]
    assert "no audio track" in skipped["wild_mute.mp4"] and "smaller than" in skipped["wild_small.mp4"]
    assert "cannot be decoded" in skipped["wild_corrupt.mp4"]
    assert all("\n" not in reason for reason in skipped.values())


def test_cache_tensors(prepared, encoders, videos):
    out, _, clips = prepared
    record = clips["wild_captioned.seg1"]
    cache = load_file(out / record["cache"])
    shapes = {k: tuple(v.shape) for k, v in cache.items()}
    assert shapes == {"latent_mean": (12, 2, 4, 6), "latent_logvar": (12, 2, 4, 6), "text_feat": (16, 32),
                      "text_mask": (16,), "basic_feat": (16, 32), "basic_mask": (16,), "audio_feat": (14, 32)}
    assert {k: v.dtype for k, v in cache.items()} == {
        k: torch.int64 if k.endswith("mask") else torch.float32 for k in cache}
    with safe_open(out / record["cache"], "pt") as handle:
        assert handle.metadata()["clip_id"] == "wild_captioned.seg1"
    # the same frames, picked and resized here, through the VAE directly
    source = [f.to_ndarray(format="rgb24") for f in decoded_frames(videos / "wild_captioned.mp4")]
    indices = [math.floor((record["start_s"] + k / 30) * 30 + 1e-6) for k in range(7)]
    frames = np.stack([cv2.resize(source[i], (48, 32), interpolation=cv2.INTER_AREA) for i in indices])
    pixels = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        dist = encoders.vae.encode(pixels).latent_dist
    torch.testing.assert_close(cache["latent_mean"], dist.mean[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(cache["latent_logvar"], dist.logvar[0], rtol=0, atol=1e-6)
    # the music of the same span; the captions as the inference pipeline encodes prompts
    wave, _ = load_audio(videos / "wild_captioned.mp4", 16000)
    start = round(record["start_s"] * 16000)
    torch.testing.assert_close(cache["audio_feat"], encoders.music(wave[start:start + 4800])[0])
    pipe = DancePipeline.tiny()
    for feat, mask, text in (("text_feat", "text_mask", record["caption"]),
                             ("basic_feat", "basic_mask", record["basic_caption"])):
        condition = pipe.encode_prompt(text)
        torch.testing.assert_close(cache[feat], condition.embeds[0])
        assert torch.equal(cache[mask], condition.mask[0].long())


def test_resume_computes_nothing(prepared, videos, encoders, monkeypatch):
    out, _, clips = prepared
    counter = Counting(encoders, monkeypatch)
    summary = prepare([videos], out, encoders=encoders, **SETTINGS)
    assert (counter.calls, summary.computed, summary.reused) == (0, 0, 5)
    again = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {r["clip_id"]: r for r in again} == clips and len(again) == len(clips)


def test_killed_run_resumes_with_one_clip(prepared, videos, encoders, tmp_path, monkeypatch):
    out, _, clips = prepared
    copy = tmp_path / "copy"
    (copy / "clips").mkdir(parents=True)
    for name in ("prepare.json", *(clips[c]["cache"] for c in clips if c != "wild_captioned.seg2")):
        (copy / name).write_bytes((out / name).read_bytes())
    lines = (out / "manifest.jsonl").read_text().splitlines()
    kept = [line for line in lines if "wild_captioned.seg2" not in line]
    (copy / "manifest.jsonl").write_text("\n".join(kept[:2]) + "\n" + kept[2][:20])  # cut mid-line
    counter = Counting(encoders, monkeypatch)
    summary = prepare([videos / "wild_captioned.mp4", videos / "wild_plain.mp4"], copy, encoders=encoders,
                      **SETTINGS)
    assert (summary.computed, summary.reused) == (1, 3) and counter.calls == 4  # video, 2 captions, music
    again, first = (load_file(folder / "clips/wild_captioned.seg2.safetensors") for folder in (copy, out))
    assert all(torch.equal(again[k], first[k]) for k in first)  # deterministic for a seed
    manifest = [json.loads(line)["clip_id"] for line in (copy / "manifest.jsonl").read_text().splitlines()]
    assert manifest == ["wild_captioned.seg0", "wild_captioned.seg1", "wild_captioned.seg2", "wild_plain.seg0"]


def test_an_edited_caption_is_encoded_again(videos, encoders, tmp_path):
    video = tmp_path / "wild_plain.mp4"
    video.write_bytes((videos / "wild_plain.mp4").read_bytes())
    prepare([video], tmp_path / "out", encoders=encoders, **SETTINGS)
    before = load_file(tmp_path / "out/clips/wild_plain.seg0.safetensors")
    video.with_suffix(".txt").write_text("a man dancing on a roof")
    summary = prepare([video], tmp_path / "out", encoders=encoders, **SETTINGS)
    after = load_file(tmp_path / "out/clips/wild_plain.seg0.safetensors")
    assert (summary.computed, summary.reused) == (1, 0)
    assert not torch.equal(before["text_feat"], after["text_feat"])
    assert torch.equal(before["latent_mean"], after["latent_mean"])
    assert json.loads((tmp_path / "out/manifest.jsonl").read_text())["caption"] == "a man dancing on a roof"


def test_other_settings_are_refused(prepared, videos, encoders):
    out, _, _ = prepared
    with pytest.raises(ConfigError) as refused:
        prepare([videos], out, encoders=encoders, **{**SETTINGS, "seed": 1})
    assert "seed: 0 -> 1" in str(refused.value) and "another --out" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_bad_requests(videos, encoders, tmp_path):
    with pytest.raises(ConfigError, match="6k\\+1 frames"):
        prepare([videos], tmp_path / "a", encoders=encoders, **{**SETTINGS, "frames": 8})
    with pytest.raises(ConfigError, match="does not exist"):
        prepare([tmp_path / "missing"], tmp_path / "b", encoders=encoders, **SETTINGS)
    (tmp_path / "x").mkdir()
    twin = _video(tmp_path / "x" / "wild_plain.mp4", 0.2, WILD_SIZE)
    with pytest.raises(ConfigError, match="two training videos are named wild_plain"):
        find_videos([videos, twin])


def test_encoders_from_a_weights_folder(tmp_path, encoders):
    loaded = Encoders.from_weights(write_tiny_weights(tmp_path / "weights"))
    assert loaded.text_tokens == 16 and "root" in loaded.identity
    text = "a professional male dancer dancing break"
    for ours, theirs in zip(loaded.encode_text(text), encoders.encode_text(text), strict=True):
        assert torch.equal(ours, theirs)
