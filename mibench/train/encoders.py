"""The frozen encoders that data preparation runs once per clip: Mochi's VAE, T5 and wav2vec2.

Each encodes as inference does (generators/musicinfuser/), all in float32:
- video: uint8 frames (T, H, W, 3) -> pixels `x / 127.5 - 1` in [-1, 1], shape (1, 3, T, H, W) ->
  `AutoencoderKLMochi.encode(x).latent_dist` mean and logvar (12, T', H', W') (the official
  `encode_videos.py` runs genmo's encoder under bf16 autocast; here float32);
- text: `DancePipeline.encode_prompt`'s recipe: the tokenizer padded and truncated to the transformer's
  `max_sequence_length` (256 for Mochi), the T5 encoder given the mask, features (L, D) and mask (L,);
  captions are never empty, so the pipeline's empty-prompt zeroing never applies;
- music: `MusicEncoder` (wav2vec2 `last_hidden_state`) of a 16 kHz mono wave, (T_a, F).

`identity` names the weights (the `mibench.fingerprint.weights_identity` of each source) and goes into the
fingerprint of a prepared folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLMochi
from transformers import PreTrainedTokenizerBase, T5EncoderModel

from mibench.errors import WeightsError
from mibench.fingerprint import weights_identity
from mibench.generators.musicinfuser.components import load_text_encoder, load_tokenizer, load_vae
from mibench.generators.musicinfuser.features import MusicEncoder
from mibench.generators.musicinfuser.tiny import TINY_TRANSFORMER, tiny_parts

MOCHI_TEXT_TOKENS = 256
BASE = "genmo/mochi-1-preview"
WAV2VEC = "facebook/wav2vec2-base-960h"


@dataclass
class Encoders:
    vae: AutoencoderKLMochi
    text_encoder: T5EncoderModel
    tokenizer: PreTrainedTokenizerBase
    music: MusicEncoder
    device: torch.device
    identity: dict
    text_tokens: int = MOCHI_TEXT_TOKENS

    @classmethod
    def tiny(cls, seed: int = 0, device: str | torch.device = "cpu") -> Encoders:
        """The tiny preset's encoders (`tiny_parts(seed=seed)`: the VAE, T5, tokenizer and wav2vec2 that
        `DancePipeline.tiny(seed=seed)` uses)."""
        device = torch.device(device)
        parts = tiny_parts(with_adapter=True, seed=seed)
        music = MusicEncoder(parts.music.model, parts.music.extractor, device)
        return cls(parts.vae.to(device), parts.text_encoder.to(device), parts.tokenizer, music, device,
                   {"random": "tiny preset", "seed": seed}, TINY_TRANSFORMER["max_sequence_length"])

    @classmethod
    def from_weights(cls, folder: Path, device: str | torch.device = "cpu", *, base: str = BASE,
                     wav2vec: str = WAV2VEC) -> Encoders:
        """The encoders of a `--weights DIR` folder (generator layout: `vae/`, `text_encoder/`,
        `tokenizer/`, `wav2vec2/`, and `transformer/config.json` for the text length); parts it lacks come
        from `base` (diffusers Mochi) and `wav2vec`."""
        root, device = Path(folder), torch.device(device)
        if not root.is_dir():
            raise WeightsError(f"--weights folder {root} does not exist", "check the path")
        wav2vec = str(root / "wav2vec2") if (root / "wav2vec2").is_dir() else wav2vec
        identity = {"root": weights_identity(root), "wav2vec": weights_identity(wav2vec)}
        if not all((root / part).is_dir() for part in ("vae", "text_encoder", "tokenizer")):
            identity["base"] = weights_identity(base)
        config = root / "transformer" / "config.json"
        tokens = json.loads(config.read_text())["max_sequence_length"] if config.is_file() else MOCHI_TEXT_TOKENS
        return cls(load_vae(root, base).to(device), load_text_encoder(root, base).to(device),
                   load_tokenizer(root, base), MusicEncoder.from_pretrained(wav2vec, device), device, identity,
                   int(tokens))

    @torch.no_grad()
    def encode_video(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent mean and logvar (12, T', H', W'), float32 on the CPU, of uint8 frames (T, H, W, 3)."""
        pixels = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        pixels = pixels.permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
        dist = self.vae.encode(pixels).latent_dist
        return dist.mean[0].float().cpu(), dist.logvar[0].float().cpu()

    @torch.no_grad()
    def encode_text(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """T5 features (L, D) float32 and mask (L,) int64 (1 for real tokens) of a caption, on the CPU."""
        tokens = self.tokenizer(text, padding="max_length", truncation=True, return_tensors="pt",
                                max_length=self.text_tokens)
        mask = tokens.attention_mask.bool().to(self.device)
        feat = self.text_encoder(tokens.input_ids.to(self.device), attention_mask=mask)[0].float()
        return feat[0].cpu(), mask[0].long().cpu()

    def encode_music(self, wave_16k: np.ndarray) -> torch.Tensor:
        """wav2vec2 features (T_a, F) float32 on the CPU of a 16 kHz mono float wave."""
        return self.music(wave_16k)[0].cpu()
