"""What every `mibench` command shares: the option types, where a run lives, and the output
conventions (one JSON document on stdout with `--json`; logs on stderr, printed as is; exit codes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mibench.errors import ConfigError

err = Console(stderr=True, soft_wrap=True)

RunOpt = Annotated[str, typer.Option("--run", help="Run name; the run folder is runs/NAME.")]
RunDirOpt = Annotated[Path | None, typer.Option("--run-dir", help="Run folder (overrides --run).")]
PresetOpt = Annotated[str, typer.Option("--preset", help="tiny (local random weights) or full (real weights).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the numbers as one JSON document on stdout.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N jobs/videos.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of every random draw.")]
ShardOpt = Annotated[str | None, typer.Option("--shard", help="Only shard I of N of the jobs: I/N with I from 0 to "
                                             "N-1 (0/4 .. 3/4), e.g. $SLURM_ARRAY_TASK_ID/4 with --array=0-3.")]
def _device(value: str | None) -> str | None:
    """`--device` as torch reads it, or one line saying why not."""
    if value is not None:
        import torch

        try:
            torch.device(value)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"--device {value!r} is not a torch device", "use e.g. cpu, cuda or cuda:1") from exc
    return value


DeviceOpt = Annotated[str | None, typer.Option("--device", callback=_device,
                                               help="torch device, e.g. cpu or cuda (default cpu).")]
ExecutorOpt = Annotated[str, typer.Option("--executor", help="Where the jobs run: local (this process) or ray (Ray "
                                          "actors, one per GPU, each loading the model once; needs mibench[ray]).")]
RayAddressOpt = Annotated[str | None, typer.Option("--ray-address", help="Ray cluster to join with --executor ray "
                                                   "(default: $RAY_ADDRESS, else a new local cluster).")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", min=1, help="Ray actors with --executor ray (default: "
                                                "the cluster's GPUs for a model on CUDA, else 2).")]
MaxRetriesOpt = Annotated[int | None, typer.Option("--max-retries", min=0, help="With --executor ray: times a job "
                                                 "whose worker died is run again before it is recorded as failed "
                                                 "(default 2).")]
NoSharedFsOpt = Annotated[bool, typer.Option("--no-shared-fs", help="Ray workers never touch the run folder: videos "
                                             "travel through Ray and this process writes them (default: each worker "
                                             "checks whether it sees the run folder).")]


def run_dir_of(run: str, run_dir: Path | None) -> Path:
    """The run folder `--run-dir`, else runs/<run>; one line when a file stands where it must be a folder."""
    folder = run_dir if run_dir is not None else Path("runs") / run
    blocked = next((path for path in (folder, *folder.parents) if path.exists() and not path.is_dir()), None)
    if blocked is not None:
        raise ConfigError(f"run folder {folder} cannot be used: {blocked} is a file", "give a folder for --run-dir")
    return folder


def emit(as_json: bool, data: dict) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def say(line: str) -> None:
    """A log line on stderr, printed as is (no markup, no wrapping)."""
    err.print(line, markup=False, highlight=False, soft_wrap=True)


def finish(summary) -> None:
    """Name every failed item (one line each), then exit with the stage's code: 1 when some failed, else 0."""
    for job_id, error in summary.failed:
        say(f"failed {job_id}: {error}")
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def check_preset(preset: str) -> None:
    from mibench.cards import PRESETS

    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}", f"choose one of: {', '.join(PRESETS)}")


def existing_store(folder: Path):
    from mibench.store import STORE_NAME, Store

    if not (folder / STORE_NAME).is_file():
        raise ConfigError(f"no mibench run in {folder}", "run `mibench generate` first or pass --run/--run-dir")
    return Store.open(folder)


def chosen_models(store, given: list[str] | None) -> list[str]:
    """The models a stage works on: those given (each must be in the run), else every model of the run."""
    models = given or store.models()
    unknown = sorted(set(models) - set(store.models()))
    if unknown:
        raise ConfigError(f"run has no videos of {', '.join(unknown)}", f"models in this run: {store.models()}")
    return models
