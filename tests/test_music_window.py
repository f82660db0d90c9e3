"""One music window per item: every generator of an item hears the same track from the same instant,
whatever its window length; the window is recorded; a short track is padded only with a warning."""

from __future__ import annotations

import numpy as np
import pytest

from mibench.cards import cards
from mibench.generators.base import ITEM_WINDOW_S, build_generator, job_music, window_start
from mibench.media.audio import write_wav
from mibench.media.synth import drum_track
from mibench.stages.generate import generate_jobs
from mibench.store import Store
from mibench.suite.jobs import expand, music_from_folder


@pytest.fixture
def long_track(tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    wave = drum_track(120, 30.0, sr=16000) + 0.05 * np.sin(np.arange(30 * 16000) / 16000 * 2 * np.pi * 3.3)
    write_wav(folder / "long-120bpm.wav", wave.astype(np.float32), 16000)
    return music_from_folder(folder)


def test_every_generator_of_an_item_hears_the_same_window(tmp_path, long_track):
    store = Store.open(tmp_path / "run")
    names = [c.name for c in cards("generator")]
    assert {"musicinfuser", "mochi", "mmdiffusion", "synthetic-onbeat"} <= set(names)
    waves, items = {}, set()
    for name in names:
        generator = build_generator(name, "tiny")
        jobs = expand("aist", name, long_track, seeds=[3], num_frames=generator.num_frames)
        summary = generate_jobs(tmp_path / "run", store, generator, jobs)
        assert summary.done == 1 and not summary.failed, name
        items.add(jobs[0].item_id)
        video = store.videos(name)[0]
        info = video["info"]
        rate = int(generator.settings.get("audio_rate", 16000))
        window = job_music(jobs[0], rate, info["music_seconds"])
        assert info["music_offset_s"] == window.start_s and info["music_padded_s"] == 0 and "warnings" not in info
        waves[name] = (window.start_s, window.wave)
    starts = {start for start, _ in waves.values()}
    assert len(starts) == 1 and 0 < starts.pop() <= 30.0 - ITEM_WINDOW_S
    assert len(items) == 1  # the jobs of every generator are one item, so comparisons pair them
    shortest = min(len(w) for _, w in waves.values())
    reference = next(iter(waves.values()))[1][:shortest]
    for name, (_, wave) in waves.items():
        np.testing.assert_array_equal(wave[:shortest], reference, err_msg=name)


def test_the_window_start_depends_on_the_item_and_seed_only(long_track):
    job = expand("aist", "a", long_track, seeds=[0], num_frames=145)[0]
    same_item = expand("aist", "b", long_track, seeds=[0], num_frames=16)[0]
    other_seed = expand("aist", "a", long_track, seeds=[1], num_frames=145)[0]
    assert window_start(job, 30.0) == window_start(same_item, 30.0)
    assert window_start(job, 30.0) != window_start(other_seed, 30.0)
    assert window_start(job, 5.0) == 0.0  # a track shorter than the item window starts at 0


def test_a_short_track_is_padded_with_a_recorded_warning(tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    write_wav(folder / "short-120bpm.wav", drum_track(120, 2.0, sr=16000), 16000)
    generator = build_generator("synthetic-onbeat", "tiny")  # a 6 s window
    jobs = expand("aist", "synthetic-onbeat", music_from_folder(folder), seeds=[0], num_frames=generator.num_frames)
    store = Store.open(tmp_path / "run")
    logged = []
    generate_jobs(tmp_path / "run", store, generator, jobs, log=logged.append)
    info = store.videos()[0]["info"]
    assert info["music_offset_s"] == 0.0 and info["music_padded_s"] == pytest.approx(4.0)
    assert "padded with silence" in info["warnings"][0] and any("padded with silence" in line for line in logged)
