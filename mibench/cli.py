"""The `mibench` command line (Typer): thin wrappers over the library functions.

    mibench demo                                   # the whole pipeline on tiny presets, on a CPU
    mibench generate --model musicinfuser --suite paper --aist-music ~/aist/wav
    mibench generate --videos my_videos/ --name mymodel      # bring your own mp4s
    mibench score --model musicinfuser --judge videollama2
    mibench metrics
    mibench report
    mibench list | doctor | bench generate|judge|metrics|gpu
    mibench prepare | train | select-layers          # training adapters
    mibench study create|serve|export                # human A/B studies
    mibench merge runs/shard-* --into runs/all       # shard runs made without a shared file system
    (generate, score and metrics take --executor ray for a Ray cluster)

Every command takes `--run NAME` (folder `runs/NAME`) or `--run-dir DIR`; commands that compute
numbers take `--json` (one JSON document on stdout with every number they stored, logs on stderr).
Exit codes: 0 all done; 1 some items failed (each named, the rest done and kept); 2 user error (one
line: cause and fix).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from mibench.cli_common import (
    DeviceOpt,
    ExecutorOpt,
    JsonOpt,
    LimitOpt,
    MaxRetriesOpt,
    NoSharedFsOpt,
    PresetOpt,
    RayAddressOpt,
    RunDirOpt,
    RunOpt,
    SeedOpt,
    ShardOpt,
    WorkersOpt,
    check_preset,
    chosen_models,
    emit,
    err,
    existing_store,
    finish,
    run_dir_of,
    say,
)
from mibench.errors import ConfigError, MibenchError, StoreError
from mibench.speed.commands import bench_app
from mibench.stages.merge_command import merge_command
from mibench.study.commands import study_app
from mibench.train.commands import prepare_command, select_layers_command, train_command

EXIT_CODES = ("Exit codes: 0 all done; 1 some items failed (each named in the summary, the rest done and kept); "
              "2 user error (one line: cause and fix).")
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Generate, score and report music-to-dance videos (MusicInfuser benchmark). " + EXIT_CODES)
app.add_typer(bench_app, name="bench")
app.command("prepare")(prepare_command)
app.command("train")(train_command)
app.command("select-layers")(select_layers_command)
app.command("merge")(merge_command)
app.add_typer(study_app, name="study")


@app.callback()
def _options(verbose: Annotated[bool, typer.Option("--verbose", help="Also show third-party warnings and logs "
                                                   "(quiet by default).")] = False) -> None:
    from mibench.quiet import quiet_libraries

    quiet_libraries(verbose)


@app.command()
def generate(
    context: typer.Context,
    model: Annotated[str | None, typer.Option("--model", help="Generator name (see `mibench list`).")] = None,
    as_name: Annotated[str | None, typer.Option("--as", help="Store the videos under this model name (a variant "
                                                "with other settings, e.g. musicinfuser-8steps).")] = None,
    suite: Annotated[str, typer.Option("--suite", help="paper, aist or prompts.")] = "paper",
    aist_music: Annotated[Path | None, typer.Option("--aist-music", help="Folder with the AIST music.")] = None,
    music: Annotated[Path | None, typer.Option("--music", help="Folder of your own audio files.")] = None,
    videos: Annotated[Path | None, typer.Option("--videos", help="Register a folder of existing mp4s.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Model name for --videos.")] = None,
    preset: PresetOpt = "full",
    seed: SeedOpt = 0,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds per item: seed, seed+1, ...")] = 1,
    frames: Annotated[int | None, typer.Option("--frames", min=1, help="Frames per video (default: card).")] = None,
    tempo: Annotated[float, typer.Option("--tempo", min=0.25, max=4.0, help="Music speed, e.g. 0.75 or 1.25.")] = 1.0,
    weights: Annotated[Path | None, typer.Option("--weights", help="Folder with your own weights.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Denoising steps (default: card).")] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="Weights: fp32 or bf16 (latents stay fp32).")] = None,
    offload: Annotated[str | None, typer.Option("--offload", help="CPU offload on GPU: model or sequential.")] = None,
    vae_tiling: Annotated[bool, typer.Option("--vae-tiling", help="Decode the VAE in tiles (less memory).")] = False,
    fuse_lora: Annotated[bool, typer.Option("--fuse-lora", help="Merge the LoRA into the weights.")] = False,
    device: DeviceOpt = None,
    limit: LimitOpt = None,
    shard: ShardOpt = None,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = None,
    no_shared_fs: NoSharedFsOpt = False,
    max_retries: MaxRetriesOpt = None,
    run: RunOpt = "default",
    run_dir: RunDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate the videos of a suite with a model, or register your own videos (--videos --name).

    A model name stands for one set of settings in a run: other settings need --as NAME or a new run.
    Options a generator does not use are refused, and so is any option but --name, --run/--run-dir and
    --json with --videos. --executor ray spreads the jobs over Ray actors (this
    process alone writes the store). Exit codes: 0 all done, 1 some jobs failed, 2 user error.
    """
    from mibench.stages.generate import generate_jobs
    from mibench.store import Store

    folder = run_dir_of(run, run_dir)
    if videos is not None:
        _refuse_generate_options(context)
        _register(folder, videos, name, as_json)
        return
    if name is not None:
        raise ConfigError("--name names registered videos (--videos DIR), but none are given",
                          "add --videos DIR, or use --as NAME to store generated videos under another name")
    if not model:
        raise ConfigError("no model given", "pass --model NAME (see `mibench list`) or --videos DIR --name NAME")
    check_preset(preset)
    from mibench.generators.base import build_generator
    from mibench.progress import progress_bar
    from mibench.provenance import session
    from mibench.stages.executor import make_executor
    from mibench.suite.jobs import expand, select_shard
    from mibench.suite.music import resolve_music

    speed = {"steps": steps, "dtype": dtype, "offload": offload, "vae_tiling": vae_tiling or None,
             "fuse_lora": fuse_lora or None}
    build = partial(build_generator, model, preset, weights=weights, device=device,
                    options={"num_frames": frames, **speed})
    runner = make_executor(executor, address=ray_address, workers=workers, shared_fs=not no_shared_fs,
                           max_retries=max_retries, build=build, log=say)
    generator = build()
    stored_as = as_name or model
    tracks = resolve_music(aist_music, music)
    jobs = select_shard(expand(suite, stored_as, tracks, seeds=[seed + i for i in range(seeds)],
                               num_frames=generator.num_frames, tempo=tempo, limit=limit), shard)
    store = Store.open(folder)
    options = {"model": model, "as": stored_as, "preset": preset, "suite": suite, "seed": seed, "seeds": seeds,
               "tempo": tempo, "limit": limit, "shard": shard, "weights": weights, "device": generator.device,
               "num_frames": generator.num_frames, "fingerprint": generator.fingerprint, **speed,
               "executor": executor, "workers": workers}
    with session(store, "generate", options), progress_bar(err, f"generate {stored_as}", len(jobs)) as bar:
        summary = generate_jobs(folder, store, generator, jobs, executor=runner, advance=bar.advance, log=say)
    elsewhere = f", {summary.elsewhere} being made by another process" if summary.elsewhere else ""
    say(f"{stored_as}: {summary.done} generated, {summary.skipped} already done{elsewhere}, {len(summary.failed)} "
        f"failed -> {folder / 'videos' / stored_as}")
    stored = {v["job_id"]: v for v in store.videos(stored_as, status=None)}
    rows = [(job, stored.get(job.job_id, {})) for job in jobs]
    emit(as_json, {"run_dir": str(folder), "model": stored_as, "generator": model,
                   "fingerprint": generator.fingerprint, **summary.as_dict(),
                   "videos": [{"job_id": job.job_id, "item_id": job.item_id, "path": video.get("path"),
                               "status": video.get("status", "not generated"),
                               "music_offset_s": video.get("info", {}).get("music_offset_s")} for job, video in rows]})
    finish(summary)


REGISTER_USES = frozenset({"videos", "name", "run", "run_dir", "as_json"})  # generate's options --videos uses


def _refuse_generate_options(context: typer.Context) -> None:
    """With --videos, refuse (one line) every generate option given that registering does not use: any
    value other than its default."""
    given = [param.opts[0] for param in context.command.params
             if param.name not in REGISTER_USES and context.params.get(param.name, param.default) != param.default]
    if given:
        raise ConfigError(f"{', '.join(given)}: options of generating videos, but --videos registers existing ones",
                          "registering takes only --name, --run/--run-dir and --json: drop the others or --videos")


def _register(folder: Path, videos: Path, name: str | None, as_json: bool) -> None:
    from mibench.provenance import session
    from mibench.stages.register import register_videos
    from mibench.store import Store

    if not name:
        raise ConfigError("--videos needs --name NAME", "the name the videos appear under in reports")
    store = Store.open(folder)
    with session(store, "register", {"videos": videos, "name": name}):
        jobs, warnings = register_videos(store, videos, name)
    for warning in warnings:
        say(f"warning {warning}")
    skipped = len(list(Path(videos).glob("*.mp4"))) - len(jobs)  # files that could not be read
    say(f"registered {len(jobs)} videos as model {name!r} in {folder}" + (f", {skipped} skipped" if skipped else ""))
    emit(as_json, {"run_dir": str(folder), "model": name, "registered": len(jobs), "skipped": skipped,
                   "warnings": warnings})
    if skipped:
        sys.exit(1)


@app.command()
def score(
    model: Annotated[list[str] | None, typer.Option("--model", help="Score only these models.")] = None,
    judge: Annotated[str, typer.Option("--judge", help="Judge name (see `mibench list`).")] = "videollama2",
    questions: Annotated[str, typer.Option("--questions", help="Question set name or YAML path.")] = "paper",
    mode: Annotated[str, typer.Option("--mode", help="greedy (paper) or expected (score distribution).")] = "greedy",
    runs: Annotated[int, typer.Option("--runs", min=1, help="Runs per video; runs > 0 jitter frames.")] = 1,
    modal: Annotated[str | None, typer.Option("--modal", help="av (video + music, paper) or video "
                                              "(default: the judge card's).")] = None,
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens", min=1, help="Longest answer in tokens "
                                                       "(default: the judge card's, 2048 as the official "
                                                       "code).")] = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="Judge checkpoint folder.")] = None,
    preset: PresetOpt = "full",
    seed: SeedOpt = 0,
    device: DeviceOpt = None,
    limit: LimitOpt = None,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = None,
    no_shared_fs: NoSharedFsOpt = False,
    max_retries: MaxRetriesOpt = None,
    run: RunOpt = "default",
    run_dir: RunDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the judge the question set about every video of the run and store its answers.

    Answers are kept per evaluation (judge settings, weights, mode, seed and question texts): changed
    settings score again, beside the earlier answers. --executor ray spreads the videos over Ray actors.
    Exit codes: 0 all done, 1 some videos failed, 2 user error.
    """
    from mibench.judges.base import build_judge
    from mibench.progress import progress_bar
    from mibench.provenance import session
    from mibench.stages.executor import make_executor
    from mibench.stages.score import MODES, score_videos
    from mibench.suite.prompts import load_question_set

    check_preset(preset)
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}", f"choose one of: {', '.join(MODES)}")
    if modal not in (None, "av", "video"):
        raise ConfigError(f"unknown modal {modal!r}", "choose av or video")
    store = existing_store(run_dir_of(run, run_dir))
    qset = load_question_set(questions)
    models = chosen_models(store, model)
    build = partial(build_judge, judge, preset, checkpoint=checkpoint, device=device,
                    options={"modal": modal, "max_new_tokens": max_new_tokens})
    runner = make_executor(executor, address=ray_address, workers=workers, shared_fs=not no_shared_fs,
                           max_retries=max_retries, build=build, log=say)
    scorer = build()
    total = len([v for m in models for v in store.videos(m)][:limit])
    options = {"judge": judge, "preset": preset, "questions": qset.name, "mode": mode, "runs": runs,
               "modal": scorer.modal, "max_new_tokens": scorer.max_new_tokens, "seed": seed, "models": models,
               "checkpoint": checkpoint, "device": scorer.device, "executor": executor, "workers": workers}
    with session(store, "score", options), progress_bar(err, f"score with {judge}", total) as bar:
        summary = score_videos(store, scorer, qset, models=models, mode=mode, runs=runs, seed=seed, limit=limit,
                               executor=runner, advance=bar.advance, log=say)
    missing = sum(r["score"] is None for r in summary.results)
    share = f" ({missing / len(summary.results):.0%})" if summary.results else ""
    elsewhere = f", {summary.elsewhere} being scored by another process" if summary.elsewhere else ""
    say(f"{judge}: {summary.done} video runs scored, {summary.skipped} already scored{elsewhere}, "
        f"{len(summary.failed)} failed; {len(summary.results)} answers, {missing} missing{share}")
    if summary.results and missing * 2 >= len(summary.results):
        say(f"warning: {missing} of {len(summary.results)} answers{share} could not be parsed as a score; they "
            "count as missing, never as 0 (see the raw answers on the report's model pages)")
    emit(as_json, {"judge": judge, "mode": mode, "evaluation": summary.results[0]["evaluation"] if summary.results
                   else None, **summary.as_dict(), "answers": summary.results,
                   "models": _score_summary(summary.results)})
    finish(summary)


def _score_summary(results: list[dict]) -> dict:
    """Per model: videos, answers, missing answers and the mean of the parsed scores."""
    out: dict[str, dict] = {}
    for row in results:
        entry = out.setdefault(row["model"], {"videos": set(), "answers": 0, "missing": 0, "total": 0.0})
        entry["videos"].add(row["job_id"])
        entry["answers"] += 1
        if row["score"] is None:
            entry["missing"] += 1
        else:
            entry["total"] += row["score"]
    return {m: {"videos": len(e["videos"]), "answers": e["answers"], "missing": e["missing"],
                "mean_score": e["total"] / (e["answers"] - e["missing"]) if e["answers"] > e["missing"] else None}
            for m, e in out.items()}


@app.command()
def metrics(
    model: Annotated[list[str] | None, typer.Option("--model", help="Only these models.")] = None,
    limit: LimitOpt = None,
    pose: Annotated[bool, typer.Option("--pose", help="Also the 2-D pose path (BAS, Dist_k; needs mediapipe, "
                                       "see `mibench doctor`).")] = False,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Videos measured at once, in that many "
                                                "processes (default 1; the pose path runs at about 1.6x real time per "
                                                "process), or Ray actors with --executor ray (default: the cluster's "
                                                "CPUs).")] = None,
    recipe: Annotated[list[str] | None, typer.Option("--recipe", help="BAS recipe, repeatable: fact (AI "
                                                     "Choreographer), bailando (Bailando) or mibench (mibench's "
                                                     "own); default both published ones.")] = None,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    no_shared_fs: NoSharedFsOpt = False,
    max_retries: MaxRetriesOpt = None,
    run: RunOpt = "default",
    run_dir: RunDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compute the objective music-motion metrics of every video of the run.

    --executor ray measures the videos on Ray actors (one CPU each). Exit codes: 0 all done, 1 some videos
    could not be measured, 2 user error.
    """
    from mibench.metrics.bas import PUBLISHED
    from mibench.metrics.bas import recipe as bas_recipe
    from mibench.progress import progress_bar
    from mibench.provenance import session
    from mibench.stages.executor import make_executor
    from mibench.stages.measure import compute_run_metrics

    runner = make_executor(executor, address=ray_address, workers=workers, shared_fs=not no_shared_fs,
                           max_retries=max_retries, log=say, local_workers=True)
    store = existing_store(run_dir_of(run, run_dir))
    models = chosen_models(store, model)
    total = len([v for m in models for v in store.videos(m)][:limit])
    recipes = tuple(dict.fromkeys(recipe or PUBLISHED))
    for name in recipes:
        bas_recipe(name)  # an unknown name stops here, before any work
    local = executor == "local"  # its --workers are processes, 1 by default
    options = {"models": models, "limit": limit, "pose": pose, "workers": (workers or 1) if local else workers,
               "recipes": recipes, "executor": executor}
    with session(store, "metrics", options), progress_bar(err, "metrics", total) as bar:
        summary = compute_run_metrics(store, models=models, limit=limit, pose=pose, workers=workers or 1,
                                      recipes=recipes, executor=None if local else runner, advance=bar.advance,
                                      log=say)
    elsewhere = f", {summary.elsewhere} being measured by another process" if summary.elsewhere else ""
    say(f"metrics: {summary.done} videos measured, {summary.skipped} already measured{elsewhere}, "
        f"{len(summary.failed)} failed")
    emit(as_json, {**summary.as_dict(), "videos": summary.results})
    finish(summary)


@app.command()
def report(
    fmt: Annotated[str, typer.Option("--format", help="html (writes report/) or md (prints the tables).")] = "html",
    reference: Annotated[bool, typer.Option("--reference/--no-reference",
                                            help="Add the numbers papers report (reports/*.yaml).")] = True,
    dist_reference: Annotated[str | None, typer.Option("--dist-reference", help="Normalise Dist_k with this "
                                                       "model's videos (e.g. the real AIST dances).")] = None,
    min_valid_mass: Annotated[float | None, typer.Option(
        "--min-valid-mass", min=0.0, max=1.0,
        help="Expected mode: leave out (as missing) answers whose valid mass is below this; default: flag "
             "those below 0.5 only.")] = None,
    exclude_failed_raters: Annotated[bool, typer.Option(
        "--exclude-failed-raters", help="Human studies: leave out raters who failed an attention check.")] = False,
    seed: SeedOpt = 0,
    run: RunOpt = "default",
    run_dir: RunDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Render the run's leaderboard: report/index.html, leaderboard.csv, slices.csv, leaderboard.json and
    leaderboard.md (html), or the Markdown on stdout (md). --json prints the leaderboard's numbers as one
    JSON document. Every format comes from one aggregate."""
    folder = run_dir_of(run, run_dir)
    store = existing_store(folder)
    if dist_reference is not None and dist_reference not in (models := store.models()):
        store.close()
        raise ConfigError(f"--dist-reference {dist_reference!r} is not a model of this run",
                          f"models in this run: {models}")
    if fmt not in ("html", "md"):
        store.close()
        raise ConfigError(f"unknown format {fmt!r}", "choose html or md")
    if changed := sorted(store.changed_videos(store.videos())):
        store.close()
        raise StoreError(f"{len(changed)} video file(s) changed after they were recorded (job {changed[0]}"
                         f"{' and others' if len(changed) > 1 else ''}): the report would show another file's numbers",
                         "restore the files, or delete them and run generate, score and metrics again")
    options = {"reference": reference, "seed": seed, "dist_reference": dist_reference,
               "min_valid_mass": min_valid_mass, "exclude_failed_raters": exclude_failed_raters}
    if fmt == "md":
        from mibench.report.text import collect, leaderboard_json, markdown

        try:
            data = collect(store, folder.name, **options)
        finally:
            store.close()
        text = markdown(data)
        if as_json:
            emit(True, {**json.loads(leaderboard_json(data)), "markdown": text})
        else:
            sys.stdout.write(text)
        return
    store.close()
    from mibench.report.render import render_report

    index = render_report(folder, **options)
    say(f"report: {index}")
    if as_json:
        document = json.loads((index.parent / "leaderboard.json").read_text(encoding="utf-8"))
        emit(True, {"report": str(index), "csv": str(index.parent / "leaderboard.csv"),
                    "json": str(index.parent / "leaderboard.json"), **document})


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List models, judges, suites, prompt sets and question sets."""
    from mibench.cards import cards
    from mibench.suite.jobs import SUITES
    from mibench.suite.prompts import prompt_sets, question_sets

    data = {
        "generators": {c.name: c.title for c in cards("generator")},
        "judges": {c.name: c.title for c in cards("judge")},
        "suites": SUITES,
        "prompt_sets": prompt_sets(),
        "question_sets": question_sets(),
    }
    if as_json:
        emit(True, data)
        return
    out = Console(soft_wrap=True, highlight=False)
    for section, items in data.items():
        out.print(f"[bold]{section.replace('_', ' ')}[/bold]")
        for key in items:
            out.print(f"  {key:20s} {items[key] if isinstance(items, dict) else ''}")


@app.command()
def doctor(as_json: JsonOpt = False) -> None:
    """Versions, devices, and which weights are found locally."""
    from mibench.doctor import diagnose

    data = diagnose()
    if as_json:
        emit(True, data)
        return
    out = Console(soft_wrap=True, highlight=False)
    for section, items in data.items():
        out.print(f"[bold]{section}[/bold]")
        for key, value in items.items():
            out.print(escape(f"  {key:40s} {value}"))


@app.command()
def demo(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Where the demo run goes.")] = Path("runs/demo"),
    as_json: JsonOpt = False,
) -> None:
    """The whole pipeline on tiny presets: synthetic music, every generator, judge, metrics, report."""
    from mibench.demo import run_demo

    summary = run_demo(run_dir, console=err)
    emit(as_json, summary)


def main() -> None:
    """Run the command line: user errors (bad options included) as one `error:` line and exit 2, Ctrl-C as
    exit 130 with finished work kept, a CPU-only torch asked for CUDA as one line."""
    try:
        code = app(standalone_mode=False)
    except KeyboardInterrupt:
        _interrupted()
    except Exception as exc:
        _fail(exc)
    sys.exit(code if isinstance(code, int) else 0)


def _interrupted() -> None:
    err.print("interrupted; finished work is kept in the run's store")
    sys.exit(130)


def _fail(exc: Exception) -> None:
    """One line for what the user can fix; anything else is raised (a bug shows its traceback)."""
    kind = type(exc).__name__
    if kind == "Abort":  # click's Ctrl-C
        _interrupted()
    if kind == "NoArgsIsHelpError":  # `mibench` alone: the help
        err.print(exc.format_message(), markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    if hasattr(exc, "format_message") and getattr(exc, "exit_code", None) == 2:  # click's usage errors
        line = " ".join(exc.format_message().split())
        err.print(f"[bold red]error:[/bold red] {escape(line)} (see --help)", highlight=False, soft_wrap=True)
        sys.exit(2)
    found = None
    if isinstance(exc, MibenchError):
        found = exc
    elif isinstance(exc, AssertionError) and str(exc).startswith("Torch not compiled with CUDA"):
        found = ConfigError("this torch is a CPU build: it cannot use CUDA",
                            "pass --device cpu, or install a CUDA build of torch on a GPU machine")
    elif isinstance(exc, OSError | MemoryError | RuntimeError | sqlite3.Error):
        from mibench.faults import environment_error

        found = environment_error(exc)
    if found is None:
        raise exc
    err.print(f"[bold red]error:[/bold red] {escape(found.line())}", highlight=False, soft_wrap=True)
    sys.exit(2)


if __name__ == "__main__":  # `accelerate launch -m mibench.cli train ...`
    main()
