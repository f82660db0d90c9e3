"""Resolving model weights: local folders and files, Hugging Face ids offline, clear errors."""

from __future__ import annotations

import pytest

from mibench.errors import WeightsError
from mibench.weights import found_locally, resolve


def test_local_folder_with_required_files(tmp_path):
    (tmp_path / "transformer").mkdir()
    (tmp_path / "musicinfuser.safetensors").write_bytes(b"x")
    assert resolve(str(tmp_path), ["musicinfuser.safetensors", "transformer"], what="MusicInfuser") == tmp_path
    assert found_locally(str(tmp_path), ["transformer"])
    with pytest.raises(WeightsError, match=r"Mochi folder .* lacks vae, text_encoder \(it holds: "
                                           r"musicinfuser.safetensors, transformer/\)"):
        resolve(str(tmp_path), ["vae", "text_encoder"], what="Mochi")
    with pytest.raises(WeightsError, match="nope.pt does not exist"):
        resolve(str(tmp_path / "nope.pt"), what="MM-Diffusion")
    assert not found_locally(str(tmp_path / "nope.pt"))


def test_hub_id_offline_names_the_missing_files_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError) as info:
        resolve("susunghong/MusicInfuser", ["musicinfuser.safetensors"], what="MusicInfuser adapter")
    message = info.value.line()
    assert "not in the local Hugging Face cache" in message and "musicinfuser.safetensors" in message
    assert "huggingface-cli download susunghong/MusicInfuser" in message
    assert not found_locally("susunghong/MusicInfuser", ["musicinfuser.safetensors"])
