"""Loading the parts of a Mochi / MusicInfuser pipeline from a weights folder and the diffusers Mochi base.

A weights folder (the fixture-set and `--weights DIR` layout) may hold any of
`transformer/` (diffusers `MochiTransformer3DModel`; or `dit.safetensors`, the genmo DiT), `vae/`,
`text_encoder/`, `tokenizer/` (diffusers Mochi subfolders). Each part it lacks comes from `base`, a local
diffusers Mochi folder or a hub id, subfolder of the same name. Every load is strict (`WeightsError`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers import AutoencoderKLMochi, MochiTransformer3DModel
from transformers import AutoTokenizer, PreTrainedTokenizerBase, T5EncoderModel

from mibench.errors import WeightsError

from .checkpoint import check_loading_info
from .convert import keep_rope_in_float32, load_genmo_transformer


@contextmanager
def _loading(part: str, source: str) -> Iterator[None]:
    try:
        yield
    except (OSError, ValueError) as err:
        reason = " ".join(str(err).split())  # one line; hub errors span several
        reason = reason if len(reason) <= 160 else reason[:157] + "..."
        raise WeightsError(f"cannot load the Mochi {part} from {source} ({err.__class__.__name__}: {reason})",
                           "download genmo/mochi-1-preview (diffusers format) or pass a weights folder") from err


def _source(root: Path | None, base: str, part: str) -> tuple[str, str | None]:
    """(path or hub id, subfolder) of one part."""
    if root is not None and (root / part).is_dir():
        return str(root / part), None
    return str(base), part


def load_transformer(root: Path | None, base: str, dtype: torch.dtype) -> MochiTransformer3DModel:
    """The base Mochi DiT in `dtype`, with `pos_frequencies` kept in float32 as genmo does."""
    if root is not None and not (root / "transformer").is_dir() and (root / "dit.safetensors").is_file():
        return load_genmo_transformer(root / "dit.safetensors", dtype=dtype)
    source, subfolder = _source(root, base, "transformer")
    with _loading("transformer", source):
        model, info = MochiTransformer3DModel.from_pretrained(
            source, subfolder=subfolder, torch_dtype=dtype, output_loading_info=True)
    check_loading_info(info, f"Mochi transformer {source}")
    keep_rope_in_float32(model)
    return model.eval()


def load_vae(root: Path | None, base: str) -> AutoencoderKLMochi:
    source, subfolder = _source(root, base, "vae")
    with _loading("VAE", source):
        model, info = AutoencoderKLMochi.from_pretrained(
            source, subfolder=subfolder, torch_dtype=torch.float32, output_loading_info=True)
    check_loading_info(info, f"Mochi VAE {source}")
    return model.eval()


def load_text_encoder(root: Path | None, base: str) -> T5EncoderModel:
    source, subfolder = _source(root, base, "text_encoder")
    with _loading("text encoder", source):
        model, info = T5EncoderModel.from_pretrained(
            source, subfolder=subfolder or "", torch_dtype=torch.float32, output_loading_info=True)
    check_loading_info(info, f"T5 text encoder {source}")
    return model.eval()


def load_tokenizer(root: Path | None, base: str) -> PreTrainedTokenizerBase:
    source, subfolder = _source(root, base, "tokenizer")
    with _loading("tokenizer", source):
        return AutoTokenizer.from_pretrained(source, subfolder=subfolder or "")
