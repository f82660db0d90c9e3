"""`mibench merge RUN... --into DIR`: a thin Typer wrapper over `mibench.stages.merge.merge_runs`.

    mibench generate ... --shard 0/2 --run-dir shard0     # on one machine
    mibench generate ... --shard 1/2 --run-dir shard1     # on another
    mibench merge shard0 shard1 --into runs/all           # wherever both folders were copied
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mibench.cli_common import JsonOpt, emit, say


def merge_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders to merge, e.g. the shards of `generate --shard`.")],
    into: Annotated[Path, typer.Option("--into", help="The merged run: a new folder or an existing run.")],
    as_json: JsonOpt = False,
) -> None:
    """Merge runs made apart (shards on machines without a shared file system) into one run: rows of every
    table (claims aside) and the video files. Rows with the same key must agree, else nothing is written and
    the conflict is named. Merging again adds nothing."""
    from mibench.stages.merge import merge_runs

    summary = merge_runs(runs, into, log=say)
    added = ", ".join(f"{count} {table}" for table, count in summary.added.items() if count) or "nothing new"
    say(f"merge: {added}; {summary.copied} files copied, {summary.present} already there"
        f"{f', {len(summary.external)} videos outside their run kept as is' if summary.external else ''} -> {into}")
    emit(as_json, summary.as_dict())
