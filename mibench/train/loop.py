"""The training loop: a prepared folder + a recipe + model parts -> a trained MusicInfuser adapter.

    parts = TrainParts.from_weights(weights_dir, recipe, "cuda")     # or TrainParts.tiny(recipe)
    summary = train(Path("prepared"), Path("runs/train"), recipe, model_parts=parts)

Runs under `accelerate`: one process as it is; `accelerate launch --num_processes N -m mibench.cli train ...`
for data parallelism (batch 1 per process, each process its own clip; only the main process writes).

One step (k = 0, 1, ...): the clip order (data.py) picks each process's clip and step seed; the example
gets sigma ~ Beta(1, b(k)), the caption (basic / detailed, maybe dropped), z sampled from the clip's latent
distribution, noise eps, and the flow pair of the recipe's `latents` variant; the DiT is called with
`timestep = (1 - sigma) * 1000`, the caption features and boolean mask, and the music features through
`attention_kwargs`; loss = MSE(prediction (float32), target); backward, optimizer step, LR scheduler step.

On-disk layout of `out/`:
    log.csv                      one row per step: step (1-based: steps done), loss (mean over processes),
                                 lr, sigma, caption, clip (main process's), seconds; rows past the checkpoint
                                 a run resumes from are dropped
    checkpoints/step-<k>/        resumable state after k steps (checkpoint.py): every `checkpoint_every`
                                 steps and where a run stops
    musicinfuser.safetensors, config.json   the final adapter, official layout (export.py; `mibench
                                 generate --weights out` loads it with the Mochi base)
    peft/                        the final adapter, peft layout (export.py)
Resuming (`resume=True`, the default) continues from the newest checkpoint bit-exactly: same losses and
weights as an uninterrupted run. A checkpoint made with another recipe (its `OUTPUT_ONLY` settings aside),
other prepared data, another number of processes or another base model (`TrainParts.base_identity`: the
tiny preset's seed, or the weights' files and hub revision, not their path) is refused.
"""

from __future__ import annotations

import csv
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import gather_object, set_seed

from mibench.errors import ConfigError
from mibench.generators.musicinfuser.zica import AUDIO_FEAT_KEY
from mibench.media.audio import atomic_output

from .checkpoint import checkpoints, load_checkpoint, load_trainable, rng_state, save_checkpoint, set_rng_state
from .data import ClipOrder, Example, PreparedData, make_example
from .export import save_official, save_peft
from .optim import make_optimizer
from .parts import TrainParts
from .recipe import Recipe
from .schedule import make_lr_scheduler

LOG_COLUMNS = ("step", "loss", "lr", "sigma", "caption", "clip", "seconds")
OUTPUT_ONLY = ("checkpoint_every", "keep_checkpoints", "log_every", "adapter_dtype")  # may change on resume


@dataclass
class TrainSummary:
    """What a call did: steps done before and after it, its per-step losses, what it wrote."""

    start_step: int
    end_step: int
    finished: bool
    losses: list[float] = field(default_factory=list)
    checkpoint: Path | None = None
    adapter: Path | None = None
    peft: Path | None = None


def train(prepared: Path, out: Path, recipe: Recipe, *, model_parts: TrainParts, resume: bool = True,
          max_steps: int | None = None, log: Callable[[str], None] = print) -> TrainSummary:
    """Train `model_parts` on the prepared folder up to `recipe.num_steps` (or `max_steps` steps done)."""
    accelerator = Accelerator()
    out, parts, main = Path(out), model_parts, accelerator.is_main_process
    data = PreparedData(prepared)
    order = ClipOrder(data, recipe, accelerator.num_processes)
    meta = {"num_processes": accelerator.num_processes, "manifest": data.fingerprint, "recipe": recipe.to_dict(),
            "base": parts.base_identity}
    found = checkpoints(out)
    if found and not resume:
        raise ConfigError(f"{out} already holds training checkpoints", "resume, or train into a new folder")
    model = accelerator.prepare(parts.transformer)
    params = parts.trainable()
    latest = found[max(found)] if found else None
    ckpt = load_checkpoint(latest) if latest is not None else None
    if ckpt is not None:
        _check_same_run(ckpt["state"], meta, latest)
        load_trainable(params, ckpt["trainable"], f"checkpoint {latest}")
    optimizer = make_optimizer(list(params.values()), recipe)
    scheduler = make_lr_scheduler(optimizer, recipe)
    start = 0
    if ckpt is not None:
        start = ckpt["state"]["step"]
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        order.load_state_dict(ckpt["rng"]["order"])
        set_rng_state(ckpt["rng"]["processes"][accelerator.process_index])
    else:
        set_seed(recipe.seed, device_specific=True)
    stop = recipe.num_steps if max_steps is None else min(max_steps, recipe.num_steps)
    summary = TrainSummary(start, start, finished=False)
    if main:
        log(f"training on {len(data.clips['aist'])} AIST + {len(data.clips['wild'])} in-the-wild clips, "
            f"{accelerator.num_processes} process(es), steps {start} -> {stop} of {recipe.num_steps}")
    autocast = recipe.autocast_dtype(accelerator.device)
    with _LogFile(out / "log.csv", start, main) as log_file, warnings.catch_warnings():
        # diffusers' Mochi RoPE asks for float32 autocast, which CPU autocast ignores (harmlessly), warning.
        warnings.filterwarnings("ignore", message="In CPU autocast, but the target dtype is not supported")
        for step in range(start, stop):
            began = time.perf_counter()
            clip, step_seed = order.next_step()[accelerator.process_index]
            tensors = data.load(clip)
            if step == start:
                _check_clip(tensors, parts, clip.path)
            example = make_example(tensors, step, torch.Generator().manual_seed(step_seed), recipe,
                                   parts.latents_mean, parts.latents_std)
            loss = _loss(model, example, parts, accelerator.device, autocast)
            accelerator.backward(loss)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            mean_loss = accelerator.reduce(loss.detach(), "mean").item()
            summary.losses.append(mean_loss)
            summary.end_step = done = step + 1
            log_file.row(done, mean_loss, lr, example.sigma.item(), example.caption, clip.clip_id,
                         time.perf_counter() - began)
            if main and (done % recipe.log_every == 0 or done == stop):
                recent = summary.losses[-recipe.log_every:]
                log(f"step {done}/{recipe.num_steps} loss {sum(recent) / len(recent):.4f} lr {lr:.3g} "
                    f"{time.perf_counter() - began:.2f} s/step")
            if done % recipe.checkpoint_every == 0 or done == stop:
                rng = {"order": order.state_dict(), "processes": gather_object([rng_state()])}
                if main:
                    summary.checkpoint = save_checkpoint(
                        out, done, trainable=params, optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), rng=rng, state=meta, keep=recipe.keep_checkpoints)
                accelerator.wait_for_everyone()
    summary.finished = summary.end_step == recipe.num_steps
    if summary.finished and main:
        summary.adapter = save_official(parts.transformer, parts.zica, parts.spec, out, recipe.adapter_dtype)
        summary.peft = save_peft(parts.transformer, parts.zica, out / "peft", recipe.adapter_dtype)
        log(f"adapter written: {summary.adapter} (+ config.json), {summary.peft}/")
    accelerator.wait_for_everyone()
    return summary


def _loss(model: torch.nn.Module, example: Example, parts: TrainParts, device: torch.device,
          autocast: torch.dtype | None) -> torch.Tensor:
    dtype = parts.base_dtype
    with torch.autocast(device.type, autocast) if autocast is not None else nullcontext():
        pred = model(hidden_states=example.inputs.to(device, dtype),
                     encoder_hidden_states=example.text_feat.to(device, dtype),
                     timestep=((1 - example.sigma) * 1000).to(device),
                     encoder_attention_mask=example.text_mask.to(device),
                     attention_kwargs={AUDIO_FEAT_KEY: example.audio_feat.to(device)},
                     return_dict=False)[0]
    return F.mse_loss(pred.float(), example.target.to(device))


def _check_same_run(saved: dict, meta: dict, folder: Path) -> None:
    def training(recipe: dict) -> dict:
        return {k: v for k, v in recipe.items() if k not in OUTPUT_ONLY}

    saved = {**saved, "recipe": training(saved.get("recipe", {}))}
    meta = {**meta, "recipe": training(meta["recipe"])}
    for key, what in (("recipe", "recipe"), ("manifest", "prepared data"), ("num_processes", "number of processes"),
                      ("base", "base model")):
        if saved.get(key) != meta[key]:
            raise ConfigError(f"checkpoint {folder} was made with another {what}",
                              f"resume with the {what} the run started with, or train into a new folder")


def _check_clip(tensors: dict[str, torch.Tensor], parts: TrainParts, path: Path) -> None:
    """Refuse a clip whose shapes do not fit the model, with one line instead of a shape error deep inside."""
    config = parts.transformer.config
    got = (tensors["latent_mean"].shape[0], tensors["text_feat"].shape[-1], tensors["audio_feat"].shape[-1])
    want = (config.in_channels, config.text_embed_dim, parts.transformer.audio_projection.projection[0].in_features)
    if got != want:
        raise ConfigError(f"clip cache {path} has (latent channels, text width, music width) {got}, the model "
                          f"needs {want}", "prepare the data with the encoders of this model")


class _LogFile:
    """log.csv, written by the main process only: rows past `keep_through` are dropped first."""

    def __init__(self, path: Path, keep_through: int, enabled: bool):
        self.path, self.keep_through, self.enabled = path, keep_through, enabled
        self.file = None

    def __enter__(self) -> _LogFile:
        if self.enabled:
            kept = []
            if self.path.is_file():
                with self.path.open(newline="") as f:
                    kept = [r for r in csv.DictReader(f) if int(r["step"]) <= self.keep_through]
            with atomic_output(self.path) as tmp, tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, LOG_COLUMNS)
                writer.writeheader()
                writer.writerows(kept)
            self.file = self.path.open("a", newline="")
            self.writer = csv.writer(self.file)
        return self

    def row(self, *values) -> None:
        if self.file is not None:
            self.writer.writerow([repr(v) if isinstance(v, float) else v for v in values])
            self.file.flush()

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()
