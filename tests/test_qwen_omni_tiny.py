"""The tiny Qwen2.5-Omni / Qwen3-Omni thinkers and their local processors, called the way the model cards do."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mibench.judges.qwen_omni.processor import VideoProcessor
from mibench.judges.qwen_omni.tiny import FAMILIES, PATCH_SIZE, tiny_processor, tiny_thinker

# Qwen2.5-Omni's card prescribes this system prompt; Qwen3-Omni's sets none for evaluation ("No system prompt
# should be set for any evaluation benchmark", media before the question, video at fps=2).
SYSTEM = {
    "qwen2.5-omni": "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
    "auditory and visual inputs, as well as generating text and speech.",
    "qwen3-omni": None,
}
QUESTION = "How well does the dance match the music? Answer with a score from 0 to 10."
FPS = 2.0  # the frames below stand for a 2 s clip sampled at 2 fps, as qwen-omni-utils samples


def _video() -> torch.Tensor:
    """4 frames of 56x84 in 0..255, (T, C, H, W) float like qwen-omni-utils' fetch_video."""
    return torch.rand(4, 3, 56, 84, generator=torch.Generator().manual_seed(0)) * 255


def _audio() -> np.ndarray:
    """1.5 s of a 440 Hz sine at 16 kHz (the video's soundtrack)."""
    t = np.arange(int(1.5 * 16000)) / 16000
    return (0.5 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)


def _inputs(family: str, processor):
    video = _video()
    conversation = [{"role": "system", "content": [{"type": "text", "text": SYSTEM[family]}]}] if SYSTEM[family] else []
    conversation.append({"role": "user", "content": [{"type": "video", "video": video},
                                                     {"type": "text", "text": QUESTION}]})
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    # use_audio_in_video: the audio is the video's own track (audio_from_video_indices says which video it belongs
    # to, required by transformers 5.25 when audio is passed alongside); fps sets video_second_per_grid
    return text, processor(text=text, audio=[_audio()], videos=[video], return_tensors="pt", padding=True,
                           use_audio_in_video=True, audio_from_video_indices=[0], fps=FPS)


@pytest.fixture(scope="module", params=FAMILIES)
def built(request):
    family = request.param
    processor = tiny_processor(family)
    model = tiny_thinker(family)
    text, inputs = _inputs(family, processor)
    return family, processor, model, text, inputs


def test_prompt_follows_the_chat_template(built):
    family, processor, _, text, inputs = built
    tok = processor.tokenizer
    system = f"<|im_start|>system\n{SYSTEM[family]}<|im_end|>\n" if SYSTEM[family] else ""
    media = f"{tok.vision_bos_token}{tok.video_token}{tok.vision_eos_token}"
    assert text == f"{system}<|im_start|>user\n{media}{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    # the video placeholder became one interleaved block: vision start, audio start, video/audio tokens, ends
    tokens = tok.convert_ids_to_tokens(inputs["input_ids"][0])
    i = tokens.index(tok.vision_bos_token)
    assert tokens[i + 1] == tok.audio_bos_token
    j = tokens.index(tok.vision_eos_token)
    assert tokens[j - 1] == tok.audio_eos_token
    assert set(tokens[i + 2:j - 1]) == {tok.video_token, tok.audio_token}
    assert torch.equal(inputs["video_second_per_grid"], torch.tensor([2 / FPS]))  # temporal_patch_size / fps


def test_placeholders_match_the_encoder_outputs(built):
    _, _, model, _, inputs = built
    ids = inputs["input_ids"][0]
    with torch.no_grad():
        video = model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"]).pooler_output
        audio = model.get_audio_features(inputs["input_features"], inputs["feature_attention_mask"])
    assert int((ids == model.config.video_token_id).sum()) == sum(v.shape[0] for v in video) > 0
    assert int((ids == model.config.audio_token_id).sum()) == audio.last_hidden_state.shape[0] > 0
    # 4 frames -> 2 temporal patches; the grid is a whole number of merged patches
    t, h, w = inputs["video_grid_thw"][0].tolist()
    assert t == 2 and h % 2 == 0 and w % 2 == 0


def test_forward_and_greedy_generate(built):
    _, processor, model, _, inputs = built
    assert not model.training and all(p.dtype == torch.float32 for p in model.parameters())
    with torch.no_grad():
        logits = model(**inputs, use_audio_in_video=True).logits
    n = inputs["input_ids"].shape[1]
    assert logits.shape == (1, n, model.config.text_config.vocab_size)
    assert model.config.text_config.vocab_size == len(processor.tokenizer)
    assert torch.isfinite(logits).all()
    out = model.generate(**inputs, use_audio_in_video=True, max_new_tokens=3, do_sample=False)
    assert torch.equal(out[0, :n], inputs["input_ids"][0]) and n < out.shape[1] <= n + 3
    assert int(out[0, n]) == int(logits[0, -1].argmax())  # generate's first step is the forward's argmax


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_weights(family):
    state = torch.get_rng_state()
    a, b, c = (tiny_thinker(family, seed=s).state_dict() for s in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["lm_head.weight"], c["lm_head.weight"])


@pytest.mark.parametrize("family", FAMILIES)
def test_video_patches_match_the_image_processor(family):
    """Frames already at a valid size skip the resize: two identical frames then give exactly the image
    processor's patches for one (it repeats an image over the temporal patch), checking the patch layout."""
    processor = tiny_processor(family)
    p = PATCH_SIZE[family]
    frame = torch.randint(0, 256, (3, 10 * p, 14 * p), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    video = processor.video_processor(torch.stack([frame, frame]), return_tensors="pt")
    image = processor.image_processor(frame.permute(1, 2, 0).numpy(), return_tensors="pt")
    assert video["video_grid_thw"].tolist() == [[1, 10, 14]] == image["image_grid_thw"].tolist()
    torch.testing.assert_close(video["pixel_values_videos"], image["pixel_values"], rtol=0, atol=1e-5)
    assert isinstance(processor.video_processor, VideoProcessor)
