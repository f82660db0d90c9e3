"""Strict MM-Diffusion checkpoint loading: the fixture's plain `.pt` (shared-storage views), safetensors,
and clear one-line WeightsErrors for wrong key sets, wrong shapes and unreadable files."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
import torch
from conftest import fixture_set
from safetensors.torch import load_file, save_file

from mibench.errors import WeightsError
from mibench.generators.mmdiffusion import MMDiffusionPipeline
from mibench.generators.mmdiffusion.config import MMDConfig
from mibench.generators.mmdiffusion.load import load_mmd, read_state_dict
from mibench.generators.mmdiffusion.tiny import TINY_MMD, TINY_SAMPLER, TINY_SR


@pytest.fixture(scope="module")
def root() -> Path:
    return fixture_set("mmdiffusion")


@pytest.fixture(scope="module")
def config(root: Path) -> MMDConfig:
    return MMDConfig.from_reference_kwargs(json.loads((root / "config.json").read_text())["mmd"]["create_model_kwargs"])


def test_pt_with_shared_storages_loads_like_safetensors(root: Path, config: MMDConfig) -> None:
    state = read_state_dict(root / "mmd.pt")
    reference = load_file(root / "mmd.safetensors")
    assert state.keys() == reference.keys()
    assert all(torch.equal(state[k], reference[k]) for k in reference)
    assert len({t.untyped_storage().data_ptr() for t in state.values()}) < len(state)  # views, as documented
    from_pt, from_st = load_mmd(root / "mmd.pt", config), load_mmd(root / "mmd.safetensors", config)
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in from_pt.parameters())
    for (name, a), (_, b) in zip(from_pt.state_dict().items(), from_st.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def _broken(root: Path) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in read_state_dict(root / "mmd.pt").items()}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda sd: sd.pop("audio_out.2.audio_conv.bias"), r"1 missing: audio_out\.2\.audio_conv\.bias"),
        (lambda sd: sd.__setitem__("extra.weight", torch.zeros(2)), r"1 unexpected: extra\.weight"),
        (
            lambda sd: sd.__setitem__("time_embed.0.bias", torch.zeros(7)),
            r"1 wrong shape: time_embed\.0\.bias \(7,\) != \(\d+,\)",
        ),
    ],
    ids=["missing", "unexpected", "wrong_shape"],
)
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_wrong_key_sets_fail_clearly(
    root: Path, config: MMDConfig, tmp_path: Path, change, message: str, suffix: str
) -> None:
    state = _broken(root)
    change(state)
    path = tmp_path / f"broken{suffix}"
    if suffix == ".pt":
        torch.save(state, path)
    else:
        save_file(state, path)
    with pytest.raises(WeightsError, match=message) as err:
        load_mmd(path, config)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_unreadable_files_fail_clearly(root: Path, config: MMDConfig, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        load_mmd(tmp_path / "AIST++.pt", config)
    nested = tmp_path / "nested.pt"
    torch.save({"model": _broken(root)}, nested)
    with pytest.raises(WeightsError, match="not a flat state dict"):
        read_state_dict(nested)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"when": datetime.date(2023, 1, 1)}, unsafe)
    with pytest.raises(WeightsError, match="cannot read checkpoint"):
        read_state_dict(unsafe)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="cannot read checkpoint"):
        read_state_dict(garbage)


def test_pipeline_from_checkpoints_round_trip(tmp_path: Path) -> None:
    tiny = MMDiffusionPipeline.tiny(seed=1)
    torch.save(tiny.mmd.state_dict(), tmp_path / "base.pt")
    save_file(tiny.sr.state_dict(), tmp_path / "sr.safetensors")
    pipe = MMDiffusionPipeline.from_checkpoints(
        tmp_path / "base.pt", tmp_path / "sr.safetensors", mmd_config=TINY_MMD, sr_config=TINY_SR, defaults=TINY_SAMPLER
    )
    for loaded, original in ((pipe.mmd, tiny.mmd), (pipe.sr, tiny.sr)):
        for (name, a), (_, b) in zip(loaded.state_dict().items(), original.state_dict().items(), strict=True):
            assert torch.equal(a, b), name
    with pytest.raises(WeightsError, match="does not match MultimodalUNet"):
        MMDiffusionPipeline.from_checkpoints(tmp_path / "sr.safetensors", None, mmd_config=TINY_MMD)


def test_reduced_precision_casts_convolutions_only(tmp_path: Path) -> None:
    """dtype=bfloat16 (float16 on a GPU) converts the convs like the reference's convert_to_fp16."""
    tiny = MMDiffusionPipeline.tiny(seed=2)
    save_file(tiny.mmd.state_dict(), tmp_path / "base.safetensors")
    half = load_mmd(tmp_path / "base.safetensors", TINY_MMD, dtype=torch.bfloat16)
    kinds = {type(m).__name__: p.dtype for m in half.modules() for p in m.parameters(recurse=False)}
    assert kinds == {
        "Conv1d": torch.bfloat16,
        "Conv2d": torch.bfloat16,
        "Conv3d": torch.bfloat16,
        "Linear": torch.float32,
        "GroupNorm": torch.float32,
    }
    generator = torch.Generator().manual_seed(0)
    video, audio = torch.randn(1, *TINY_MMD.video_size, generator=generator), torch.randn(1, *TINY_MMD.audio_size)
    shifts, t = tiny.mmd.draw_shifts(generator), torch.tensor([250])
    with torch.no_grad():
        full, low = tiny.mmd(video, audio, t, shifts=shifts), half(video, audio, t, shifts=shifts)
    for a, b in zip(full, low, strict=True):
        assert b.dtype == torch.float32
        assert (a - b).abs().max() < 0.2 * a.abs().max()
