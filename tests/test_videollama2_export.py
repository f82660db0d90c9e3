"""`save_official` round trips (tiny preset and golden fixture -> official layout -> from_pretrained)
and `bench_judge` on a small checkpoint. Timings are not asserted (see DESIGN: benchmarks measure).

The one tensor that does not survive bit for bit is BEATs' pos_conv weight: the official layout stores
it as a weight-norm pair (g, v) that the loader folds back, which is exact only to float32 rounding.
Run: pytest tests/test_videollama2_export.py
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import fixture_set
from safetensors import safe_open

from mibench.errors import ConfigError
from mibench.judges.videollama2 import EncodedVideo, VideoLLaMA2Judge
from mibench.judges.videollama2.export import save_official
from mibench.judges.videollama2.model import VideoLLaMA2AV
from mibench.speed import judge as bench
from mibench.speed.judge import bench_config, bench_judge, paper_questions, synthetic_clip

POS_CONV = "audio_tower.encoder.pos_conv.weight"
QUESTIONS = ["Rate the imaging quality 0-10. Output only the number.",
             "Rate the beat alignment of the dance to music 0-10. Output only the number."]


def assert_same_weights(a: VideoLLaMA2Judge, b: VideoLLaMA2Judge) -> None:
    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert wa.keys() == wb.keys()
    assert [k for k in wa if k != POS_CONV and not torch.equal(wa[k], wb[k])] == []
    torch.testing.assert_close(wa[POS_CONV], wb[POS_CONV], rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def tiny():
    return VideoLLaMA2Judge.tiny(seed=0)


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    return save_official(tiny.model, tiny.tokenizer, tiny.settings, tmp_path_factory.mktemp("vl2") / "tiny")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return synthetic_clip(tmp_path_factory.mktemp("clip") / "dance.mp4")


def test_tiny_round_trip(tiny, exported, clip):
    loaded = VideoLLaMA2Judge.from_pretrained(exported)
    assert_same_weights(tiny, loaded)
    assert loaded.settings == tiny.settings
    a, b = tiny.encode(clip), loaded.encode(clip)
    n = a.num_video_tokens
    assert torch.equal(a.tokens[:n], b.tokens[:n])
    torch.testing.assert_close(a.tokens[n:], b.tokens[n:], rtol=1e-5, atol=1e-5)
    # same tokens in -> bit-identical answers and logits
    b.tokens = a.tokens
    assert [x.token_ids for x in tiny.ask(a, QUESTIONS)] == [x.token_ids for x in loaded.ask(b, QUESTIONS)]
    assert torch.equal(tiny.prefill(a, QUESTIONS[0]).logits, loaded.prefill(b, QUESTIONS[0]).logits)


def test_official_layout(tiny, exported):
    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == "videollama2_qwen2" and config["mm_projector_type"] == "stc_connector_v35"
    assert config["num_frames"] == tiny.settings.num_frames and config["mm_vision_tower"] == "../siglip"
    assert config["mm_audio_tower_cfg"]["encoder_layers"] == tiny.model.cfg.beats.encoder_layers
    with safe_open(str(exported / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    beats = "model.audio_tower.encoder."
    assert {f"{beats}pos_conv.0.weight_g", f"{beats}pos_conv.0.weight_v", "model.audio_tower.predictor.weight"} <= keys
    layers = tiny.model.cfg.beats.encoder_layers
    assert {f"{beats}layers.{i}.self_attn.relative_attention_bias.weight" for i in range(layers)} <= keys
    assert "model.vision_tower.vision_tower.vision_model.head.probe" in keys
    assert not any(k.startswith(("llm.", "model.llm.", "audio_tower.")) for k in keys)
    siglip = exported.parent / "siglip"
    vision = json.loads((siglip / "config.json").read_text())["vision_config"]
    assert vision["num_hidden_layers"] == tiny.model.cfg.vision.num_hidden_layers + 1
    with safe_open(str(siglip / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert {"logit_scale", "logit_bias", "vision_model.head.probe"} <= keys
    assert any(k.startswith("text_model.") for k in keys)
    assert f"vision_model.encoder.layers.{vision['num_hidden_layers'] - 1}.mlp.fc1.weight" in keys
    for name in ("generation_config.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        assert (exported / name).is_file()
    assert (siglip / "preprocessor_config.json").is_file()


def test_bfloat16_export(tiny, tmp_path):
    checkpoint = save_official(tiny.model, tiny.tokenizer, tiny.settings, tmp_path / "bf16", dtype=torch.bfloat16)
    loaded = VideoLLaMA2Judge.from_pretrained(checkpoint)
    assert json.loads((checkpoint / "config.json").read_text())["torch_dtype"] == "bfloat16"
    head = tiny.model.llm.lm_head.weight
    assert torch.equal(loaded.model.llm.lm_head.weight, head.to(torch.bfloat16).float())


def test_refuses_a_non_empty_folder(tiny, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        save_official(tiny.model, tiny.tokenizer, tiny.settings, tmp_path / "taken")


def test_fixture_round_trip(tmp_path):
    root = fixture_set("videollama2")
    meta = json.loads((root / "expected.json").read_text())
    original = VideoLLaMA2Judge.from_pretrained(root / "checkpoint")
    reloaded = VideoLLaMA2Judge.from_pretrained(
        save_official(original.model, original.tokenizer, original.settings, tmp_path / "fixture"))
    assert_same_weights(original, reloaded)
    assert reloaded.settings == original.settings
    with safe_open(str(root / "expected.safetensors"), "pt") as f:
        tokens = torch.cat([f.get_tensor("vision_features")[0], f.get_tensor("audio_features")[0]])
    for q in meta["questions"]:
        logits = [judge.prefill(EncodedVideo(root / "sample.mp4", "av", None, [], None, tokens, 0), q["question"],
                                cached=False).logits for judge in (original, reloaded)]
        assert torch.equal(*logits)
        encoded = EncodedVideo(root / "sample.mp4", "av", None, [], None, tokens, 0)
        [answer] = reloaded.ask(encoded, [q["question"]], max_new_tokens=q["generate_kwargs"]["max_new_tokens"])
        assert answer.token_ids == q["output_ids"]


def test_packed_answers_match_the_reference():
    """The cached greedy path decodes all questions of one call together; on the fixture's reference
    tokens it must still give the official ids of every question, in any order and with repeats."""
    root = fixture_set("videollama2")
    meta = json.loads((root / "expected.json").read_text())
    judge = VideoLLaMA2Judge.from_pretrained(root / "checkpoint")
    with safe_open(str(root / "expected.safetensors"), "pt") as f:
        tokens = torch.cat([f.get_tensor("vision_features")[0], f.get_tensor("audio_features")[0]])
    encoded = EncodedVideo(root / "sample.mp4", "av", None, [], None, tokens, 0)
    steps = max(q["generate_kwargs"]["max_new_tokens"] for q in meta["questions"])
    order = [*meta["questions"], *reversed(meta["questions"]), meta["questions"][0]]
    answers = judge.ask(encoded, [q["question"] for q in order], max_new_tokens=steps)
    assert [a.token_ids for a in answers] == [q["output_ids"] for q in order]
    assert [a.text for a in answers] == [q["answer"] for q in order]
    assert encoded.prefix.length == len(tokens) + order[0]["multimodal_placeholder_position"]  # cropped back


def test_bench_sequence_is_real_length():
    """16 frames of 384 px -> 1352 STC tokens, + 1496 BEATs tokens (shapes only, on the meta device)."""
    with torch.device("meta"):
        model = VideoLLaMA2AV(bench_config())
        video = model.encode_video(torch.empty(16, 3, 384, 384))
        audio = model.encode_audio(torch.empty(1, 2998, 128))
    assert video.shape == (1352, 384) and audio.shape == (1496, 384)
    assert len(paper_questions()) == 11


def test_bench_judge_small(exported, monkeypatch):
    """The tiny checkpoint, the synthetic clip and 2 of the 11 questions (the naive path is slow by design)."""
    questions = paper_questions()[:2]
    monkeypatch.setattr(bench, "paper_questions", lambda: questions)
    result = bench_judge(checkpoint=exported, video=None, max_new_tokens=2, repeats=1)
    assert result["answers_identical"] is True
    assert [a["question_id"] for a in result["answers"]] == [qid for qid, _ in questions]
    assert all(a["naive"] == a["cached"] for a in result["answers"])
    for key in ("naive_seconds_per_video", "cached_seconds_per_video", "speedup", "peak_memory_mib"):
        assert result[key] > 0
    assert result["llm_input_positions_min"] > result["shared_prefix_positions"] > result["multimodal_tokens"]
    assert len(result["naive_seconds_runs"]) == len(result["cached_seconds_runs"]) == 1


def test_bench_judge_needs_checkpoint_for_siglip(tmp_path):
    with pytest.raises(ConfigError, match="--siglip needs --checkpoint"):
        bench_judge(siglip=tmp_path, max_new_tokens=1, repeats=1)
