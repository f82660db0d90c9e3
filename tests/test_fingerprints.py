"""Settings fingerprints: a model name stands for one set of generator settings, judge evaluations with
other settings (another device type or weight dtype too) score again beside the old answers, a hub id's
revision is known before its weights are downloaded, and the report names the settings behind each table."""

from __future__ import annotations

import json

import yaml
from conftest import run_cli

from mibench.fingerprint import HUB_TIMEOUT_S, digest, weights_identity
from mibench.generators.base import build_generator
from mibench.resources import data_dir
from mibench.store import Store


def _generate(run_dir, music_dir, capsys, monkeypatch, *extra: str) -> tuple[int, dict | None, str]:
    code, out, err = run_cli(["generate", "--preset", "tiny", "--suite", "aist", "--music", str(music_dir),
                              "--limit", "1", "--run-dir", str(run_dir), "--json", *extra], capsys, monkeypatch)
    return code, json.loads(out) if out.strip() else None, err


def test_changed_generator_settings_refuse_or_go_to_a_new_name(tmp_path, music_dir, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    code, first, _ = _generate(run_dir, music_dir, capsys, monkeypatch, "--model", "musicinfuser")
    assert code == 0 and first["done"] == 1
    code, again, _ = _generate(run_dir, music_dir, capsys, monkeypatch, "--model", "musicinfuser")
    assert code == 0 and again["skipped"] == 1 and again["fingerprint"] == first["fingerprint"]

    code, out, err = _generate(run_dir, music_dir, capsys, monkeypatch, "--model", "musicinfuser", "--steps", "2")
    assert code == 2 and out is None and len(err.strip().splitlines()) == 1
    assert "already has model 'musicinfuser' made with other settings" in err and "settings.steps: 4 -> 2" in err
    assert "--as NAME" in err
    store = Store.open(run_dir)
    assert len(store.videos()) == 1 and store.model_settings("musicinfuser")["settings"]["settings"]["steps"] == 4

    code, variant, _ = _generate(run_dir, music_dir, capsys, monkeypatch, "--model", "musicinfuser", "--steps", "2",
                                 "--as", "musicinfuser-2steps")
    assert code == 0 and variant["done"] == 1 and variant["model"] == "musicinfuser-2steps"
    assert variant["fingerprint"] != first["fingerprint"]
    assert store.models() == ["musicinfuser", "musicinfuser-2steps"]
    assert store.model_settings("musicinfuser-2steps")["generator"] == "musicinfuser"
    assert variant["videos"][0]["item_id"] == first["videos"][0]["item_id"]  # the variant pairs with the base
    sidecar = json.loads((run_dir / "videos" / "musicinfuser-2steps").glob("*.json").__next__().read_text())
    assert sidecar["fingerprint"] == variant["fingerprint"] and sidecar["settings"]["steps"] == 2

    code, _, _ = run_cli(["report", "--run-dir", str(run_dir)], capsys, monkeypatch)
    page = (run_dir / "report" / "index.html").read_text()
    assert code == 0 and "steps=2" in page and "steps=4" in page


def test_fingerprints_cover_settings_and_weights_but_not_memory_placement(tmp_path):
    base = build_generator("musicinfuser", "tiny")
    assert base.fingerprint == build_generator("musicinfuser", "tiny").fingerprint
    for options in ({"steps": 2}, {"dtype": "bf16"}, {"vae_tiling": True}, {"fuse_lora": True}, {"num_frames": 7}):
        assert build_generator("musicinfuser", "tiny", options=options).fingerprint != base.fingerprint, options
    assert build_generator("mochi", "tiny").fingerprint != base.fingerprint
    assert "offload" in base.no_effect
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "config.json").write_text('{"audio": {"audio_cross_attn_layers": [0, 1]}}')
    (folder / "big.safetensors").write_bytes(b"\0" * (2 << 20))
    (folder / "transformer").mkdir()
    (folder / "transformer" / "config.json").write_text("{}")
    first = weights_identity(folder)
    assert first["path"] == str(folder.resolve())
    assert set(first["files"]) == {"config.json", "big.safetensors", "transformer/config.json"}
    assert first["files"]["big.safetensors"].startswith("bytes=2097152;")
    (folder / "config.json").write_text('{"audio": {"audio_cross_attn_layers": [0]}}')
    assert digest(weights_identity(folder)) != digest(first)
    with_weights = build_generator("musicinfuser", "tiny", weights=folder)
    assert with_weights.identity["weights"]["root"]["files"]["config.json"] == weights_identity(folder)["files"][
        "config.json"]
    assert weights_identity("some-org/some-model") == {"hub": "some-org/some-model", "revision": None}


def _edited_questions(tmp_path):
    data = yaml.safe_load((data_dir("prompts") / "questions" / "paper.yaml").read_text())
    data["questions"][0]["text"] = data["questions"][0]["text"].replace("Output only the number.",
                                                                        "Answer with one number.")
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_changed_judge_settings_score_again_and_keep_the_old_answers(tmp_path, music_dir, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    code, _, _ = _generate(run_dir, music_dir, capsys, monkeypatch, "--model", "synthetic-onbeat")
    assert code == 0
    score = ["score", "--preset", "tiny", "--run-dir", str(run_dir), "--json"]
    code, out, _ = run_cli(score + ["--max-new-tokens", "2"], capsys, monkeypatch)
    first = json.loads(out)
    assert code == 0 and first["done"] == 1 and len(first["answers"]) == 11
    code, out, _ = run_cli(score + ["--max-new-tokens", "2"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["skipped"] == 1 and json.loads(out)["evaluation"] == first["evaluation"]

    seen = {first["evaluation"]}
    for extra in (["--max-new-tokens", "3"], ["--max-new-tokens", "2", "--modal", "video"],
                  ["--max-new-tokens", "2", "--seed", "5"],
                  ["--max-new-tokens", "2", "--questions", str(_edited_questions(tmp_path))]):
        code, out, _ = run_cli(score + extra, capsys, monkeypatch)
        result = json.loads(out)
        assert code == 0 and result["done"] == 1 and result["evaluation"] not in seen, extra
        seen.add(result["evaluation"])
    store = Store.open(run_dir)
    assert len(store.evaluations()) == 5 and len(store.answers()) == 5 * 11
    assert len(store.answers(first["evaluation"])) == 11  # the first evaluation's answers stay
    settings = {e["id"]: e["settings"] for e in store.evaluations()}
    assert settings[first["evaluation"]]["settings"] == {"max_new_tokens": 2, "modal": "av"}

    code, out, _ = run_cli(["report", "--format", "md", "--run-dir", str(run_dir)], capsys, monkeypatch)
    assert code == 0 and out.count("## videollama2 @") == 5
    assert f"## videollama2 @{first['evaluation'][:8]} · greedy" in out
    assert "settings.max_new_tokens=3" in out and "settings.modal=video" in out


def test_the_judge_card_gives_the_defaults():
    from mibench.judges.base import build_judge

    full = build_judge("videollama2", "full")
    assert (full.max_new_tokens, full.modal) == (2048, "av")
    tiny = build_judge("videollama2", "tiny", options={"modal": "video"})
    assert (tiny.max_new_tokens, tiny.modal) == (16, "video")


def _evaluation(judge) -> str:
    from mibench.stages.score import evaluation_settings
    from mibench.suite.prompts import load_question_set

    return digest(evaluation_settings(judge, load_question_set("paper"), mode="greedy", seed=0))


def test_a_judge_on_cuda_is_another_evaluation_than_on_the_cpu():
    from mibench.judges.base import build_judge
    from mibench.stages.score import judge_fingerprint

    for name, gpu_dtype in (("videollama2", "float16"), ("qwen2.5-omni", "bfloat16"), ("qwen3-omni", "bfloat16")):
        cpu, cuda = build_judge(name, "full", device="cpu"), build_judge(name, "full", device="cuda")  # nothing loads
        assert (cpu.identity()["device"], cpu.identity()["dtype"]) == ("cpu", "float32"), name
        assert (cuda.identity()["device"], cuda.identity()["dtype"]) == ("cuda", gpu_dtype), name
        assert cpu._model is None and cuda._model is None
        assert judge_fingerprint(cpu) != judge_fingerprint(cuda) and _evaluation(cpu) != _evaluation(cuda), name
        assert judge_fingerprint(build_judge(name, "full")) == judge_fingerprint(cpu)  # cpu is the default
        other_gpu = build_judge(name, "full", device="cuda:1")  # the index is placement, not a setting
        assert judge_fingerprint(other_gpu) == judge_fingerprint(cuda), name

    for name in ("videollama2", "qwen2.5-omni"):
        tiny = build_judge(name, "tiny", device="cpu")
        assert (tiny.identity()["device"], tiny.identity()["dtype"]) == ("cpu", "float32")
        assert _evaluation(tiny) == _evaluation(build_judge(name, "tiny")) == _evaluation(build_judge(name, "tiny"))
        assert judge_fingerprint(tiny) == judge_fingerprint(build_judge(name, "tiny", device="cpu"))


class _HubCalls:
    """Fake huggingface_hub entry points: a local cache holding `cached` (repo -> revision) and a hub that
    answers `online` (repo -> revision, or an exception to raise); records every call."""

    def __init__(self, cached: dict, online: dict):
        self.cached, self.online, self.calls = cached, online, []

    def snapshot_download(self, repo, *, allow_patterns=None, local_files_only=False, **_):
        from huggingface_hub.errors import LocalEntryNotFoundError

        self.calls.append(("snapshot_download", repo, local_files_only))
        if not local_files_only:
            raise AssertionError("weights_identity must not download")
        if repo not in self.cached:
            raise LocalEntryNotFoundError(f"{repo} is not cached")
        return f"/cache/models--{repo.replace('/', '--')}/snapshots/{self.cached[repo]}"

    def model_info(self, repo, *, timeout=None, **_):
        from types import SimpleNamespace

        self.calls.append(("model_info", repo, timeout))
        answer = self.online[repo]
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(sha=answer)


def _fake_hub(monkeypatch, cached: dict, online: dict) -> _HubCalls:
    import huggingface_hub

    from mibench import fingerprint

    hub = _HubCalls(cached, online)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda *a, **k: hub)
    monkeypatch.setattr(fingerprint, "_HUB_ANSWERS", {})
    return hub


def test_a_hub_revision_is_known_before_the_weights_are_downloaded(monkeypatch):
    repo = "some-org/some-model"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    hub = _fake_hub(monkeypatch, cached={}, online={repo: "abc123"})
    before = weights_identity(repo)  # not downloaded yet: the hub names the revision
    assert before == {"hub": repo, "revision": "abc123"}
    assert ("model_info", repo, HUB_TIMEOUT_S) in hub.calls and 0 < HUB_TIMEOUT_S <= 30  # never hangs long
    assert weights_identity(repo) == before and [c[0] for c in hub.calls].count("model_info") == 1  # asked once

    hub = _fake_hub(monkeypatch, cached={repo: "abc123"}, online={repo: "abc123"})
    assert weights_identity(repo) == before  # downloaded since: the same identity, from the cache alone
    assert [c[0] for c in hub.calls] == ["snapshot_download"]

    hub = _fake_hub(monkeypatch, cached={}, online={repo: OSError("no network")})
    assert weights_identity(repo) == {"hub": repo, "revision": None}  # no network: no revision, no error
    assert [c[0] for c in hub.calls] == ["snapshot_download", "model_info"]

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = _fake_hub(monkeypatch, cached={}, online={repo: "abc123"})
    assert weights_identity(repo) == {"hub": repo, "revision": None}  # offline: the hub is never asked
    assert [c[0] for c in hub.calls] == ["snapshot_download"]
    hub = _fake_hub(monkeypatch, cached={repo: "abc123"}, online={})
    assert weights_identity(repo) == before  # offline with the weights cached

    monkeypatch.delenv("HF_HUB_OFFLINE")
    from mibench.judges.base import build_judge

    source = build_judge("qwen2.5-omni", "full").card.weights["checkpoint"]["source"]
    hub = _fake_hub(monkeypatch, cached={}, online={source: "def456"})
    assert build_judge("qwen2.5-omni", "full").identity()["weights"] == {
        "checkpoint": {"hub": source, "revision": "def456"}}
