"""Failures a user can cause or meet end in one line (cause and fix) with exit code 2, never a traceback,
and nothing already written is lost: full disk, read-only run folder, out of memory, missing, empty,
truncated or foreign weights of every model, an interrupted download."""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

import av
import pytest
import torch
from conftest import fixture_set, run_cli

from mibench.generators.musicinfuser.tiny import write_tiny_weights
from mibench.store import Store


def _one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


def _generate(run_dir: Path, music_dir: Path, capsys, monkeypatch, *extra: str) -> tuple[int, str, str]:
    return run_cli(["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "aist", "--music",
                    str(music_dir), "--run-dir", str(run_dir), *extra], capsys, monkeypatch)


def _store_is_intact(run_dir: Path, videos: int) -> None:
    store = Store.open(run_dir)
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    done = store.videos()
    assert len(done) == videos and all(Path(v["path"]).is_file() for v in done)
    leftovers = [p for p in (run_dir / "videos").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.parametrize(
    ("target", "error", "needles"),
    [
        ("mibench.stages.generate.write_sidecar",
         OSError(errno.ENOSPC, "No space left on device", "x.json"), ("No space left on device", "free disk space")),
        ("mibench.store.Store.record_video", sqlite3.OperationalError("database or disk is full"),
         ("results store cannot be written: database or disk is full", "free disk space")),
        ("mibench.generators.synthetic.write_mp4", av.error.OSError(errno.ENOSPC, "No space left on device", "x.mp4"),
         ("cannot write: x.mp4 (No space left on device)", "free disk space")),
        ("os.replace", PermissionError(errno.EACCES, "Permission denied", "videos/x.mp4"),
         ("Permission denied", "make the run folder writable")),
        ("mibench.store.Store.add_jobs", sqlite3.OperationalError("attempt to write a readonly database"),
         ("readonly database", "make the run folder writable")),
        ("mibench.generators.synthetic.dancer_video", torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"),
         ("out of memory: CUDA out of memory", "--offload model")),
    ],
)
def test_environment_failures_mid_generate(target, error, needles, tmp_path, music_dir, capsys, monkeypatch):
    """One video is made, then the second meets the failure: one line, exit 2, the first is kept."""
    run_dir = tmp_path / "run"
    code, _, _ = _generate(run_dir, music_dir, capsys, monkeypatch, "--limit", "1")
    assert code == 0

    def fail(*args, **kwargs):
        raise error

    with monkeypatch.context() as patched:
        if ".Store." in target:
            patched.setattr(Store, target.rpartition(".")[2], fail)
        else:
            patched.setattr(target, fail)
        code, _, err = _generate(run_dir, music_dir, capsys, monkeypatch)
    _one_line(code, err, *needles, "finished work is kept")
    _store_is_intact(run_dir, 1)


# -- weights ------------------------------------------------------------------------------------------
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("weights") / "musicinfuser")


def _foreign_transformer(folder: Path) -> None:
    """A transformer of another size than its weights (3 layers in the config, 2 in the file)."""
    config = folder / "transformer" / "config.json"
    config.write_text(config.read_text().replace('"num_layers": 2', '"num_layers": 3'))


def _variant(tmp_path: Path, source: Path, change) -> Path:
    target = tmp_path / "variant"
    shutil.copytree(source, target)
    change(target)
    return target


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda tmp, w: tmp / "nowhere", ("--weights folder", "nowhere does not exist")),
        (lambda tmp, w: _variant(tmp, w, lambda d: [shutil.rmtree(p) if p.is_dir() else p.unlink()
                                                    for p in d.iterdir()]),
         ("holds none of musicinfuser.safetensors, transformer/", "(it holds: nothing)")),
        (lambda tmp, w: _variant(tmp, w, lambda d: (d / "musicinfuser.safetensors").unlink()),
         ("has no musicinfuser.safetensors", "susunghong/MusicInfuser")),
        (lambda tmp, w: _variant(tmp, w, lambda d: _truncate(d / "musicinfuser.safetensors")),
         ("musicinfuser.safetensors is not a readable safetensors file", "download it again")),
        (lambda tmp, w: _variant(tmp, w, lambda d: _truncate(d / "transformer" /
                                                             "diffusion_pytorch_model.safetensors")),
         ("cannot load the Mochi transformer from", "variant/transformer")),
        (lambda tmp, w: _variant(tmp, w, _foreign_transformer), ("Mochi transformer", "variant/transformer")),
        (lambda tmp, w: _variant(tmp, w, lambda d: (d / "config.json").write_text(
            '{"audio": {"audio_cross_attn_layers": [0]}}')),
         ("has 2 audio cross-attention blocks but 1 audio layers",)),
    ],
)
def test_musicinfuser_weights_errors_name_what_was_given(make, needles, tmp_path, music_dir, tiny_weights, capsys,
                                                         monkeypatch):
    weights = make(tmp_path, tiny_weights)
    code, _, err = run_cli(["generate", "--model", "musicinfuser", "--preset", "tiny", "--suite", "aist", "--music",
                            str(music_dir), "--weights", str(weights), "--run-dir", str(tmp_path / "run")],
                           capsys, monkeypatch)
    _one_line(code, err, *needles)
    assert "newly initialized" not in err
    store = Store.open(tmp_path / "run")
    assert store.videos() == [] and store.model_settings("musicinfuser") is None  # a failed load binds nothing


def _mmd_folder(tmp: Path, change=None) -> Path:
    folder = tmp / "mmd"
    folder.mkdir()
    shutil.copy(fixture_set("mmdiffusion") / "mmd.safetensors", folder / "AIST++.safetensors")
    shutil.copy(fixture_set("mmdiffusion") / "sr.safetensors", folder / "AIST++_SR.safetensors")
    if change:
        change(folder)
    return folder


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda tmp: tmp / "nowhere", ("--weights folder", "nowhere does not exist")),
        (lambda tmp: _mmd_folder(tmp, lambda d: [p.unlink() for p in d.iterdir()]),
         ("no AIST++.pt or .safetensors in", "(it holds: nothing)")),
        (lambda tmp: _mmd_folder(tmp, lambda d: _truncate(d / "AIST++.safetensors")), ("AIST++.safetensors",)),
        (lambda tmp: _mmd_folder(tmp), ("does not match MultimodalUNet",)),  # tiny fixture weights, AIST++ config
    ],
)
def test_mmdiffusion_weights_errors_name_what_was_given(make, needles, tmp_path, music_dir, capsys, monkeypatch):
    code, _, err = run_cli(["generate", "--model", "mmdiffusion", "--preset", "tiny", "--suite", "aist", "--music",
                            str(music_dir), "--weights", str(make(tmp_path)), "--run-dir", str(tmp_path / "run")],
                           capsys, monkeypatch)
    _one_line(code, err, *needles)


def _judge_folder(tmp: Path, change=None) -> Path:
    root = tmp / "judge"
    shutil.copytree(fixture_set("videollama2") / "checkpoint", root / "checkpoint")
    shutil.copytree(fixture_set("videollama2") / "siglip", root / "siglip")
    if change:
        change(root)
    return root / "checkpoint"


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda tmp, w: tmp / "nowhere", ("judge checkpoint folder", "nowhere does not exist")),
        (lambda tmp, w: (tmp / "empty").mkdir() or tmp / "empty", ("empty/config.json is missing",)),
        (lambda tmp, w: _judge_folder(tmp, lambda r: _truncate(r / "checkpoint" / "model.safetensors")),
         ("checkpoint/model.safetensors is not a readable safetensors file", "download it again")),
        (lambda tmp, w: _judge_folder(tmp, lambda r: _truncate(r / "siglip" / "model.safetensors")),
         ("siglip/model.safetensors is not a readable safetensors file",)),
        (lambda tmp, w: _judge_folder(tmp, lambda r: shutil.rmtree(r / "siglip")),
         ("names its vision tower '../siglip'", "judge/siglip does not exist")),
        (lambda tmp, w: w, ("is not a VideoLLaMA 2 config", "musicinfuser.safetensors")),
    ],
)
def test_judge_checkpoint_errors_name_what_was_given(make, needles, tmp_path, music_dir, tiny_weights, capsys,
                                                     monkeypatch):
    run_dir = tmp_path / "run"
    _generate(run_dir, music_dir, capsys, monkeypatch, "--limit", "1")
    code, _, err = run_cli(["score", "--checkpoint", str(make(tmp_path, tiny_weights)), "--max-new-tokens", "2",
                            "--run-dir", str(run_dir)], capsys, monkeypatch)
    _one_line(code, err, *needles)
    assert Store.open(run_dir).answers() == []


def test_an_interrupted_download_in_the_hub_cache(tmp_path, music_dir, tiny_weights, capsys, monkeypatch):
    """The adapter in the Hugging Face cache was cut short: the error names the cached file."""
    snapshot = tmp_path / "hub" / "models--susunghong--MusicInfuser" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    shutil.copy(tiny_weights / "musicinfuser.safetensors", snapshot / "musicinfuser.safetensors")
    _truncate(snapshot / "musicinfuser.safetensors")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    weights = _variant(tmp_path, tiny_weights, lambda d: (d / "musicinfuser.safetensors").unlink())
    code, _, err = run_cli(["generate", "--model", "musicinfuser", "--preset", "tiny", "--suite", "aist", "--music",
                            str(music_dir), "--weights", str(weights), "--run-dir", str(tmp_path / "run")],
                           capsys, monkeypatch)
    _one_line(code, err, "0123abcd/musicinfuser.safetensors is not a readable safetensors file", "download it again")
