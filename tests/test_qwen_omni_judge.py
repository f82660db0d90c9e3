"""The Qwen-Omni judges on tiny thinkers: the shared-prefix path equals one direct transformers call on the whole
prompt (inputs, logits, greedy answer with the repetition penalty, expected score), for both families; the CLI
fills the store and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

from mibench.errors import MediaError
from mibench.judges.qwen_omni.judge import OmniJudge
from mibench.judges.qwen_omni.media import read_media
from mibench.judges.qwen_omni.tiny import FAMILIES, tiny_processor, tiny_thinker
from mibench.media.video import write_mp4
from mibench.store import Store

QUESTION = "Rate the imaging quality 0-10 where: 0 = very noisy, 10 = crisp. Output only the number."


def clip(path: Path, *, audio: bool = True) -> Path:
    t = 40
    frames = np.zeros((t, 96, 128, 3), dtype=np.uint8)
    for i in range(t):
        frames[i, 30:66, (i * 3) % 112:(i * 3) % 112 + 16] = 255
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(2 * 16000) / 16000)).astype(np.float32)
    write_mp4(path, frames, 16, **({"audio": tone, "audio_sr": 16000} if audio else {}))
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return clip(tmp_path_factory.mktemp("omni") / "clip.mp4")


@pytest.fixture(scope="module", params=FAMILIES)
def judge(request) -> OmniJudge:
    thinker = tiny_thinker(request.param)
    thinker.generation_config.repetition_penalty = 1.3  # exercise the penalty path of generate
    return OmniJudge(thinker, tiny_processor(request.param), request.param)


def direct(judge: OmniJudge, video: Path, question: str) -> dict:
    """The official usage in one call: qwen-omni-utils' media, the whole prompt through the processor."""
    media = read_media(video)
    return judge.processor_inputs(media, judge.prompt(question))


def test_prefix_and_question_give_the_whole_prompt_logits(judge, video):
    encoded = judge.encode(video)
    suffix = judge.suffix_ids(encoded, QUESTION)
    full = direct(judge, video, QUESTION)
    assert full["input_ids"][0].tolist() == encoded.prefix_ids + suffix
    start = encoded.session.length
    assert start == len(encoded.prefix_ids)
    ours = encoded.session.feed_ids(suffix)
    with torch.no_grad():
        theirs = judge.thinker(**full, use_audio_in_video=True).logits[0, -1]
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    encoded.session.crop(start)
    assert encoded.session.length == start


def test_greedy_answer_equals_generate(judge, video):
    encoded = judge.encode(video)
    answers = judge.ask(encoded, [QUESTION, "Is the dancer on the beat?"], max_new_tokens=6)
    for question, answer in zip([QUESTION, "Is the dancer on the beat?"], answers, strict=True):
        full = direct(judge, video, question)
        out = judge.thinker.generate(**full, use_audio_in_video=True, max_new_tokens=6, do_sample=False)
        expected = judge.tokenizer.decode(out[0, full["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        assert answer.text == expected
        assert answer.expected_score is None


def test_expected_score_from_the_whole_prompt(judge, video):
    [answer] = judge.ask(judge.encode(video), [QUESTION], mode="expected", max_new_tokens=2)
    full = direct(judge, video, QUESTION)
    ids = {str(k): judge.tokenizer(str(k), add_special_tokens=False).input_ids for k in range(11)}
    assert all(len(v) == 1 for k, v in ids.items() if k != "10") and len(ids["10"]) == 2
    with torch.no_grad():
        first = torch.softmax(judge.thinker(**full, use_audio_in_video=True).logits[0, -1].double(), -1)
        longer = {k: v for k, v in full.items()}
        longer["input_ids"] = torch.cat([full["input_ids"], torch.tensor([ids["1"]])], 1)
        longer["attention_mask"] = torch.ones_like(longer["input_ids"])
        second = torch.softmax(judge.thinker(**longer, use_audio_in_video=True).logits[0, -1].double(), -1)
    mass = {k: float(first[v[0]]) for k, v in ids.items() if k not in ("1", "10")}
    mass["10"] = float(first[ids["1"][0]] * second[ids["10"][1]])
    mass["1"] = float(first[ids["1"][0]] * (1 - second[ids["10"][1]]))
    total = sum(mass.values())
    assert answer.valid_mass == pytest.approx(total, rel=1e-4)
    assert answer.expected_score == pytest.approx(sum(int(k) * p for k, p in mass.items()) / total, rel=1e-4)
    assert sum(answer.distribution.values()) == pytest.approx(1.0)


def test_jitter_and_silent_videos(judge, video, tmp_path):
    assert judge.encode(video, jitter_seed=3).frame_indices != judge.encode(video).frame_indices
    silent = clip(tmp_path / "silent.mp4", audio=False)
    with pytest.raises(MediaError, match="no audio track"):
        judge.encode(silent)
    assert judge.encode(silent, modal="video").session.length > 0


@pytest.mark.parametrize("name", ["qwen2.5-omni", "qwen3-omni"])
def test_score_fills_the_store_and_resumes(name, tmp_path, music_dir, capsys, monkeypatch):
    run_dir = str(tmp_path / "run")
    code, _, _ = run_cli(["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "paper",
                          "--music", str(music_dir), "--limit", "2", "--run-dir", run_dir], capsys, monkeypatch)
    assert code == 0
    score = ["score", "--judge", name, "--preset", "tiny", "--max-new-tokens", "2", "--mode", "expected",
             "--run-dir", run_dir, "--json"]
    code, out, _ = run_cli(score, capsys, monkeypatch)
    assert code == 0 and json.loads(out)["done"] == 2
    store = Store.open(run_dir)
    answers = [a for a in store.answers() if a["judge"] == name]
    assert len(answers) == 22 and all(0 <= a["score"] <= 10 and 0 < a["valid_mass"] <= 1 for a in answers)
    code, out, _ = run_cli(score, capsys, monkeypatch)
    assert code == 0 and json.loads(out)["done"] == 0 and json.loads(out)["skipped"] == 2
    evaluation = store.evaluations()[0]["settings"]
    assert evaluation["judge"] == name and evaluation["settings"]["family"] == name
    store.close()


def test_bench_judge_runs_both_paths_on_the_same_weights(capsys, monkeypatch):
    code, out, _ = run_cli(["bench", "judge", "--judge", "qwen3-omni", "--repeats", "1", "--max-new-tokens", "2",
                            "--json"], capsys, monkeypatch)
    result = json.loads(out)
    assert code == 0 and result["judge"] == "qwen3-omni" and result["questions"] == 11
    assert result["answers_identical"]  # the cached path answers exactly as the model card's usage
    assert result["naive_seconds_per_video"] > 0 and result["cached_seconds_per_video"] > 0
    code, _, err = run_cli(["bench", "judge", "--judge", "qwen3-omni", "--siglip", "x"], capsys, monkeypatch)
    assert code == 2 and "does not use --siglip" in err
