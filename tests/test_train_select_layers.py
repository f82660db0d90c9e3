"""Layer selection by adaptability on tiny models: block skipping, layer-skip guidance, ranking, resume, measures."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from diffusers import MochiTransformer3DModel
from torch import nn

from mibench.errors import ConfigError
from mibench.generators.musicinfuser import DancePipeline
from mibench.generators.musicinfuser.tiny import TINY_TRANSFORMER, tiny_parts
from mibench.media.video import read_frames
from mibench.train.select_layers import (
    CallableMeasure,
    judge_measure,
    layer_skip_guidance,
    metric_measure,
    select_layers,
    skip_block,
)

PROMPT = "a professional female dancer dancing k-pop in a studio"
SIZE = dict(steps=2, frames=7, height=16, width=16)
MUSIC = np.random.default_rng(0).standard_normal(8_000).astype(np.float32) * 0.1


@pytest.fixture(scope="module")
def infuser():
    return DancePipeline.tiny(with_adapter=True, seed=0)


def dit_inputs(transformer: MochiTransformer3DModel, *, text: bool = True) -> dict:
    """One call's keyword arguments as `sampler.denoise` passes them; `text=False` is the zeroed empty prompt."""
    rng = torch.Generator().manual_seed(1)
    length = transformer.config.max_sequence_length
    return dict(hidden_states=torch.randn(1, 12, 2, 4, 4, generator=rng),
                encoder_hidden_states=torch.randn(1, length, 32, generator=rng) * text,
                timestep=torch.tensor([600.0]), encoder_attention_mask=torch.arange(length)[None] < 5 * text,
                attention_kwargs={"audio_feat": torch.randn(1, 9, 32, generator=rng)}, return_dict=False)


@pytest.mark.parametrize("index", [0, 1])
def test_skipped_block_is_the_identity_and_equals_removing_it(infuser, index):
    transformer, inputs = infuser.mochi.transformer, dit_inputs(infuser.mochi.transformer)
    with torch.no_grad():
        full = transformer(**inputs)[0]
        seen = []
        block = transformer.transformer_blocks[index]
        with skip_block(transformer, index):
            spy = block.register_forward_hook(lambda m, a, kw, out: seen.append((kw, out)), with_kwargs=True)
            skipped = transformer(**inputs)[0]
            spy.remove()
        [(kwargs, (hidden, context))] = seen
        assert hidden is kwargs["hidden_states"] and context is kwargs["encoder_hidden_states"]

        blocks = transformer.transformer_blocks
        transformer.transformer_blocks = nn.ModuleList(b for i, b in enumerate(blocks) if i != index)
        try:
            removed = transformer(**inputs)[0]
        finally:
            transformer.transformer_blocks = blocks
        restored = transformer(**inputs)[0]
    assert torch.equal(skipped, removed)
    assert not torch.equal(skipped, full)
    assert torch.equal(restored, full)


def test_guidance_changes_the_conditional_prediction_only(infuser):
    transformer = infuser.mochi.transformer
    cond, uncond = dit_inputs(transformer), dit_inputs(transformer, text=False)
    hooks = set(transformer._forward_hooks)
    with torch.no_grad():
        v_cond, v_uncond = transformer(**cond)[0], transformer(**uncond)[0]
        with skip_block(transformer, 1):
            v_skip = transformer(**cond)[0]
        with layer_skip_guidance(transformer, 1, scale=1.5, cfg_scale=6.0):
            guided_cond, guided_uncond = transformer(**cond)[0], transformer(**uncond)[0]
    assert torch.equal(guided_uncond, v_uncond)
    # what the sampler then forms: v_u + g (v_c' - v_u) = v_u + g (v_c - v_u) + s (v_c - v_skip)
    torch.testing.assert_close(v_uncond + 6.0 * (guided_cond - v_uncond),
                               v_uncond + 6.0 * (v_cond - v_uncond) + 1.5 * (v_cond - v_skip))
    assert set(transformer._forward_hooks) == hooks  # the guidance hook is gone


def test_scale_zero_is_the_unguided_sample(infuser):
    sample = dict(num_frames=7, height=16, width=16, steps=2, seed=3)
    plain = infuser.generate(PROMPT, MUSIC, **sample)
    with layer_skip_guidance(infuser.mochi.transformer, 0, scale=0.0, cfg_scale=6.0):
        zero = infuser.generate(PROMPT, MUSIC, **sample)
    with layer_skip_guidance(infuser.mochi.transformer, 0, scale=2.0, cfg_scale=6.0):
        guided = infuser.generate(PROMPT, MUSIC, **sample)
    assert np.array_equal(zero, plain)
    assert not np.array_equal(guided, plain)
    assert np.array_equal(infuser.generate(PROMPT, MUSIC, **sample), plain)  # the hooks are gone


def parts_where_only(active: set[int], num_layers: int = 5):
    """Tiny Mochi parts whose blocks outside `active` are exactly the identity (zero gates on both streams)."""
    parts = tiny_parts(with_adapter=False, seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        transformer = MochiTransformer3DModel(**{**TINY_TRANSFORMER, "num_layers": num_layers}).eval()
    with torch.no_grad():
        for i, block in enumerate(transformer.transformer_blocks):
            if i not in active:
                for norm in (block.norm1, block.norm1_context):  # the last block's context norm has no gates
                    for p in norm.linear.parameters() if hasattr(norm, "linear") else ():
                        p.zero_()
    return dataclasses.replace(parts, transformer=transformer)


def test_known_ranking(tmp_path):
    """Skipping an identity block changes nothing, so a measure of the change from the baseline video ranks
    exactly the active blocks first; as a lower-is-better measure, the identity blocks."""
    def change(video):
        return float(np.abs(read_frames(video).astype(float) - read_frames(baseline_of(video))).mean())

    def baseline_of(video):
        return video.parent.parent / "baseline" / video.name

    parts = parts_where_only({1, 3})
    run = dict(prompts=[PROMPT], seeds=[0], out_dir=tmp_path, skip_scale=3.0, **SIZE)
    selection = select_layers(parts, k=2, measure=CallableMeasure("change", change), **run)
    assert json.loads((tmp_path / "layers.json").read_text()) == [1, 3] == selection.layers
    assert selection.improvements[1] > 0 and selection.improvements[3] > 0
    assert all(selection.improvements[b] == 0.0 for b in (0, 2, 4))
    report = json.loads((tmp_path / "adaptability.json").read_text())
    ranks = {b["block"]: b["rank"] for b in report["blocks"]}
    assert {ranks[1], ranks[3]} == {1, 2} and [ranks[b] for b in (0, 2, 4)] == [3, 4, 5]  # ties: lower block first
    assert report["measure"] == {"name": "change", "better": "higher"} and report["settings"]["skip_scale"] == 3.0

    select_layers(parts, k=3, measure=CallableMeasure("change", change, better="lower"), **run)
    assert json.loads((tmp_path / "layers.json").read_text()) == [0, 2, 4]


def test_resume_reuses_matching_videos_only(tmp_path, infuser, monkeypatch):
    calls = []
    generate = infuser.generate
    monkeypatch.setattr(infuser, "generate", lambda *a, **kw: calls.append(kw["seed"]) or generate(*a, **kw))
    run = dict(prompts=[PROMPT], seeds=[0, 1], blocks=[1], k=1, music=MUSIC, out_dir=tmp_path,
               measure=CallableMeasure("size", lambda video: video.stat().st_size), **SIZE)
    first = select_layers(infuser, **run)
    assert len(calls) == 4  # (baseline + 1 block) x 1 prompt x 2 seeds
    assert select_layers(infuser, **run) == first and len(calls) == 4
    run["skip_scale"] = 2.0
    select_layers(infuser, **run)
    assert len(calls) == 6  # the baseline is kept, the guided videos are sampled again
    select_layers(infuser, **{**run, "seeds": [1]})  # a subset of the recorded videos
    assert len(calls) == 6
    select_layers(infuser, **{**run, "seeds": [1], "music": MUSIC[::-1].copy()})
    assert len(calls) == 8


def test_metric_and_judge_measures_end_to_end(tmp_path, infuser):
    run = dict(prompts=[PROMPT], seeds=[0], k=1, music=MUSIC, out_dir=tmp_path, **SIZE)
    by_metric = select_layers(infuser, measure=metric_measure("frame_consistency"), **run)
    by_judge = select_layers(infuser, measure=judge_measure("videollama2", "tiny", max_new_tokens=2), **run)
    for selection in (by_metric, by_judge):
        assert len(selection.layers) == 1 and set(selection.improvements) == {0, 1}
    assert 0.0 <= by_judge.baseline <= 10.0
    report = json.loads((tmp_path / "adaptability.json").read_text())
    assert report["measure"]["name"] == "judge:videollama2/tiny/video:imaging_quality"


def test_refusals(infuser, tmp_path):
    measure = CallableMeasure("size", lambda video: 0.0)
    with pytest.raises(ConfigError):
        select_layers(infuser, prompts=[""], seeds=[0], out_dir=tmp_path, measure=measure, k=1, **SIZE)
    with pytest.raises(ConfigError):
        select_layers(infuser, prompts=[PROMPT], seeds=[0], out_dir=tmp_path, measure=measure, k=3, **SIZE)
    with pytest.raises(ConfigError):
        layer_skip_guidance(infuser.mochi.transformer, 0, 1.0, cfg_scale=0.0).__enter__()
    with pytest.raises(ConfigError):
        metric_measure("pose_dist_k")
    for question in ("nonexistent", "style_capture"):  # unknown; needs the prompt
        with pytest.raises(ConfigError):
            judge_measure("videollama2", "tiny", question)
