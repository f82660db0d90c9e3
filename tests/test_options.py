"""Every option is applied or refused, --json prints every number stored, and exit codes are 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from mibench.generators.base import build_generator
from mibench.store import Store


def _one_line_refusal(code: int, err: str, needle: str) -> None:
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.parametrize(
    ("model", "extra", "needle"),
    [
        ("synthetic-onbeat", ["--steps", "4"], "synthetic-onbeat does not use --steps"),
        ("synthetic-onbeat", ["--device", "cpu"], "synthetic-onbeat does not use --device"),
        ("synthetic-offbeat", ["--weights", "."], "synthetic-offbeat does not use --weights"),
        ("mmdiffusion", ["--dtype", "bf16"], "mmdiffusion does not use --dtype"),
        ("mmdiffusion", ["--vae-tiling"], "mmdiffusion does not use --vae-tiling"),
        ("mmdiffusion", ["--fuse-lora", "--offload", "model"], "mmdiffusion does not use --fuse-lora, --offload"),
    ],
)
def test_options_a_generator_does_not_use_are_refused_before_any_work(model, extra, needle, tmp_path, music_dir,
                                                                       capsys, monkeypatch):
    run_dir = tmp_path / "run"
    code, out, err = run_cli(["generate", "--model", model, "--preset", "tiny", "--suite", "aist", "--music",
                              str(music_dir), "--run-dir", str(run_dir), *extra], capsys, monkeypatch)
    _one_line_refusal(code, err, needle)
    assert out == "" and not run_dir.exists()


def test_device_and_speed_options_apply_to_the_tiny_presets():
    fast = build_generator("musicinfuser", "tiny", device="cpu",
                           options={"dtype": "bf16", "vae_tiling": True, "fuse_lora": True})
    pipe = fast.pipeline
    assert pipe.mochi.transformer.dtype == torch.bfloat16 and pipe.mochi.vae.use_tiling
    assert not any("lora" in name for name, _ in pipe.mochi.transformer.named_parameters())  # merged
    plain = build_generator("musicinfuser", "tiny").pipeline
    assert plain.mochi.transformer.dtype == torch.float32 and not plain.mochi.vae.use_tiling
    assert any("lora" in name for name, _ in plain.mochi.transformer.named_parameters())
    with pytest.raises(Exception, match="CPU offload needs a GPU device"):
        _ = build_generator("musicinfuser", "tiny", options={"offload": "model"}).pipeline
    mmd = build_generator("mmdiffusion", "tiny", device="meta")
    assert next(mmd.pipeline.mmd.parameters()).device.type == "meta"


def test_score_and_metrics_json_hold_every_stored_number(tmp_path, music_dir, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    run_cli(["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "aist", "--music",
             str(music_dir), "--run-dir", str(run_dir)], capsys, monkeypatch)
    code, out, _ = run_cli(["score", "--preset", "tiny", "--max-new-tokens", "2", "--mode", "expected", "--run-dir",
                            str(run_dir), "--json"], capsys, monkeypatch)
    scored = json.loads(out)
    store = Store.open(run_dir)
    stored = {(a["job_id"], a["question_id"], a["run_index"]): a["score"] for a in store.answers()}
    assert code == 0 and len(stored) == 22
    assert {(a["job_id"], a["question_id"], a["run_index"]): a["score"] for a in scored["answers"]} == stored
    summary = scored["models"]["synthetic-onbeat"]
    assert summary["videos"] == 2 and summary["answers"] == 22 and summary["missing"] == 0
    assert summary["mean_score"] == pytest.approx(sum(stored.values()) / 22)

    code, out, _ = run_cli(["metrics", "--run-dir", str(run_dir), "--json"], capsys, monkeypatch)
    measured = json.loads(out)
    assert code == 0 and len(measured["videos"]) == 2
    from_json = {(v["job_id"], name): (m["value"], m["params"]) for v in measured["videos"]
                 for name, m in v["metrics"].items()}
    from_store = {(m["job_id"], m["name"]): (m["value"], json.loads(m["params"])) for m in store.metrics()}
    assert from_json == from_store and len(from_store) >= 2 * 6
    assert all(v["metrics"]["bas_fact"]["params"]["sigma_s"] > 0 for v in measured["videos"])


def test_exit_code_1_when_every_video_fails(tmp_path, music_dir, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    run_cli(["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "aist", "--music",
             str(music_dir), "--run-dir", str(run_dir)], capsys, monkeypatch)
    for video in Store.open(run_dir).videos():
        Path(video["path"]).write_bytes(b"\0" * 1000)
    for command in (["score", "--preset", "tiny", "--max-new-tokens", "2"], ["metrics"]):
        code, out, err = run_cli([*command, "--run-dir", str(run_dir), "--json"], capsys, monkeypatch)
        result = json.loads(out)
        assert code == 1 and result["done"] == 0 and len(result["failed"]) == 2, command
        assert all(f"failed {f['job_id']}" in err for f in result["failed"])


def test_report_markdown_honours_every_flag(tmp_path, music_dir, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    for model in ("synthetic-onbeat", "synthetic-offbeat"):
        run_cli(["generate", "--model", model, "--preset", "tiny", "--suite", "aist", "--music", str(music_dir),
                 "--run-dir", str(run_dir)], capsys, monkeypatch)
    run_cli(["score", "--preset", "tiny", "--max-new-tokens", "2", "--mode", "expected", "--run-dir",
             str(run_dir)], capsys, monkeypatch)
    run_cli(["metrics", "--run-dir", str(run_dir)], capsys, monkeypatch)
    md = ["report", "--format", "md", "--run-dir", str(run_dir)]
    code, with_reference, _ = run_cli(md, capsys, monkeypatch)
    assert code == 0 and "## Reported by papers, not measured" in with_reference
    assert "## Objective metrics" in with_reference and "Valid mass: median" in with_reference
    code, without, _ = run_cli(md + ["--no-reference"], capsys, monkeypatch)
    assert code == 0 and "not measured" not in without
    code, strict, _ = run_cli(md + ["--min-valid-mass", "1.0"], capsys, monkeypatch)
    assert code == 0 and "(excluded, counted as missing)" in strict and "(flagged)" in with_reference
    code, other_seed, _ = run_cli(md + ["--seed", "7"], capsys, monkeypatch)
    assert code == 0 and "seed 7" in other_seed and "seed 0" in with_reference
    code, plain, _ = run_cli(md + ["--seed", "7", "--no-reference"], capsys, monkeypatch)
    code, out, _ = run_cli(md + ["--json", "--seed", "7", "--no-reference"], capsys, monkeypatch)
    document = json.loads(out)
    assert code == 0 and document["markdown"] == plain
    assert document["seed"] == 7 and document["references"] == [] and document["leaderboard"]
    code, _, err = run_cli(md + ["--dist-reference", "ghost"], capsys, monkeypatch)
    _one_line_refusal(code, err, "--dist-reference 'ghost' is not a model of this run")
    code, out, _ = run_cli(["report", "--run-dir", str(run_dir), "--json", "--no-reference"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["references"] == [] and json.loads(out)["leaderboard"]


def test_one_denoising_step_is_refused_before_any_work(tmp_path, music_dir, capsys, monkeypatch):
    """diffusers' linear-quadratic schedule divides by its linear half, which 1 step does not have."""
    code, _, err = run_cli(["generate", "--model", "musicinfuser", "--preset", "tiny", "--steps", "1", "--suite",
                            "aist", "--music", str(music_dir), "--run-dir", str(tmp_path / "run")], capsys, monkeypatch)
    _one_line_refusal(code, err, "the sampler needs at least 2 steps, got 1")
    assert not (tmp_path / "run").exists()
