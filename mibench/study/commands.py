"""`mibench study create|serve|export`: human A/B studies of a run (thin Typer wrappers over `model`,
`server` and `analysis`).

    mibench study create --run paper --models musicinfuser --models mmdiffusion --raters 10 --per-rater 20
    mibench study serve  --run paper --study ID            # http://127.0.0.1:8000/r/<token>, one link per rater
    mibench study export --run paper --study ID > votes.csv
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mibench.cli_common import JsonOpt, RunDirOpt, RunOpt, emit, existing_store, run_dir_of, say

study_app = typer.Typer(help="Human A/B preference studies: create, serve, export.", no_args_is_help=True,
                        rich_markup_mode=None)
StudyOpt = Annotated[str, typer.Option("--study", help="The study id printed by `study create`.")]


@study_app.command("create")
def create(
    models: Annotated[list[str], typer.Option("--models", help="Model A and model B: --models A --models B.")],
    raters: Annotated[int, typer.Option("--raters", min=1, help="How many rater links.")] = 5,
    per_rater: Annotated[int | None, typer.Option("--per-rater", min=1, help="Pairs per rater (default: all).")]
    = None,
    questions: Annotated[str, typer.Option("--questions", help="paper (the paper's four questions) or a YAML "
                                           "file in that layout.")] = "paper",
    checks: Annotated[int, typer.Option("--checks", min=0, help="Attention checks per rater.")] = 1,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    base_url: Annotated[str, typer.Option("--base-url", help="Where `study serve` will be reached.")]
    = "http://127.0.0.1:8000",
    run: RunOpt = "default",
    run_dir: RunDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a blinded pairwise study of two models' videos of the same items; prints one link per rater."""
    from mibench.errors import ConfigError
    from mibench.study.model import create_study, rater_links

    if len(models) != 2:
        raise ConfigError(f"a study compares two models, got {len(models)}", "pass --models A --models B")
    folder = run_dir_of(run, run_dir)
    store = existing_store(folder)
    try:
        study = create_study(store, models[0], models[1], questions=questions, raters=raters, per_rater=per_rater,
                             checks=checks, seed=seed)
        links = rater_links(store, study.id, base_url)
    finally:
        store.close()
    say(f"study {study.id}: {study.model_a} vs {study.model_b}, {len(links)} raters; serve it with "
        f"`mibench study serve --run-dir {folder} --study {study.id}` and send each rater their link:")
    for link in links:
        say(f"  {link['label']}: {link['url']}")
    emit(as_json, {"study": study.id, "raters": links})


@study_app.command("serve")
def serve(
    study: StudyOpt,
    host: Annotated[str, typer.Option("--host", help="127.0.0.1 by default; another host needs --allow-remote.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Serve beyond this machine (plain HTTP: "
                                               "put it behind HTTPS).")] = False,
    run: RunOpt = "default",
    run_dir: RunDirOpt = None,
) -> None:
    """Serve the study's rater pages; every vote is written to the run's store at once."""
    from mibench.study.model import load_study
    from mibench.study.server import serve as run_server

    folder = run_dir_of(run, run_dir)
    store = existing_store(folder)
    try:
        load_study(store, study)
    finally:
        store.close()
    run_server(folder, study, host=host, port=port, allow_remote=allow_remote)


@study_app.command("export")
def export(
    study: StudyOpt,
    out: Annotated[Path | None, typer.Option("--out", help="CSV file (default: stdout).")] = None,
    run: RunOpt = "default",
    run_dir: RunDirOpt = None,
) -> None:
    """Every vote of the study as CSV (rater labels, never their tokens)."""
    from mibench.study.votes import votes_csv

    store = existing_store(run_dir_of(run, run_dir))
    try:
        text = votes_csv(store, study)
    finally:
        store.close()
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        say(f"study {study}: votes written to {out}")
