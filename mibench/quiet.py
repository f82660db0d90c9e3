"""What reaches a user's terminal besides mibench's own lines: nothing from third-party libraries unless
`mibench --verbose`.

`quiet_libraries()` (called by the CLI unless `--verbose`) silences Python warnings, the loggers of
transformers, diffusers, huggingface_hub and PyAV's FFmpeg log; `native_stderr_muted()` points file
descriptor 2 at /dev/null around native code that writes there directly (decord's FFmpeg and its own
error lines, mediapipe's C++ start-up lines), unless verbose. Errors still reach the user: every library
failure is turned into a one-line MibenchError by the code that called it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_VERBOSE = False
LIBRARY_LOGGERS = ("transformers", "diffusers", "huggingface_hub", "accelerate", "peft", "numba", "librosa")


def quiet_libraries(verbose: bool = False) -> None:
    """Silence third-party warnings and logs (see the module docstring); `verbose` keeps them all."""
    global _VERBOSE
    _VERBOSE = verbose
    if verbose:
        return
    warnings.filterwarnings("ignore")
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in ("transformers", "diffusers"):
        try:
            library = __import__(f"{module}.utils.logging", fromlist=["set_verbosity_error"])
        except ImportError:  # noqa: PERF203 - optional: only what is installed is silenced
            continue
        library.set_verbosity_error()
        library.disable_progress_bar()  # their tqdm bars (e.g. "Writing model shards") are not mibench's
    import av.logging

    av.logging.set_level(None)


@contextmanager
def native_stderr_muted(always: bool = False) -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null (native code writes there directly, not via sys.stderr),
    unless `mibench --verbose` (or `always`, for output that is never useful); C's buffered streams are
    flushed before it is restored, so what they hold goes to /dev/null too."""
    if _VERBOSE and not always:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        ctypes.CDLL(None).fflush(None)
        os.dup2(saved, 2)
        os.close(saved)
