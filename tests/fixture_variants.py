"""Alternative golden-fixture sets derived from a documented set, to check that the parity tests read
every size from the files (DESIGN: "the tests pass for any set with that layout").

    python tests/fixture_variants.py OUT [--src tests/fixtures] [--self-consistency]
    for root in OUT/*/; do MIBENCH_FIXTURES_DIR=$root pytest -q tests/test_*musicinfuser* \\
        tests/test_mmdiffusion_* tests/test_videollama2_*; done

Each OUT/<name>/ is a full fixture root: the varied port's folder plus symlinks to the source sets of
the other two. No reference code runs: the "exact" variants are transformations whose official outputs
follow from the source set's own expected tensors.

- musicinfuser: ZICA on every layer (the added blocks get random q/k/v and a zero `to_out`, i.e. ZICA's
  own identity initialisation; the source block keeps its layer), also listed out of order (module j
  belongs to layer list[j]); audio_feat of other lengths whose nearest resize picks the same rows; T5
  features padded with more masked tokens (the README: padded positions are ignored).
- mmdiffusion: sampler batch B (inputs and outputs repeated; the gradient of loss.mean() carries 1/B, so
  the classifier scale is multiplied by B to keep the guided states); forward / SR batches made of
  other selections of the source elements.
- videollama2: the reference's own 16 kHz int16 PCM stored losslessly as the track, mono or stereo
  (L = x + d, R = x - d: ffmpeg's stereo -> mono downmix (L + R)/2 gives back x exactly); the source
  frames re-encoded losslessly (x264 qp 0) as a clip of another frame count and fps whose official
  indices land on the source's sampled frames; other question subsets and orders.

`--self-consistency` adds judge sets whose audio is re-encoded as AAC at 48 kHz stereo, 22.05 kHz mono
and 16 kHz mono. Their audio expectations are computed by THIS PORT (not parity): they only show that
the tests take every audio size (decoded samples, clip windows) from the files.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import av
import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

PORTS = ("musicinfuser", "videollama2", "mmdiffusion")


def copy_set(src: Path, out: Path) -> Path:
    shutil.copytree(src, out)
    for f in out.rglob("*"):
        if f.is_file():
            f.chmod(0o644)
    return out


def note(out: Path, text: str) -> None:
    (out / "README.md").write_text((out / "README.md").read_text() + f"\n\n## Variant\n{text}\n")


def table(tensors: dict[str, torch.Tensor]) -> dict:
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")} for k, v in tensors.items()}


# musicinfuser


def mi_layers(out: Path, layers: list[int], seed: int) -> None:
    cfg = json.loads((out / "config.json").read_text())
    old = cfg["audio"]["audio_cross_attn_layers"]
    with safe_open(str(out / "musicinfuser.safetensors"), "pt") as f:
        metadata = f.metadata()
    tensors = load_file(out / "musicinfuser.safetensors")
    prefix = "audio_cross_attn_blocks."
    blocks = {layer: {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"{prefix}{j}.")}
              for j, layer in enumerate(old)}
    tensors = {k: v for k, v in tensors.items() if not k.startswith(prefix)}
    generator, template = torch.Generator().manual_seed(seed), next(iter(blocks.values()))
    for j, layer in enumerate(layers):
        block = blocks.get(layer) or {
            name: torch.zeros_like(t) if name.startswith("to_out")
            else ((0.08 if name.endswith("weight") else 0.02) * torch.randn(t.shape, generator=generator)).to(t.dtype)
            for name, t in template.items()}
        tensors.update({f"{prefix}{j}.{name}": v for name, v in block.items()})
    save_file(tensors, out / "musicinfuser.safetensors", metadata=metadata)
    for section in (cfg["audio"], cfg["genmo_asymm_dit_joint_kwargs"], cfg["spec"]):
        section["audio_cross_attn_layers"] = list(layers)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))


def mi_audio_rows(out: Path, rows: list[int]) -> None:
    cfg = json.loads((out / "config.json").read_text())
    inputs = load_file(out / "inputs.safetensors")
    audio, frames = inputs["audio_feat"], inputs["x"].shape[2]

    def picks(length: int) -> list[int]:
        index = torch.arange(length, dtype=torch.float32)[None, None]
        return [int(i) for i in torch.nn.functional.interpolate(index, size=frames, mode="nearest").flatten()]

    assert [rows[i] for i in picks(len(rows))] == picks(audio.shape[1]), "the resize would pick other rows"
    inputs["audio_feat"] = audio[:, rows].contiguous()
    save_file(inputs, out / "inputs.safetensors")
    cfg["shapes"]["audio_feat"] = list(inputs["audio_feat"].shape)
    cfg["spec"]["audio_frames"] = len(rows)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))


def mi_pad_text(out: Path, tokens: int, seed: int) -> None:
    cfg = json.loads((out / "config.json").read_text())
    inputs = load_file(out / "inputs.safetensors")
    generator = torch.Generator().manual_seed(seed)
    for suffix in ("", "_neg"):
        feat, mask = inputs["t5_feat" + suffix], inputs["t5_mask" + suffix]
        extra = tokens - feat.shape[1]
        noise = 0.3 * torch.randn(feat.shape[0], extra, feat.shape[2], generator=generator)
        inputs["t5_feat" + suffix] = torch.cat([feat, noise], 1)
        inputs["t5_mask" + suffix] = torch.cat([mask, torch.zeros(mask.shape[0], extra, dtype=torch.bool)], 1)
    save_file(inputs, out / "inputs.safetensors")
    for section in (cfg["genmo_asymm_dit_joint_kwargs"], cfg["genmo_base_asymm_dit_joint_kwargs"], cfg["spec"]["arch"]):
        section["t5_token_length"] = tokens
    cfg["diffusers_transformer_config"]["max_sequence_length"] = tokens
    cfg["shapes"]["t5_feat"] = list(inputs["t5_feat"].shape)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    transformer = json.loads((out / "transformer" / "config.json").read_text())
    transformer["max_sequence_length"] = tokens
    (out / "transformer" / "config.json").write_text(json.dumps(transformer, indent=2))


def musicinfuser_variants(src: Path, root: Path) -> None:
    depth = json.loads((src / "config.json").read_text())["genmo_asymm_dit_joint_kwargs"]["depth"]
    every = list(range(depth))
    out = copy_set(src, root / "mi_all_layers" / "musicinfuser")
    mi_layers(out, every, seed=1)
    note(out, f"ZICA on every layer {every}; the added blocks have a zero to_out")
    out = copy_set(src, root / "mi_all_layers_rev" / "musicinfuser")
    mi_layers(out, every[::-1], seed=2)
    note(out, f"ZICA on every layer, listed {every[::-1]}; the added blocks have a zero to_out")
    audio = load_file(src / "inputs.safetensors")["audio_feat"].shape[1]
    out = copy_set(src, root / "mi_shapes" / "musicinfuser")
    mi_audio_rows(out, [j // 2 for j in range(2 * audio)])
    mi_pad_text(out, load_file(src / "inputs.safetensors")["t5_feat"].shape[1] + 4, seed=3)
    note(out, "audio_feat twice as long (every frame repeated), T5 features padded with 4 masked tokens")
    out = copy_set(src, root / "mi_audio_eq_t" / "musicinfuser")
    frames = load_file(src / "inputs.safetensors")["x"].shape[2]
    index = torch.arange(audio, dtype=torch.float32)[None, None]
    mi_audio_rows(out, [int(i) for i in torch.nn.functional.interpolate(index, size=frames).flatten()])
    mi_layers(out, every[::-1], seed=4)
    note(out, "audio_feat of exactly T frames (no resize), ZICA on every layer listed backwards")


# mmdiffusion


def mmd_variant(src: Path, out: Path, *, sampler_batch: int, forward_order: list[int], sr_order: list[int]) -> None:
    out.mkdir(parents=True)
    for name in ("mmd.safetensors", "mmd.pt", "sr.safetensors", "README.md"):
        shutil.copy(src / name, out / name)
    cfg = json.loads((src / "config.json").read_text())
    inputs, expected = load_file(src / "inputs.safetensors"), load_file(src / "expected.safetensors")
    b = sampler_batch
    for k in [k for k in inputs if k.startswith("sample.")]:
        inputs[k] = inputs[k].repeat(b, *[1] * (inputs[k].dim() - 1)).contiguous()
    for k in [k for k in expected if k.startswith(("replacement.", "gradient.", "gradient_official_scale."))]:
        value = expected[k].repeat(b, *[1] * (expected[k].dim() - 1))
        expected[k] = (value / b if k.startswith("gradient.") and k.endswith(".grad") else value).contiguous()
    cfg["sampler"]["batch"] = b
    for method in ("replacement", "gradient"):
        for step in cfg[method]["steps"]:
            step["t_model"] = step["t_model"][:1] * b
            if "loss" in step:
                step["loss"] = step["loss"][:1] * b
    cfg["gradient"]["class_scale"] *= b
    cfg["gradient"]["effective_scale"] *= b
    official = cfg["gradient_official_scale"]
    official["classifier_scale"] *= b
    official["effective_scale"] = official["classifier_scale"] * official["loss_scale"]
    for names, order in ((("forward.video", "forward.audio", "forward.timesteps", "forward.video_eps",
                           "forward.audio_eps"), forward_order),
                         (("sr.low_res", "sr.x_t", "sr.timesteps", "sr.model_out", "sr.pred_xstart", "sr.sample"),
                          sr_order)):
        for k in names:
            tensors = inputs if k in inputs else expected
            tensors[k] = tensors[k][torch.tensor(order)].contiguous()
    cfg["forward"].update(timesteps=inputs["forward.timesteps"].tolist(), batch=len(forward_order))
    cfg["tensors"] = {"inputs": table(inputs), "expected": table(expected)}
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    save_file(inputs, out / "inputs.safetensors")
    save_file(expected, out / "expected.safetensors")
    note(out, f"sampler batch {b} (classifier scale x{b}), forward elements {forward_order}, SR elements {sr_order}")


def mmdiffusion_variants(src: Path, root: Path) -> None:
    mmd_variant(src, root / "mmd_b2" / "mmdiffusion", sampler_batch=2, forward_order=[1, 0, 1], sr_order=[1, 0, 0, 1])
    mmd_variant(src, root / "mmd_b1" / "mmdiffusion", sampler_batch=1, forward_order=[1], sr_order=[0])
    mmd_variant(src, root / "mmd_b3" / "mmdiffusion", sampler_batch=3, forward_order=[0, 1], sr_order=[1])


# videollama2


def official_indices(total: int, count: int) -> list[int]:
    return np.round((total - 1) / count * (np.arange(count) + 0.5) + 1e-6).astype(int).tolist()


def write_lossless_clip(path: Path, frames: list[av.VideoFrame], fps: int, pcm: np.ndarray, channels: int) -> None:
    """yuv420p frames as lossless x264 (the same planes decode back) + 16 kHz s16 PCM, QuickTime container."""
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w", format="mov") as out:
        video = out.add_stream("libx264", rate=fps, options={"qp": "0"})
        video.width, video.height, video.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=16000, layout=layout)
        for i, frame in enumerate(frames):
            copy = av.VideoFrame.from_ndarray(frame.to_ndarray(format="yuv420p"), format="yuv420p")
            copy.pts = i
            out.mux(video.encode(copy))
        out.mux(video.encode())
        x = pcm.astype(np.int64)
        if channels == 1:
            data = x[None]
        else:
            d = np.random.default_rng(0).integers(-300, 301, x.size)
            d = np.where(np.abs(x) + np.abs(d) > 32767, 0, d)
            data = np.stack([x + d, x - d], 1).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data.astype(np.int16), format="s16", layout=layout)
        frame.sample_rate, frame.pts = 16000, 0
        out.mux(audio.encode(frame))
        out.mux(audio.encode())


def vl2_variant(src: Path, out: Path, *, frames: int | None, fps: int, channels: int, questions: list[int]) -> None:
    copy_set(src, out)
    meta = json.loads((src / "expected.json").read_text())
    expected = load_file(src / "expected.safetensors")
    pcm = expected["audio_pcm16k_s16"].numpy()
    with av.open(str(src / "sample.mp4")) as container:
        decoded = list(container.decode(container.streams.video[0]))
    video = meta["video"]
    total, count, old = video["decord_num_frames"], video["num_frames_sampled"], video["frame_indices"]
    frames = frames or total
    new = official_indices(frames, count)
    mapping = [min(round(j * (total - 1) / max(frames - 1, 1)), total - 1) for j in range(frames)]
    for a, b in zip(new, old, strict=True):
        mapping[a] = b
    write_lossless_clip(out / "sample.mp4", [decoded[m] for m in mapping], fps, pcm, channels)
    video.update(frame_indices=new, decord_num_frames=frames, decord_avg_fps=float(fps))
    video["ffprobe"]["video"].update(nb_frames=str(frames), r_frame_rate=f"{fps}/1", avg_frame_rate=f"{fps}/1",
                                     profile="High 4:4:4 Predictive")
    video["ffprobe"]["audio"].update(codec_name="pcm_s16le", sample_rate="16000", channels=channels,
                                     nb_frames=str(pcm.size), duration=str(pcm.size / 16000))
    source = meta["questions"]
    suffixes = tuple(f"_q{i}" for i in range(len(source)))
    result = {k: v for k, v in expected.items() if not k.endswith(suffixes)}
    for new_index, old_index in enumerate(questions):
        for name in ("logits_last", "step_logits", "input_ids", "output_ids"):
            result[f"{name}_q{new_index}"] = expected[f"{name}_q{old_index}"].clone()
    embed = load_file(src / "checkpoint" / "model.safetensors")["model.embed_tokens.weight"].float()
    tokens = torch.cat([expected["vision_features"][0], expected["audio_features"][0]])
    ids = source[questions[0]]["input_ids"]
    cut = ids.index(-201)
    result["inputs_embeds_q0"] = torch.cat([embed[ids[:cut]], tokens, embed[ids[cut + 1:]]]).unsqueeze(0)
    if questions[0] == 0:
        assert torch.equal(result["inputs_embeds_q0"], expected["inputs_embeds_q0"])
    meta["questions"] = [source[i] for i in questions]
    meta["tensors"] = table(result)
    save_file(result, out / "expected.safetensors")
    (out / "expected.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    note(out, f"sample.mp4: {frames} frames at {fps} fps (lossless x264) + the reference PCM as a 16 kHz "
              f"pcm_s16le track, {channels} channel(s); questions {questions} of the source set")


def videollama2_variants(src: Path, root: Path) -> None:
    vl2_variant(src, root / "vl2_mono_qrev" / "videollama2", frames=None, fps=24, channels=1, questions=[1, 0])
    vl2_variant(src, root / "vl2_stereo_n100" / "videollama2", frames=100, fps=40, channels=2, questions=[1])
    vl2_variant(src, root / "vl2_stereo_n37" / "videollama2", frames=37, fps=15, channels=2, questions=[0, 1, 0])


def reencode_audio(src: Path, dst: Path, rate: int, layout: str) -> None:
    """The same video packets; the audio decoded and re-encoded as AAC at `rate` / `layout`."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        vout = out.add_stream_from_template(vin)
        aout = out.add_stream("aac", rate=rate, layout=layout)
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)

        def encode(frames: list[av.AudioFrame]) -> None:
            for frame in frames:
                frame.pts = None
                out.mux(aout.encode(frame))

        for packet in inp.demux(vin, ain):
            if packet.stream is vin and packet.dts is not None:
                packet.stream = vout
                out.mux(packet)
            elif packet.stream is ain:
                for frame in packet.decode():
                    encode(resampler.resample(frame))
        encode(resampler.resample(None))
        out.mux(aout.encode())


def vl2_self_consistent(src: Path, out: Path, rate: int, layout: str) -> None:
    from mibench.judges.videollama2 import VideoLLaMA2Judge
    from mibench.judges.videollama2 import preprocess as pp
    from mibench.judges.videollama2.chat import prompt_chunks
    from mibench.judges.videollama2.decode import KVSession, greedy

    copy_set(src, out)
    reencode_audio(src / "sample.mp4", out / "sample.mp4", rate, layout)
    meta = json.loads((src / "expected.json").read_text())
    expected = load_file(src / "expected.safetensors")
    judge = VideoLLaMA2Judge.from_pretrained(out / "checkpoint")
    media = judge.preprocess(out / "sample.mp4")
    assert np.array_equal(media.frames, expected["video_frames_uint8"].numpy())
    fbank = pp.kaldi_fbank(pp.clip_waveform(media.pcm, media.clip_ranges) * 2**15)
    beats = judge.model.beats_features(media.fbank)
    audio = judge.model.mm_projector_a(beats)
    expected.update(audio_pcm16k_s16=torch.from_numpy(media.pcm.copy()), audio_fbank=media.fbank.contiguous(),
                    audio_fbank_fp32_head=fbank[: len(expected["audio_fbank_fp32_head"])].contiguous(),
                    audio_fbank_pad_row_fp32=fbank[-1].contiguous(), beats_features=beats, audio_features=audio)
    tokens = torch.cat([expected["vision_features"][0], audio[0]])
    for i, question in enumerate(meta["questions"]):
        before, after = prompt_chunks(judge.tokenizer, question["question"])
        embeds = judge.model.splice(before, tokens, after)
        if i == 0:
            expected["inputs_embeds_q0"] = embeds
        session = KVSession(judge.model)
        logits = session.feed(embeds)
        generation = greedy(session, logits, judge.rules, len(before) + 1 + len(after),
                            question["generate_kwargs"]["max_new_tokens"])
        expected[f"logits_last_q{i}"] = logits
        expected[f"step_logits_q{i}"] = torch.stack(generation.step_logits)
        expected[f"output_ids_q{i}"] = torch.tensor(generation.ids)
        question.update(output_ids=generation.ids, answer=judge.rules.decode(generation.ids).strip(),
                        inputs_embeds_len=embeds.shape[1])
    meta["audio"].update(decoded_samples_16k=len(media.pcm), duration_s=len(media.pcm) / 16000,
                         clip_sample_ranges=[list(r) for r in media.clip_ranges])
    meta["video"]["ffprobe"]["audio"].update(sample_rate=str(rate), channels=len(av.AudioLayout(layout).channels))
    expected = {k: v.contiguous() for k, v in expected.items()}
    meta["tensors"] = table(expected)
    save_file(expected, out / "expected.safetensors")
    (out / "expected.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    note(out, f"audio re-encoded as AAC {rate} Hz {layout}; audio expectations computed by the port (NOT parity)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parent / "fixtures")
    parser.add_argument("--self-consistency", action="store_true")
    args = parser.parse_args()
    src = args.src.resolve()
    musicinfuser_variants(src / "musicinfuser", args.out)
    mmdiffusion_variants(src / "mmdiffusion", args.out)
    videollama2_variants(src / "videollama2", args.out)
    if args.self_consistency:
        for name, rate, layout in (("vl2_sc_48k_stereo", 48000, "stereo"), ("vl2_sc_22k_mono", 22050, "mono"),
                                   ("vl2_sc_16k_mono", 16000, "mono")):
            vl2_self_consistent(src / "videollama2", args.out / name / "videollama2", rate, layout)
    for root in sorted(p for p in args.out.iterdir() if p.is_dir()):
        for port in PORTS:
            if not (root / port).exists():
                (root / port).symlink_to(src / port)
        print(root)


if __name__ == "__main__":
    main()
