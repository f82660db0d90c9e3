"""The VideoLLaMA 2.1-AV network: SigLIP + STC connector (video), BEATs + MLP (audio), Qwen2 (LLM).

`encode_video` / `encode_audio` give the multimodal tokens; `splice` puts video then audio tokens in
place of the single <video> placeholder between the embedded prompt chunks. Submodule names match
the checkpoint prefixes: `vision` <- SigLIP's `vision_model.`, `mm_projector`, `audio_tower`,
`mm_projector_a` <- `model.<name>.`, `llm` <- the Qwen2 keys as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel

from mibench.judges.videollama2.beats import BEATs, BEATsConfig
from mibench.judges.videollama2.connector import STCConnector, audio_projector


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one VideoLLaMA 2.1-AV checkpoint.

    `vision.num_hidden_layers` counts only the SigLIP layers up to the selected hidden state
    (`mm_vision_select_layer` -2 -> all but the last); the pooling head is off.
    """

    llm: Qwen2Config
    vision: SiglipVisionConfig
    beats: BEATsConfig
    audio_projector: str = "mlp2x_gelu"


class VideoLLaMA2AV(nn.Module):
    """The assembled model; every method runs without gradients."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        hidden = cfg.llm.hidden_size
        self.vision = SiglipVisionModel(cfg.vision)
        self.mm_projector = STCConnector(cfg.vision.hidden_size, hidden)
        self.audio_tower = BEATs(cfg.beats)
        self.mm_projector_a = audio_projector(cfg.audio_projector, cfg.beats.encoder_embed_dim, hidden)
        self.llm = Qwen2ForCausalLM(cfg.llm)
        self.requires_grad_(False)
        self.eval()

    @property
    def dtype(self) -> torch.dtype:
        return self.llm.lm_head.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.llm.lm_head.weight.device

    @torch.no_grad()
    def vision_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """SigLIP hidden state of the selected layer, before post_layernorm: [T, N, Dv]."""
        out = self.vision(pixel_values.to(self.device, self.dtype), output_hidden_states=True)
        return out.hidden_states[-1]

    @torch.no_grad()
    def encode_video(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Frames [T, 3, S, S] -> video tokens [Nv, D]."""
        return self.mm_projector(self.vision_features(pixel_values))

    @torch.no_grad()
    def beats_features(self, fbank: torch.Tensor) -> torch.Tensor:
        """BEATs output [1, Na, Da] for a bfloat16 fbank [1, frames, 128]."""
        return self.audio_tower(fbank.to(self.device, self.dtype))

    @torch.no_grad()
    def encode_audio(self, fbank: torch.Tensor) -> torch.Tensor:
        """fbank [1, frames, 128] -> audio tokens [Na, D]."""
        return self.mm_projector_a(self.beats_features(fbank))[0]

    @torch.no_grad()
    def embed(self, ids: list[int]) -> torch.Tensor:
        """Token embeddings [len(ids), D]."""
        return self.llm.get_input_embeddings()(torch.tensor(ids, dtype=torch.long, device=self.device))

    @torch.no_grad()
    def splice(self, before: list[int], multimodal: torch.Tensor, after: list[int]) -> torch.Tensor:
        """LLM input embeddings [1, L, D]: the chunk before <video>, the tokens, the chunk after."""
        return torch.cat([self.embed(before), multimodal, self.embed(after)]).unsqueeze(0)
