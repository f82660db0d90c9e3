"""Output fit for terminals, pipes and batch logs: no third-party noise unless --verbose, no wrapping when
not a terminal, plain periodic progress lines in a log, help text for every option, flags shown as flags."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import typer
from rich.console import Console

from mibench.cli import app
from mibench.progress import PlainBar, progress_bar

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "80"}


def _mibench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mibench", *args], capture_output=True, text=True, env=ENV,
                          cwd=cwd, timeout=600)


def test_stages_print_only_their_own_lines(tmp_path, music_dir):
    run_dir = tmp_path / ("a-run-folder-with-a-rather-long-name-" * 3)
    made = _mibench("generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "aist", "--music",
                    str(music_dir), "--run-dir", str(run_dir), cwd=tmp_path)
    assert made.returncode == 0
    summary = [line for line in made.stderr.splitlines() if line.startswith("synthetic-onbeat: ")]
    assert len(summary) == 1 and summary[0].endswith(str(run_dir / "videos" / "synthetic-onbeat"))  # not wrapped
    assert "synthetic-onbeat: 2/2 (100%)" in made.stderr  # plain progress line: stderr is not a terminal
    broken = next((run_dir / "videos" / "synthetic-onbeat").glob("*.mp4"))
    broken.write_bytes(broken.read_bytes()[:2000])  # a truncated file: FFmpeg and decord complain natively
    scored = _mibench("score", "--preset", "tiny", "--max-new-tokens", "2", "--run-dir", str(run_dir), cwd=tmp_path)
    assert scored.returncode == 1
    lines = scored.stderr.strip().splitlines()
    assert not any("Warning" in line or "[mov," in line or "video_reader" in line for line in lines), lines
    assert any(line.startswith(f"failed {broken.stem}: ") for line in lines)
    assert all(line.startswith(("score with videollama2: ", "videollama2: ", "failed ", "warning: "))
               for line in lines), lines


NATIVE = """
import sys
from mibench.errors import MediaError
from mibench.media.video import read_frames
from mibench.quiet import quiet_libraries
quiet_libraries(verbose=sys.argv[2] == "verbose")
try:
    read_frames(sys.argv[1], [0])
except MediaError as exc:
    print(exc.line())
"""


def test_native_decoder_lines_are_muted_unless_verbose(tmp_path):
    from mibench.media.video import write_mp4

    clip = tmp_path / "clip.mp4"
    write_mp4(clip, np.zeros((20, 32, 32, 3), np.uint8), 10)
    clip.write_bytes(clip.read_bytes()[:-3000])  # no moov atom: decord's FFmpeg and decord itself complain
    quiet = subprocess.run([sys.executable, "-c", NATIVE, str(clip), "quiet"], capture_output=True, text=True,
                           env=ENV, timeout=120)
    assert quiet.stderr == "" and "cannot be decoded as video" in quiet.stdout
    loud = subprocess.run([sys.executable, "-c", NATIVE, str(clip), "verbose"], capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert "moov atom not found" in loud.stderr and "cannot be decoded as video" in loud.stdout


def test_plain_progress_lines_when_stderr_is_not_a_terminal():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=40)
    with progress_bar(console, "generate a-model-with-a-long-name", 3, interval=0.0) as bar:
        assert isinstance(bar, PlainBar)
        for _ in range(3):
            bar.advance()
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("generate a-model-with-a-long-name: 1/3 (33%), ")
    assert "/min" in lines[0] and "ETA" in lines[0] and lines[-1].startswith("generate a-model-with-a-long-name: 3/3")
    quiet = io.StringIO()
    with progress_bar(Console(file=quiet, force_terminal=False), "x", 100) as bar:
        for _ in range(99):
            bar.advance()
    assert quiet.getvalue() == ""  # at most one line per interval (30 s), and one at the end


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((prefix + name, command))
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix}{name} ")
    return found


def test_every_option_has_help_and_flags_show_as_flags():
    root = typer.main.get_command(app)
    for name, command in _commands(root):
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"mibench {name} {param.opts[0]} has no help"
        text = command.get_help(click.Context(command, info_name=name))
        assert "<bool>" not in text and "BOOLEAN" not in text, name
    shard = dict(_commands(root))["generate"].get_help(click.Context(root, info_name="generate"))
    assert "0/4 .. 3/4" in " ".join(shard.split())
