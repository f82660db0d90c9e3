"""Parity of the MM-Diffusion port with the official code, on the golden fixture set `mmdiffusion`.

The set is read only through its README's layout: config.json (model kwargs, schedules, per-step
shifts, tolerances, full-size facts), mmd.safetensors, sr.safetensors, inputs.safetensors and
expected.safetensors. Sampler steps are checked teacher forced (each step starts from the expected
state of the previous one) and end to end (the port's own chain), with the recorded shifts and noise.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import fixture_set
from safetensors.torch import load_file

from mibench.generators.mmdiffusion.conditional import StepResult, gradient_step, replacement_step
from mibench.generators.mmdiffusion.config import AISTPP_MMD, AISTPP_SR, MMDConfig, SRConfig
from mibench.generators.mmdiffusion.diffusion import Schedule, space_timesteps
from mibench.generators.mmdiffusion.load import load_mmd, load_sr
from mibench.generators.mmdiffusion.sr_unet import SuperResUNet
from mibench.generators.mmdiffusion.unet import MultimodalUNet, ResBlock


@pytest.fixture(scope="module")
def fx() -> SimpleNamespace:
    root = fixture_set("mmdiffusion")
    cfg = json.loads((root / "config.json").read_text())
    return SimpleNamespace(
        root=root,
        cfg=cfg,
        tol=cfg["tolerance"],
        inputs=load_file(root / "inputs.safetensors"),
        expected=load_file(root / "expected.safetensors"),
    )


@pytest.fixture(scope="module")
def mmd(fx: SimpleNamespace) -> MultimodalUNet:
    return load_mmd(fx.root / "mmd.safetensors", MMDConfig.from_reference_kwargs(fx.cfg["mmd"]["create_model_kwargs"]))


@pytest.fixture(scope="module")
def schedule(fx: SimpleNamespace) -> Schedule:
    return Schedule(fx.cfg["diffusion"]["sampler_schedule"]["timestep_respacing"])


def close(actual: torch.Tensor, expected: torch.Tensor, tol: dict, name: str) -> None:
    torch.testing.assert_close(actual, expected, atol=tol["atol"], rtol=tol["rtol"], msg=lambda m: f"{name}: {m}")


def close_to_max(actual: torch.Tensor, expected: torch.Tensor, tol: dict, name: str) -> None:
    err, bound = (actual - expected).abs().max().item(), tol["rtol_to_max"] * expected.abs().max().item()
    assert err <= bound, f"{name}: max |diff| {err:.3g} > {bound:.3g}"


def shifts_of(entries: list[dict]) -> dict[str, int]:
    return {e["block"]: e["shift"] for e in entries if e["random"]}


def run_step(
    fx: SimpleNamespace,
    mmd: MultimodalUNet,
    schedule: Schedule,
    method: str,
    k: int,
    video: torch.Tensor,
    guidance_scale: float | None = None,
) -> StepResult:
    """Step k of `method` from `video`, with the fixture's shifts and noise (batch B = len(video))."""
    step = fx.cfg[method]["steps"][k]
    assert step["t_model"] == [schedule.timestep_map[step["index"]]] * len(video)
    shifts = shifts_of(step["shifts"])

    def denoise(v: torch.Tensor, a: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mmd(v, a, t, shifts=shifts)

    args = (denoise, schedule, video, fx.inputs["sample.audio_cond"], fx.inputs["sample.audio_eps"], step["index"])
    noise = {
        "noise_video": fx.inputs[f"sample.step{k}.noise_video"],
        "noise_audio": fx.inputs[f"sample.step{k}.noise_audio"],
    }
    if method == "gradient":
        scale = fx.cfg["gradient"]["effective_scale"] if guidance_scale is None else guidance_scale
        return gradient_step(*args, guidance_scale=scale, **noise)
    return replacement_step(*args, **noise)


def test_tiny_structure_matches_reference(fx: SimpleNamespace, mmd: MultimodalUNet) -> None:
    ref = fx.cfg["mmd"]
    assert sum(p.numel() for p in mmd.parameters()) == ref["params"]
    assert len(mmd.state_dict()) == ref["state_dict_tensors"]
    blocks = {name: m for name, m in mmd.named_modules() if isinstance(m, ResBlock)}
    assert list(blocks) == [r["block"] for r in ref["resblocks"]]
    for r in ref["resblocks"]:
        blk = blocks[r["block"]]
        assert blk.audio_in_layers[2].audio_conv.in_channels == r["in_ch"]
        assert blk.audio_in_layers[2].audio_conv.out_channels == r["out_ch"]
        assert blk.audio_dilation == r["audio_dilation"]
        assert (blk.video_attention, blk.audio_attention, blk.resample) == (
            r["video_attention"],
            r["audio_attention"],
            r["updown"],
        )
    got = [[b.name, b.v_qkv.in_channels, b.num_heads, b.window, b.random_shift] for b in mmd.cross_blocks]
    assert got == [
        [c["block"], c["channels"], c["heads"], c["window"], c["random_shift"]] for c in ref["cross_attention_blocks"]
    ]
    sr = SuperResUNet(SRConfig.from_reference_kwargs(fx.cfg["sr"]["kwargs"]))
    assert sum(p.numel() for p in sr.parameters()) == fx.cfg["sr"]["params"]
    assert len(sr.state_dict()) == fx.cfg["sr"]["state_dict_tensors"]


def test_full_size_structure_matches_reference(fx: SimpleNamespace) -> None:
    facts = fx.cfg["aistpp_reference_facts"]
    with torch.device("meta"):
        mmd, sr = MultimodalUNet(AISTPP_MMD), SuperResUNet(AISTPP_SR)
    assert sum(p.numel() for p in mmd.parameters()) == facts["mmd_params"]
    assert len(mmd.state_dict()) == facts["mmd_state_dict_tensors"]
    dilations = [[n, m.audio_dilation] for n, m in mmd.named_modules() if isinstance(m, ResBlock)]
    assert dilations == facts["mmd_audio_dilations"]
    cross = [[b.name, b.v_qkv.in_channels, b.num_heads, b.window, b.random_shift] for b in mmd.cross_blocks]
    assert cross == facts["mmd_cross_attention"]
    assert sum(p.numel() for p in sr.parameters()) == facts["sr_params"]
    assert len(sr.state_dict()) == facts["sr_state_dict_tensors"]
    assert list(AISTPP_SR.channel_mult) == facts["sr_channel_mult"]
    assert list(AISTPP_SR.attention_ds) == facts["sr_attention_ds"]


def test_schedules(fx: SimpleNamespace, schedule: Schedule) -> None:
    ref = fx.cfg["diffusion"]["sampler_schedule"]
    assert schedule.timestep_map == ref["timestep_map"]
    np.testing.assert_allclose(schedule.alphas_cumprod, ref["alphas_cumprod"], rtol=1e-12)
    np.testing.assert_allclose(schedule.betas, ref["betas"], rtol=1e-12)
    np.testing.assert_allclose(schedule.fixed_large_variance, ref["fixed_large_variance"], rtol=1e-12)
    sr_ref = fx.cfg["sr"]["diffusion"]
    sr_schedule = Schedule(sr_ref["timestep_respacing"])
    i = sr_ref["step_index"]
    assert sr_schedule.timestep_map == sr_ref["timestep_map"]
    assert sr_schedule.timestep_map[i] == sr_ref["t_model"]
    np.testing.assert_allclose(sr_schedule.alphas_cumprod[i], sr_ref["alpha_bar"], rtol=1e-12)
    np.testing.assert_allclose(sr_schedule.alphas_cumprod_prev[i], sr_ref["alpha_bar_prev"], rtol=1e-12)


def test_respacing_matches_guided_diffusion() -> None:
    """Numbers of the reference's space_timesteps / SpacedDiffusion (porting notes, section 7)."""
    assert space_timesteps(1000, "ddim25") == list(range(0, 1000, 40))
    assert space_timesteps(1000, "50")[:4] == [0, 20, 41, 61]
    assert space_timesteps(1000, "50")[-3:] == [958, 979, 999]
    for spacing, last_beta in (
        ("ddim25", 0.5326018230995546),
        ("50", 0.32980906609465954),
        ("250", 0.07751934499235003),
    ):
        assert Schedule(spacing).betas[-1] == pytest.approx(last_beta, rel=1e-12)
    full = Schedule()
    assert full.alphas_cumprod[499] == pytest.approx(0.07858724288177824, rel=1e-12)
    assert full.sqrt_alphas_cumprod[999] == pytest.approx(0.006352818087570016, rel=1e-12)


def test_forward(fx: SimpleNamespace, mmd: MultimodalUNet) -> None:
    inputs, shifts = fx.inputs, shifts_of(fx.cfg["forward"]["shifts"])
    assert inputs["forward.timesteps"].tolist() == fx.cfg["forward"]["timesteps"]
    assert len(inputs["forward.video"]) == len(inputs["forward.audio"]) == fx.cfg["forward"]["batch"]
    with torch.no_grad():
        video, audio = mmd(inputs["forward.video"], inputs["forward.audio"], inputs["forward.timesteps"], shifts=shifts)
        unshifted, _ = mmd(
            inputs["forward.video"],
            inputs["forward.audio"],
            inputs["forward.timesteps"],
            shifts=dict.fromkeys(shifts, 0),
        )
    close(video, fx.expected["forward.video_eps"], fx.tol["model_outputs"], "forward.video_eps")
    close(audio, fx.expected["forward.audio_eps"], fx.tol["model_outputs"], "forward.audio_eps")
    if any(shifts.values()):  # the shifts are honoured
        assert (unshifted - video).abs().max() > 100 * fx.tol["model_outputs"]["atol"]


def test_shifts_are_checked(fx: SimpleNamespace, mmd: MultimodalUNet) -> None:
    inputs = fx.inputs
    args = (inputs["forward.video"], inputs["forward.audio"], inputs["forward.timesteps"])
    with pytest.raises(ValueError, match="random-shift blocks"):
        mmd(*args, shifts={})
    too_far = {b.name: b.max_shift + 1 for b in mmd.cross_blocks if b.random_shift}
    with pytest.raises(ValueError, match="outside"):
        mmd(*args, shifts=too_far)


@pytest.mark.parametrize("method", ["replacement", "gradient"])
def test_sampler_steps_teacher_forced(
    fx: SimpleNamespace, mmd: MultimodalUNet, schedule: Schedule, method: str
) -> None:
    exp, tol = fx.expected, fx.tol
    video = fx.inputs["sample.video_xT"]
    assert len(video) == len(fx.inputs["sample.audio_cond"]) == fx.cfg["sampler"]["batch"]
    for k in range(len(fx.cfg[method]["steps"])):
        got = run_step(fx, mmd, schedule, method, k, video)
        pre = f"{method}.step{k}."
        close(got.audio_in, exp[pre + "audio_in"], tol["schedule_only"], pre + "audio_in")
        close(got.video_eps, exp[pre + "video_eps"], tol["model_outputs"], pre + "video_eps")
        close(got.audio_eps, exp[pre + "audio_eps"], tol["model_outputs"], pre + "audio_eps")
        close(got.video, exp[pre + "video_out"], tol["sampler_states_teacher_forced"], pre + "video_out")
        if method == "replacement":
            close(got.audio_sample, exp[pre + "audio_out"], tol["sampler_states_teacher_forced"], pre + "audio_out")
        else:
            close(got.audio_target, exp[pre + "audio_target"], tol["schedule_only"], pre + "audio_target")
            close(
                got.audio_sample, exp[pre + "audio_sample"], tol["sampler_states_teacher_forced"], pre + "audio_sample"
            )
            close(got.loss, exp[pre + "loss"], tol["loss"], pre + "loss")
            close_to_max(got.grad, exp[pre + "grad"], tol["grad"], pre + "grad")
        video = exp[pre + "video_out"]


@pytest.mark.parametrize("method", ["replacement", "gradient"])
def test_sampler_end_to_end(fx: SimpleNamespace, mmd: MultimodalUNet, schedule: Schedule, method: str) -> None:
    tol = fx.tol["sampler_states_end_to_end"]
    audio_name = "audio_out" if method == "replacement" else "audio_sample"
    video = fx.inputs["sample.video_xT"]
    for k in range(len(fx.cfg[method]["steps"])):
        got = run_step(fx, mmd, schedule, method, k, video)
        pre = f"{method}.step{k}."
        close(got.video, fx.expected[pre + "video_out"], tol, pre + "video_out (end to end)")
        close(got.audio_sample, fx.expected[pre + audio_name], tol, pre + audio_name + " (end to end)")
        video = got.video


def test_gradient_at_the_official_scale(fx: SimpleNamespace, mmd: MultimodalUNet, schedule: Schedule) -> None:
    """use_fp16=True, classifier_scale 3: the loss scale 2**20 is folded into the effective guidance scale."""
    ref = fx.cfg["gradient_official_scale"]
    assert ref["effective_scale"] == ref["classifier_scale"] * ref["loss_scale"]
    k = ref["step"]
    video = fx.inputs["sample.video_xT"] if k == 0 else fx.expected[f"gradient.step{k - 1}.video_out"]
    got = run_step(fx, mmd, schedule, "gradient", k, video, guidance_scale=ref["effective_scale"])
    name = f"gradient_official_scale.step{k}.video_out"
    close_to_max(got.video, fx.expected[name], fx.tol["official_scale"], name)


def test_super_resolution_forward_and_ddim_step(fx: SimpleNamespace) -> None:
    ref = fx.cfg["sr"]
    sr = load_sr(fx.root / "sr.safetensors", SRConfig.from_reference_kwargs(ref["kwargs"]))
    schedule = Schedule(ref["diffusion"]["timestep_respacing"])
    i = ref["diffusion"]["step_index"]
    x_t, timesteps = fx.inputs["sr.x_t"], fx.inputs["sr.timesteps"]
    assert timesteps.tolist() == [schedule.timestep_map[i]] * len(x_t)
    with torch.no_grad():
        out = sr(x_t, timesteps, fx.inputs["sr.low_res"])
    close(out, fx.expected["sr.model_out"], fx.tol["model_outputs"], "sr.model_out")
    sample, x0 = schedule.ddim_step(x_t, out[:, :3], i)
    close(x0, fx.expected["sr.pred_xstart"], fx.tol["sr_sampler"], "sr.pred_xstart")
    close(sample, fx.expected["sr.sample"], fx.tol["sr_sampler"], "sr.sample")
