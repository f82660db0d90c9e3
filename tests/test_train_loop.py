"""The adapter training loop and recipe (mibench/train): schedules, trainables, resume, export, optimizers.

Everything runs on the tiny MusicInfuser parts on CPU, on prepared folders written here with random tensors
of the tiny shapes (9 frames of 32x48 pixels -> 12 x 2 x 4 x 6 latents, T5 width 32, wav2vec2 width 32).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys

import pytest
import torch
from conftest import run_cli
from peft import PeftModel
from safetensors.torch import load_file, save_file
from scipy import stats

from mibench.errors import ConfigError
from mibench.generators.musicinfuser.adapter import AUDIO_MODULES
from mibench.generators.musicinfuser.pipeline import DancePipeline
from mibench.generators.musicinfuser.tiny import TINY_AUDIO_LAYERS, TINY_TRANSFORMER, tiny_parts, write_tiny_weights
from mibench.generators.musicinfuser.zica import AUDIO_FEAT_KEY, attach_zica
from mibench.train.checkpoint import checkpoints
from mibench.train.data import ClipOrder, PreparedData, make_example
from mibench.train.export import ADAPTER_FILE, load_peft
from mibench.train.loop import train
from mibench.train.optim import CpuOffloadAdamW, make_optimizer
from mibench.train.parts import TrainParts
from mibench.train.recipe import Recipe, load_recipe, recipe_names
from mibench.train.schedule import draw_caption, draw_sigma, flow_pair, lr_factor, make_lr_scheduler, noise_beta

LATENT = (12, 2, 4, 6)  # 9 frames of 32 x 48 pixels through the tiny VAE
TEXT = (16, 32)  # max_sequence_length x T5 width
AUDIO = (40, 32)  # wav2vec2 frames x width


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run many times faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_prepared(folder, kinds, *, seed=0, scale=1.0):
    """A prepared folder: one clip per entry of `kinds`, random tensors of the tiny shapes, near-fixed latents."""
    g = torch.Generator().manual_seed(seed)
    (folder / "clips").mkdir(parents=True)
    rows = []
    for i, kind in enumerate(kinds):
        clip_id = f"{kind}-{i}"
        tensors = {"latent_mean": scale * torch.randn(LATENT, generator=g), "latent_logvar": torch.full(LATENT, -20.0),
                   "text_feat": torch.randn(TEXT, generator=g), "text_mask": (torch.arange(TEXT[0]) < 5).long(),
                   "basic_feat": torch.randn(TEXT, generator=g), "basic_mask": (torch.arange(TEXT[0]) < 3).long(),
                   "audio_feat": torch.randn(AUDIO, generator=g)}
        save_file(tensors, str(folder / "clips" / f"{clip_id}.safetensors"))
        rows.append({"clip_id": clip_id, "kind": kind, "cache": f"clips/{clip_id}.safetensors", "frames": 9})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def tiny_recipe(**changes) -> Recipe:
    return dataclasses.replace(load_recipe("tiny"), **changes)


def fixed_input(seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(hidden_states=torch.randn(1, *LATENT, generator=g),
                encoder_hidden_states=torch.randn(1, *TEXT, generator=g), timestep=torch.tensor([700.0]),
                encoder_attention_mask=torch.arange(TEXT[0])[None] < 5,
                attention_kwargs={AUDIO_FEAT_KEY: torch.randn(1, *AUDIO, generator=g)}, return_dict=False)


@torch.no_grad()
def forward(transformer):
    return transformer.eval()(**fixed_input())[0]


def log_rows(out):
    lines = (out / "log.csv").read_text().splitlines()
    return [line.rsplit(",", 1)[0] for line in lines[1:]]  # all columns but the wall time


# (1) noise levels
def test_sigma_follows_the_beta_uniform_schedule():
    recipe = Recipe()
    assert [noise_beta(s, recipe) for s in (0, 200, 400, 600)] == [3.0, 2.0, 1.5, 1.25]
    assert noise_beta(2000, recipe) == pytest.approx(1 + 2 / 1024)
    g = torch.Generator().manual_seed(0)
    for step in (0, 200, 400, 2000):
        sigma = draw_sigma(g, step, recipe, n=4000).double().numpy()
        assert ((sigma > 0) & (sigma <= 1)).all()
        assert stats.kstest(sigma, stats.beta(1, noise_beta(step, recipe)).cdf).pvalue > 0.01
    assert stats.kstest(draw_sigma(g, 0, recipe, n=4000).numpy(), "uniform").pvalue < 1e-6  # the test has power


# (2) trainables
def test_only_lora_and_audio_train_and_the_base_stays_unchanged(tmp_path):
    recipe = tiny_recipe(wild_ratio=0.0, num_steps=6, warmup_steps=1)
    parts = TrainParts.tiny(recipe)
    model = parts.transformer
    names = set(parts.trainable())
    lora_modules = {n.split(".lora_")[0] for n in names if ".lora_" in n}
    last = TINY_TRANSFORMER["num_layers"] - 1
    assert lora_modules == {f"transformer_blocks.{i}.attn1.{m}" for i in range(last + 1)
                            for m in ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj",
                                      "to_add_out") if not (i == last and m == "to_add_out")}
    audio = {n for n in names if ".lora_" not in n}
    assert audio == {f"{m}.{k}" for m in AUDIO_MODULES for k in getattr(model, m).state_dict()}
    assert all(p.dtype == torch.float32 for p in parts.trainable().values())
    for block in model.audio_cross_attn_blocks:
        assert not block.to_out.weight.any() and not block.to_out.bias.any()
    attn = model.transformer_blocks[0].attn1
    assert attn.to_k.lora_A["musicinfuser"].weight is attn.to_q.lora_A["musicinfuser"].weight  # genmo's shared A
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if n not in names}
    assert frozen and not any(p.requires_grad for n, p in model.named_parameters() if n not in names)
    before = {n: p.detach().clone() for n, p in parts.trainable().items()}
    train(write_prepared(tmp_path / "data", ["aist"]), tmp_path / "out", recipe, model_parts=parts, log=lambda _: None)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    unchanged = [n for n, p in parts.trainable().items() if torch.equal(p, before[n])]
    assert unchanged == [f"transformer_blocks.{last}.attn1.add_q_proj.lora_B.musicinfuser.weight"]  # text queries
    # of the last block only feed its text output, which Mochi discards: that LoRA B gets zero gradients


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path):
    """ZICA's audio tokens reach the recomputed blocks: the projector gets its gradient under checkpointing."""
    grads = []
    for checkpointing in (False, True):
        parts = TrainParts.tiny(tiny_recipe(grad_checkpointing=checkpointing))
        g = torch.Generator().manual_seed(0)
        for block in parts.transformer.audio_cross_attn_blocks:  # leave the zero init so every grad is non-zero
            torch.nn.init.normal_(block.to_out.weight, std=0.1, generator=g)
        parts.transformer.train()(**fixed_input())[0].square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in parts.trainable().items()})
    assert grads[1]["audio_projection.projection.0.weight"].abs().sum() > 0
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-7)


# (3) captions
def test_caption_replacement_and_dropout_rates():
    recipe, n = Recipe(), 20000
    g = torch.Generator().manual_seed(0)
    draws = [draw_caption(g, recipe) for _ in range(n)]
    for kind, p in (("empty", 0.1), ("basic", 0.9 * 0.2), ("detailed", 0.9 * 0.8)):
        assert abs(draws.count(kind) - n * p) < 4 * (n * p * (1 - p)) ** 0.5, kind


def test_example_uses_the_drawn_caption(tmp_path):
    data = PreparedData(write_prepared(tmp_path / "data", ["aist"]))
    tensors = data.load(data.clips["aist"][0])
    recipe, seen = Recipe(), set()
    for seed in range(60):
        ex = make_example(tensors, 0, torch.Generator().manual_seed(seed), recipe, torch.zeros(12), torch.ones(12))
        seen.add(ex.caption)
        want = {"detailed": ("text_feat", "text_mask"), "basic": ("basic_feat", "basic_mask")}.get(ex.caption)
        if want is None:
            assert not ex.text_feat.any() and not ex.text_mask.any()
        else:
            assert torch.equal(ex.text_feat[0], tensors[want[0]])
            assert torch.equal(ex.text_mask[0], tensors[want[1]].bool())
    assert seen == {"detailed", "basic", "empty"}


# (4) learning rate
def test_lr_warms_up_then_decays_to_zero():
    recipe = Recipe()
    assert [lr_factor(s, recipe) for s in (0, 100, 200, 2100, 4000)] == pytest.approx([0, 0.5, 1, 0.5, 0], abs=1e-12)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=recipe.lr)
    scheduler = make_lr_scheduler(optimizer, recipe)
    lrs = []
    for _ in range(recipe.num_steps + 1):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert [lrs[s] for s in (0, 200, 2100, 4000)] == pytest.approx([0, 1e-4, 5e-5, 0], abs=1e-12)


# (5) learning
def test_tiny_run_lowers_the_loss(tmp_path):
    recipe = tiny_recipe(wild_ratio=0.0)
    summary = train(write_prepared(tmp_path / "data", ["aist"]), tmp_path / "out", recipe,
                    model_parts=TrainParts.tiny(recipe), log=lambda _: None)
    assert summary.finished and len(summary.losses) == recipe.num_steps
    first, last = sum(summary.losses[:50]) / 50, sum(summary.losses[-50:]) / 50
    assert last < 0.95 * first


# (6) resume
class Killed(Exception):
    pass


@pytest.mark.parametrize("optimizer", ["adamw", "adamw-cpu-offload"])
def test_kill_and_resume_is_bit_exact(tmp_path, optimizer):
    recipe = tiny_recipe(num_steps=12, warmup_steps=2, checkpoint_every=6, keep_checkpoints=0, log_every=1,
                         lora_dropout=0.1, optimizer=optimizer)
    data = write_prepared(tmp_path / "data", ["aist", "aist", "wild", "wild"])
    whole = train(data, tmp_path / "whole", recipe, model_parts=TrainParts.tiny(recipe), log=lambda _: None)

    def killer(line):
        if line.startswith("step 9/"):
            raise Killed

    with pytest.raises(Killed):
        train(data, tmp_path / "cut", recipe, model_parts=TrainParts.tiny(recipe), log=killer)
    assert list(checkpoints(tmp_path / "cut")) == [6]
    parts = TrainParts.tiny(recipe)
    resumed = train(data, tmp_path / "cut", recipe, model_parts=parts, log=lambda _: None)
    assert (resumed.start_step, resumed.end_step) == (6, 12)
    assert resumed.losses == whole.losses[6:]
    assert log_rows(tmp_path / "cut") == log_rows(tmp_path / "whole")
    final = load_file(str(checkpoints(tmp_path / "whole")[12] / "trainable.safetensors"))
    assert final.keys() == parts.trainable().keys()
    assert all(torch.equal(p, final[n]) for n, p in parts.trainable().items())
    paused = train(data, tmp_path / "paused", recipe, model_parts=TrainParts.tiny(recipe), max_steps=5,
                   log=lambda _: None)
    assert (paused.end_step, paused.finished, paused.adapter) == (5, False, None)
    quieter = dataclasses.replace(recipe, log_every=4, checkpoint_every=4)  # output settings may change
    train(data, tmp_path / "paused", quieter, model_parts=TrainParts.tiny(recipe), log=lambda _: None)
    assert log_rows(tmp_path / "paused") == log_rows(tmp_path / "whole")
    with pytest.raises(ConfigError, match="another recipe"):
        train(data, tmp_path / "cut", dataclasses.replace(recipe, lr=1e-3), model_parts=TrainParts.tiny(recipe))
    with pytest.raises(ConfigError, match="another base model"):
        train(data, tmp_path / "cut", recipe, model_parts=TrainParts.tiny(recipe, seed=1))
    with pytest.raises(ConfigError, match="already holds"):
        train(data, tmp_path / "cut", recipe, model_parts=TrainParts.tiny(recipe), resume=False)


def test_clip_order_mixes_sources_and_shards_processes(tmp_path):
    data = PreparedData(write_prepared(tmp_path / "data", ["aist"] * 4 + ["wild"] * 3))
    order = ClipOrder(data, Recipe(wild_ratio=0.0), num_processes=2)
    picks = [clip.clip_id for _ in range(2) for clip, _ in order.next_step()]
    assert sorted(picks) == [f"aist-{i}" for i in range(4)]  # two steps of two processes: one epoch
    order = ClipOrder(data, Recipe(wild_ratio=0.5), num_processes=1)
    kinds = [order.next_step()[0][0].kind for _ in range(2000)]
    assert abs(kinds.count("wild") - 1000) < 4 * 500 ** 0.5 / 2 ** 0.5
    with pytest.raises(ConfigError, match="needs wild clips"):
        ClipOrder(PreparedData(write_prepared(tmp_path / "aist", ["aist"])), Recipe(wild_ratio=0.5), 1)


# (7) export
def test_exported_adapters_reproduce_the_trained_model(tmp_path, music_dir, capsys, monkeypatch):
    recipe = tiny_recipe(wild_ratio=0.0, num_steps=20, warmup_steps=2)
    parts = TrainParts.tiny(recipe)
    summary = train(write_prepared(tmp_path / "data", ["aist"]), tmp_path / "out", recipe, model_parts=parts,
                    log=lambda _: None)
    assert all(block.to_out.weight.any() for block in parts.transformer.audio_cross_attn_blocks)
    expected = forward(parts.transformer)

    root = write_tiny_weights(tmp_path / "weights")  # the tiny base; its adapter is replaced by the trained one
    shutil.copy(summary.adapter, root / ADAPTER_FILE)
    shutil.copy(tmp_path / "out" / "config.json", root / "config.json")
    layers = json.loads((root / "config.json").read_text())["audio"]["audio_cross_attn_layers"]
    assert tuple(layers) == TINY_AUDIO_LAYERS
    pipe = DancePipeline.from_weights(root, adapter=root / ADAPTER_FILE, wav2vec=str(root / "wav2vec2"),
                                      audio_layers=layers)
    torch.testing.assert_close(forward(pipe.mochi.transformer), expected, rtol=0, atol=1e-6)
    code, out, _ = run_cli(["generate", "--model", "musicinfuser", "--preset", "tiny", "--weights", str(root),
                            "--suite", "aist", "--music", str(music_dir), "--limit", "1", "--json", "--run-dir",
                            str(tmp_path / "run")], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["done"] == 1

    base = tiny_parts(with_adapter=False).transformer
    load_peft(base, summary.peft)
    torch.testing.assert_close(forward(base), expected, rtol=0, atol=1e-6)

    base = tiny_parts(with_adapter=False).transformer  # plain peft reads the LoRA part
    attach_zica(base, layers, feat_dim=AUDIO[1])
    audio = load_file(str(summary.peft / "audio.safetensors"))
    for name in AUDIO_MODULES:
        getattr(base, name).load_state_dict({k[len(name) + 1:]: v for k, v in audio.items() if k.startswith(name)})
    PeftModel.from_pretrained(base, str(summary.peft))
    torch.testing.assert_close(forward(base), expected, rtol=0, atol=1e-6)


def test_parts_from_a_weights_folder_equal_the_tiny_parts(tmp_path):
    recipe = load_recipe("tiny")
    loaded = TrainParts.from_weights(write_tiny_weights(tmp_path / "weights"), recipe, "cpu")
    tiny = TrainParts.tiny(recipe)
    assert loaded.base_dtype == torch.float32 and loaded.spec == tiny.spec
    assert torch.equal(loaded.latents_mean, tiny.latents_mean) and torch.equal(loaded.latents_std, tiny.latents_std)
    expected = tiny.transformer.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.transformer.state_dict().items())
    assert loaded.trainable().keys() == tiny.trainable().keys()
    moved = shutil.copytree(tmp_path / "weights", tmp_path / "moved")  # the same files elsewhere: the same base
    assert TrainParts.from_weights(moved, recipe, "cpu").base_identity == loaded.base_identity
    assert "path" not in loaded.base_identity["folder"] and loaded.base_identity["folder"]["files"]


# (8) loss variants
def test_loss_variants_give_the_documented_inputs_and_targets():
    z, eps, sigma = torch.full((1, 2, 1, 1, 1), 2.0), torch.ones(1, 2, 1, 1, 1), torch.tensor([0.25])
    mean, std = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.5])
    inputs, target = flow_pair(z, eps, sigma, mean, std, "raw")  # raw latent in, normalised target
    assert inputs.flatten().tolist() == [1.75, 1.75]  # 0.75 * 2 + 0.25 * 1
    assert target.flatten().tolist() == [0.25, 4.0]  # ((2 - 1) - mean) / std
    inputs, target = flow_pair(z, eps, sigma, mean, std, "normalised")  # z_n = (2 - mean) / std = 0.75, 6
    assert inputs.flatten().tolist() == [0.8125, 4.75]  # 0.75 z_n + 0.25
    assert target.flatten().tolist() == [-0.25, 5.0]  # z_n - 1
    parts = TrainParts.tiny(Recipe(audio_layers=[0]))
    vae = tiny_parts(with_adapter=False).vae.config
    assert parts.latents_mean.tolist() == pytest.approx(vae.latents_mean)
    assert parts.latents_std.tolist() == pytest.approx([s / vae.scaling_factor for s in vae.latents_std])


# (9) optimizers
def test_cpu_offload_adamw_matches_adamw_and_8bit_needs_bitsandbytes(monkeypatch):
    recipe = Recipe(optimizer="adamw-cpu-offload", weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 3, generator=g), torch.randn(7, generator=g)]
    grads = [[torch.randn(p.shape, generator=g) for p in start] for _ in range(3)]
    results = []
    for name in ("adamw", "adamw-cpu-offload"):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        optimizer = make_optimizer(params, dataclasses.replace(recipe, optimizer=name))
        for step_grads in grads:
            for p, grad in zip(params, step_grads, strict=True):
                p.grad = grad.clone()
            optimizer.step()
            optimizer.zero_grad()
            assert all(p.grad is None for p in params)
        results.append(params)
    assert isinstance(optimizer, CpuOffloadAdamW)
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    with pytest.raises(ConfigError, match="bitsandbytes") as info:
        make_optimizer(results[0], dataclasses.replace(recipe, optimizer="adamw8bit"))
    assert "\n" not in str(info.value)


# (10) recipe files
def test_recipes_load_and_refuse_unknown_keys(tmp_path):
    assert {"paper", "tiny"} <= set(recipe_names())
    assert load_recipe("paper") == Recipe()
    tiny = load_recipe("tiny")
    assert tiny.lora_rank == 4 and tiny.audio_layers == TINY_AUDIO_LAYERS and tiny.num_steps <= 500
    (tmp_path / "layers.json").write_text("[3, 5, 9]")
    path = tmp_path / "mine.yaml"
    path.write_text(f"audio_layers: {tmp_path / 'layers.json'}\nlatents: raw\n")
    assert load_recipe(path).audio_layers == (3, 5, 9) and load_recipe(path).latents == "raw"
    path.write_text("lr: 1.0e-4\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown keys: learning_rate") as info:
        load_recipe(path)
    assert "\n" not in str(info.value)
    for bad, match in (("lr: 1e-4\n", "is not of type float"), ("latents: both\n", "is unknown"),
                       ("caption_dropout: 1.5\n", "outside")):
        path.write_text(bad)
        with pytest.raises(ConfigError, match=match):
            load_recipe(path)
    with pytest.raises(ConfigError, match="unknown recipe"):
        load_recipe("no-such-recipe")
