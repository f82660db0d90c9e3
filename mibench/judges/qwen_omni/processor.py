"""The Qwen-Omni processors (transformers' `Qwen2_5OmniProcessor`, `Qwen3OmniMoeProcessor`) without torchvision.

transformers' `Qwen2VLVideoProcessor` imports torchvision, which mibench does not install, so the processors are
assembled here with `VideoProcessor`: the same path for already-sampled frames (qwen-omni-utils samples them,
`media.read_media`) with torch alone: transformers' own `smart_resize` (factor patch x merge, the per-call pixel
budget the Omni processors pass), the bicubic antialiased resize torchvision runs on tensors, rescale, normalise,
repeat the last frame up to a whole temporal patch, patchify in Qwen2-VL's layout. The image processor, the
Whisper feature extractor, the tokenizer and the chat template are the checkpoint's own (`load_processor`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import (
    AutoTokenizer,
    BatchFeature,
    PreTrainedTokenizerBase,
    Qwen2_5OmniProcessor,
    Qwen2VLImageProcessorPil,
    Qwen3OmniMoeProcessor,
    WhisperFeatureExtractor,
    processing_utils,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
from transformers.video_processing_utils import VideoProcessorMixin

PROCESSOR_CLASSES = {"qwen2.5-omni": Qwen2_5OmniProcessor, "qwen3-omni": Qwen3OmniMoeProcessor}


class VideoProcessor(VideoProcessorMixin):
    """transformers' Qwen2VLVideoProcessor for already-sampled frames (do_sample_frames=False), torch only.

    Input: a video or a list of videos, each (T, C, H, W) RGB in 0..255 (uint8, or float as qwen-omni-utils returns).
    Output: `pixel_values_videos` (sum of T/2*gh*gw rows of C*2*p*p) and `video_grid_thw`, Qwen2-VL's layout.
    The other call kwargs the Omni processors pass (fps, return_tensors, ...) are accepted; only `size` matters.
    """

    model_input_names = ["pixel_values_videos", "video_grid_thw"]

    def __init__(self, patch_size: int, image_mean, image_std, temporal_patch_size: int, merge_size: int,
                 min_pixels: int, max_pixels: int, rescale_factor: float = 1 / 255, **kwargs) -> None:
        super().__init__(**kwargs)
        self.patch_size, self.temporal_patch_size, self.merge_size = patch_size, temporal_patch_size, merge_size
        self.image_mean, self.image_std, self.rescale_factor = list(image_mean), list(image_std), rescale_factor
        self.size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}

    @classmethod
    def like(cls, image: Qwen2VLImageProcessorPil) -> VideoProcessor:
        """The video side of a checkpoint, from its image processor's settings."""
        return cls(image.patch_size, image.image_mean, image.image_std, image.temporal_patch_size, image.merge_size,
                   image.size["shortest_edge"], image.size["longest_edge"], image.rescale_factor)

    def __call__(self, videos, size: dict | None = None, return_tensors=None, **kwargs) -> BatchFeature:
        size = size or self.size
        videos = [videos] if torch.is_tensor(videos) and videos.ndim == 4 else list(videos)
        patches, grids = zip(*(self._one(torch.as_tensor(v), size["shortest_edge"], size["longest_edge"])
                               for v in videos), strict=True)
        return BatchFeature({"pixel_values_videos": torch.cat(patches), "video_grid_thw": torch.tensor(grids)},
                            tensor_type=return_tensors)

    def _one(self, video: torch.Tensor, min_pixels: int, max_pixels: int) -> tuple[torch.Tensor, list[int]]:
        p, m, tp = self.patch_size, self.merge_size, self.temporal_patch_size
        frames, channels, height, width = video.shape
        h, w = smart_resize(height, width, p * m, min_pixels, max_pixels)
        x = video.float()
        if (h, w) != (height, width):  # what torchvision's bicubic antialiased resize runs on tensors
            x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False, antialias=True)
            if not video.is_floating_point():
                x = x.round().clamp(0, 255)
        mean = torch.tensor(self.image_mean).view(1, -1, 1, 1)
        std = torch.tensor(self.image_std).view(1, -1, 1, 1)
        x = (x * self.rescale_factor - mean) / std
        if pad := -frames % tp:  # repeat the last frame up to a whole temporal patch
            x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)])
        gt, gh, gw = x.shape[0] // tp, h // p, w // p
        x = x.view(gt, tp, channels, gh // m, m, p, gw // m, m, p).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return x.reshape(gt * gh * gw, channels * tp * p * p), [gt, gh, gw]


def build_processor(family: str, image: Qwen2VLImageProcessorPil, audio: WhisperFeatureExtractor,
                    tokenizer: PreTrainedTokenizerBase, chat_template: str | None):
    """The family's processor class over these parts (the video side made `like` the image side)."""
    if not hasattr(processing_utils.transformers_module, "VideoProcessorMixin"):
        # exported only with torchvision installed; ProcessorMixin checks the video processor's base class by name
        processing_utils.transformers_module.VideoProcessorMixin = VideoProcessorMixin
    return PROCESSOR_CLASSES[family](image_processor=image, video_processor=VideoProcessor.like(image),
                                     feature_extractor=audio, tokenizer=tokenizer, chat_template=chat_template)


def load_processor(family: str, folder: str | Path):
    """The processor of a checkpoint folder: its preprocessor_config.json (image side and Whisper features), its
    tokenizer and its chat template (chat_template.json / .jinja, else the tokenizer's)."""
    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    template = tokenizer.chat_template
    for name in ("chat_template.jinja", "chat_template.json"):
        if (folder / name).is_file():
            text = (folder / name).read_text(encoding="utf-8")
            template = text if name.endswith(".jinja") else json.loads(text)["chat_template"]
            break
    return build_processor(family, Qwen2VLImageProcessorPil.from_pretrained(folder),
                           WhisperFeatureExtractor.from_pretrained(folder), tokenizer, template)
