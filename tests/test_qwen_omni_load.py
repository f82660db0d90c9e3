"""The Qwen-Omni judges on a checkpoint folder in the released layout (tests/omni_checkpoint.py writes one from the
tiny thinker and processor): `--checkpoint DIR` loads the thinker bit for bit (talker/code2wav tensors skipped)
and the processor from preprocessor_config.json + tokenizer + chat_template.json, answers as the tiny preset
does, `mibench score` fills the store under an evaluation that names the folder, and broken or foreign folders
stop with one line and exit code 2."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from omni_checkpoint import released_tensors, shard_names, write_checkpoint

from mibench.errors import WeightsError
from mibench.judges.base import build_judge
from mibench.judges.qwen_omni.judge import OmniJudge
from mibench.judges.qwen_omni.media import read_media
from mibench.judges.qwen_omni.tiny import FAMILIES, THINKER_CLASSES, tiny_processor, tiny_thinker
from mibench.media.video import write_mp4
from mibench.store import Store

QUESTIONS = ["Rate the imaging quality 0-10 where: 0 = very noisy, 10 = crisp. Output only the number.",
             "Is the dancer on the beat?"]
OTHER = {"qwen2.5-omni": "qwen3-omni", "qwen3-omni": "qwen2.5-omni"}


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """2.5 s at 16 fps, a white bar moving over black, with a 440 Hz tone (as tests/test_qwen_omni_judge.py)."""
    frames = np.zeros((40, 96, 128, 3), dtype=np.uint8)
    for i in range(40):
        frames[i, 30:66, (i * 3) % 112:(i * 3) % 112 + 16] = 255
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(2 * 16000) / 16000)).astype(np.float32)
    path = tmp_path_factory.mktemp("omni-load") / "clip.mp4"
    write_mp4(path, frames, 16, audio=tone, audio_sr=16000)
    return path


@pytest.fixture(scope="module", params=FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def checkpoint(family, tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp(f"{family}-ckpt") / "Qwen-Omni", family)


@pytest.fixture
def loading_info(family, monkeypatch) -> list[dict]:
    """What transformers reports for each thinker loaded (missing / unexpected / mismatched keys)."""
    infos: list[dict] = []
    cls = THINKER_CLASSES[family]
    original = cls.from_pretrained

    def spy(folder, *args, output_loading_info=False, **kwargs):
        model, info = original(folder, *args, output_loading_info=True, **kwargs)
        infos.append(info)
        return (model, info) if output_loading_info else model

    monkeypatch.setattr(cls, "from_pretrained", spy)
    return infos


def test_the_folder_is_in_the_released_layout(family, checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["model_type"] == {"qwen2.5-omni": "qwen2_5_omni", "qwen3-omni": "qwen3_omni_moe"}[family]
    assert {"thinker_config", "talker_config"} <= set(config)
    assert ("token2wav_config" if family == "qwen2.5-omni" else "code2wav_config") in config
    index = json.loads((checkpoint / "model.safetensors.index.json").read_text())
    keys = set(index["weight_map"])
    assert len(shard_names(checkpoint)) == 2 and all(k.split(".")[0] in ("thinker", "talker", "token2wav", "code2wav")
                                                      for k in keys)
    assert {"thinker.model.embed_tokens.weight", "thinker.lm_head.weight", "thinker.model.norm.weight"} <= keys
    assert any(k.startswith("thinker.visual.blocks.") for k in keys)
    assert any(k.startswith("thinker.audio_tower.layers.") for k in keys)
    assert any(k.startswith("talker.") for k in keys)
    if family == "qwen3-omni":
        assert "thinker.model.layers.0.mlp.experts.3.down_proj.weight" in keys
        assert not any("gate_up_proj" in k for k in keys)
    preprocessor = json.loads((checkpoint / "preprocessor_config.json").read_text())
    assert preprocessor["image_processor_type"] == "Qwen2VLImageProcessor"
    assert preprocessor["feature_extractor_type"] == "WhisperFeatureExtractor"
    assert (checkpoint / "chat_template.json").is_file() and not (checkpoint / "chat_template.jinja").exists()


def test_full_preset_loads_the_thinker_bit_for_bit(family, checkpoint, loading_info):
    judge = build_judge(family, "full", checkpoint=checkpoint)
    thinker = judge.model.thinker
    assert loading_info == [{"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(),
                             "error_msgs": []}]
    ours, theirs = thinker.state_dict(), tiny_thinker(family).state_dict()
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        assert ours[key].dtype == value.dtype and torch.equal(ours[key], value), key
    assert judge.weights_identity()["checkpoint"]["path"] == str(checkpoint.resolve())


def test_full_preset_processor_equals_the_tiny_one(family, checkpoint, video):
    loaded = build_judge(family, "full", checkpoint=checkpoint).model
    tiny = OmniJudge(tiny_thinker(family), tiny_processor(family), family)
    assert loaded.processor.chat_template == tiny.processor.chat_template
    media = read_media(video)
    for question in QUESTIONS:
        assert loaded.prompt(question) == tiny.prompt(question)
        ours = loaded.processor_inputs(media, loaded.prompt(question))
        theirs = tiny.processor_inputs(media, tiny.prompt(question))
        assert set(ours) == set(theirs)
        for name in ("input_ids", "pixel_values_videos", "input_features"):
            assert name in ours
        for name, value in theirs.items():
            assert torch.equal(torch.as_tensor(ours[name]), torch.as_tensor(value)), name


@pytest.mark.parametrize("mode", ["greedy", "expected"])
def test_full_preset_answers_as_the_tiny_preset(family, checkpoint, video, mode):
    options = {"max_new_tokens": 6}
    loaded = build_judge(family, "full", checkpoint=checkpoint, options=options)
    tiny = build_judge(family, "tiny", options=options)
    ours = loaded.ask(loaded.encode(video), QUESTIONS, mode=mode)
    theirs = tiny.ask(tiny.encode(video), QUESTIONS, mode=mode)
    assert len(ours) == len(QUESTIONS) and ours == theirs


def test_bf16_folder_runs_in_float32_on_the_cpu(family, tmp_path):
    """The released weights are bfloat16 (config.json torch_dtype bfloat16); entry.py: "on the CPU it runs in
    float32"."""
    folder = write_checkpoint(tmp_path / "bf16", family, dtype=torch.bfloat16)
    thinker = build_judge(family, "full", checkpoint=folder).model.thinker
    assert {p.dtype for p in thinker.parameters()} == {torch.float32}
    for key, value in tiny_thinker(family).state_dict().items():
        assert torch.equal(thinker.state_dict()[key], value.to(torch.bfloat16).float()), key


def _generate(tmp_path: Path, music_dir: Path, capsys, monkeypatch) -> str:
    run_dir = str(tmp_path / "run")
    code, _, err = run_cli(["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "paper",
                            "--music", str(music_dir), "--limit", "1", "--run-dir", run_dir], capsys, monkeypatch)
    assert code == 0, err
    return run_dir


def test_score_with_the_checkpoint_fills_the_store(family, tmp_path, music_dir, capsys, monkeypatch):
    run_dir = _generate(tmp_path, music_dir, capsys, monkeypatch)
    folder = write_checkpoint(tmp_path / "Qwen-Omni", family)
    score = ["score", "--judge", family, "--checkpoint", str(folder), "--preset", "full", "--max-new-tokens", "2",
             "--run-dir", run_dir, "--json"]
    code, out, err = run_cli(score, capsys, monkeypatch)
    assert code == 0, err
    first = json.loads(out)
    assert first["done"] == 1 and first["failed"] == [] and len(first["answers"]) == 11
    store = Store.open(run_dir)
    evaluations = {e["id"]: e["settings"] for e in store.evaluations()}
    settings = evaluations[first["evaluation"]]
    assert settings["judge"] == family and settings["preset"] == "full"
    assert settings["weights"]["checkpoint"]["path"] == str(folder.resolve())
    assert "model-00001-of-00002.safetensors" in settings["weights"]["checkpoint"]["files"]
    assert len([a for a in store.answers(first["evaluation"])]) == 11
    store.close()

    code, out, _ = run_cli(score, capsys, monkeypatch)  # the same folder: resumes, nothing to do
    assert code == 0 and json.loads(out)["done"] == 0 and json.loads(out)["evaluation"] == first["evaluation"]

    write_checkpoint(folder, family, seed=1)  # other weights in the same folder: another evaluation
    code, out, err = run_cli(score, capsys, monkeypatch)
    assert code == 0, err
    second = json.loads(out)
    assert second["done"] == 1 and second["evaluation"] != first["evaluation"]
    store = Store.open(run_dir)
    assert {first["evaluation"], second["evaluation"]} <= {e["id"] for e in store.evaluations()}
    store.close()


# broken and foreign folders: one line, exit code 2, no traceback


def _no_config(folder: Path, family: str) -> None:
    (folder / "config.json").unlink()


def _truncated_shard(folder: Path, family: str) -> None:
    shard = shard_names(folder)[0]
    data = shard.read_bytes()
    shard.write_bytes(data[:len(data) // 2])


def _qwen2_config(folder: Path, family: str) -> None:
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 576}))


def _videollama2_config(folder: Path, family: str) -> None:
    from mibench.judges.videollama2.export import _OFFICIAL_FIELDS

    (folder / "config.json").write_text(json.dumps({**_OFFICIAL_FIELDS, "hidden_size": 64, "intermediate_size": 176,
                                                    "num_hidden_layers": 2, "num_attention_heads": 4,
                                                    "num_key_value_heads": 2, "vocab_size": 576,
                                                    "mm_vision_tower": "../siglip", "torch_dtype": "bfloat16"}))


def _other_family(folder: Path, family: str) -> None:
    shutil.rmtree(folder)
    write_checkpoint(folder, OTHER[family])


def _missing_tensor(folder: Path, family: str) -> None:
    shutil.rmtree(folder)
    write_checkpoint(folder, family, drop="thinker.model.norm.weight")


BROKEN = {"no-config": _no_config, "truncated-shard": _truncated_shard, "qwen2-config": _qwen2_config,
          "videollama2-config": _videollama2_config, "other-family": _other_family,
          "missing-tensor": _missing_tensor}


@pytest.fixture
def no_default_size_thinker(family, monkeypatch):
    """Tripwire. Given a config.json that is not the family's (model_type qwen2, videollama2_qwen2, the other
    family's), `Thinker.from_pretrained` builds a thinker of the config class's default size (Qwen2.5-Omni-7B's /
    Qwen3-Omni-30B's text model) before its weights fail to fit: tens of GB of RAM (a 23 GB machine is killed).
    Fail the test at once instead; entry.py should refuse such a folder before building anything."""
    cls = THINKER_CLASSES[family]
    original = cls.__init__

    @functools.wraps(original)
    def guarded(self, config, *args, **kwargs):
        if config.text_config.hidden_size > 1024:
            raise AssertionError(f"entry.py built a {family} thinker of hidden size {config.text_config.hidden_size} "
                                 f"(the config class's defaults) from a config.json that is not a {family} one, "
                                 "instead of refusing the folder")
        original(self, config, *args, **kwargs)

    monkeypatch.setattr(cls, "__init__", guarded)


@pytest.mark.parametrize("broken", list(BROKEN))
def test_broken_folder_is_one_line(family, broken, tmp_path, music_dir, capsys, monkeypatch,
                                   no_default_size_thinker):
    run_dir = _generate(tmp_path, music_dir, capsys, monkeypatch)
    folder = write_checkpoint(tmp_path / "Qwen-Omni", family)
    BROKEN[broken](folder, family)
    code, out, err = run_cli(["score", "--judge", family, "--checkpoint", str(folder), "--preset", "full",
                              "--max-new-tokens", "2", "--run-dir", run_dir], capsys, monkeypatch)
    assert code == 2, f"exit code {code}; stderr: {err[-2000:]}"
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert str(folder) in lines[0]


@pytest.mark.parametrize("broken", list(BROKEN))
def test_broken_folder_raises_weights_error(family, broken, tmp_path, no_default_size_thinker):
    folder = write_checkpoint(tmp_path / "Qwen-Omni", family)
    BROKEN[broken](folder, family)
    with pytest.raises(WeightsError) as info:
        _ = build_judge(family, "full", checkpoint=folder).model
    assert "\n" not in str(info.value)


def test_released_names_cover_every_thinker_tensor(family):
    """Every tensor of the thinker has a released name, and the MoE experts are split one per expert."""
    thinker = tiny_thinker(family)
    names = released_tensors(thinker)
    total = sum(v.numel() for v in thinker.state_dict().values())
    assert sum(v.numel() for v in names.values()) == total
    assert all(k.startswith(("thinker.model.", "thinker.visual.", "thinker.audio_tower.", "thinker.lm_head."))
               for k in names)
