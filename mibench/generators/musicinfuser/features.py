"""Music features for MusicInfuser: wav2vec2 (`facebook/wav2vec2-base-960h`) `last_hidden_state` at 16 kHz.

As the official `inference.py`: the (already cropped, first-channel, 16 kHz) wave goes through the
model's feature extractor (`do_normalize=True`: zero mean, unit variance per clip; no attention mask),
then `Wav2Vec2Model` in float32; the output is (1, T_a, hidden) with T_a = floor((samples - 400) / 320) + 1.
The crop (`num_frames / 30 + 0.09` s) and resampling are the caller's job.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

from mibench.errors import MediaError, WeightsError

from .checkpoint import check_loading_info

SAMPLE_RATE = 16_000
MIN_SAMPLES = 400  # one wav2vec2 frame (receptive field of its convolutions)


class MusicEncoder:
    """wav2vec2 feature extractor + model on one device; call it with a 16 kHz mono float wave."""

    def __init__(self, model: Wav2Vec2Model, extractor: Wav2Vec2FeatureExtractor,
                 device: torch.device | str = "cpu"):
        self.model = model.to(device=device, dtype=torch.float32).eval()
        self.extractor = extractor
        self.device = torch.device(device)

    @classmethod
    def from_pretrained(cls, source: str, device: torch.device | str = "cpu") -> MusicEncoder:
        """Load from a local folder or a hub id (the CTC head of `*-960h` checkpoints is dropped, as officially)."""
        try:
            extractor = Wav2Vec2FeatureExtractor.from_pretrained(source)
            model, info = Wav2Vec2Model.from_pretrained(source, output_loading_info=True)
        except (OSError, ValueError) as err:
            raise WeightsError(f"cannot load wav2vec2 from {source} ({err.__class__.__name__})",
                               "download facebook/wav2vec2-base-960h or pass a local folder") from err
        # masked_spec_embed is a training-only parameter that some conversions leave out.
        check_loading_info(info, f"wav2vec2 {source}", tolerated_missing={"masked_spec_embed"},
                           tolerated_unexpected_prefixes=("lm_head.",))
        return cls(model, extractor, device)

    @property
    def feature_dim(self) -> int:
        return self.model.config.hidden_size

    @torch.no_grad()
    def __call__(self, audio_16k: np.ndarray) -> torch.Tensor:
        """(1, T_a, hidden) float32 features of a 1-D float wave at 16 kHz, on this encoder's device."""
        wave = np.asarray(audio_16k)
        if wave.ndim != 1 or not np.issubdtype(wave.dtype, np.floating):
            raise MediaError(f"music must be a 1-D float wave, got {wave.dtype} of shape {wave.shape}",
                             "pass the first channel, resampled to 16 kHz, as float32")
        if wave.size < MIN_SAMPLES or not np.isfinite(wave).all():
            raise MediaError(f"music wave of {wave.size} samples is too short or not finite",
                             f"pass at least {MIN_SAMPLES} finite samples at {SAMPLE_RATE} Hz")
        inputs = self.extractor(wave.astype(np.float32), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        return self.model(**inputs).last_hidden_state.float()
