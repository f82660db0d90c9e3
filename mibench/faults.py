"""Failures of the environment a command meets mid-way (a full disk, a read-only or vanished run folder,
no memory left), turned into one line: the cause, what to do, and that finished work is kept.

Outputs are written to temp names and renamed (`media.audio.atomic_output`) and the store writes in
transactions, so when such a failure stops a command, every finished result is already safe and the
one in flight leaves nothing behind; re-running resumes.
"""

from __future__ import annotations

import errno
import sqlite3

from mibench.errors import MibenchError

KEPT = "finished work is kept; re-run to resume"
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def environment_error(exc: BaseException) -> MibenchError | None:
    """The one-line error for a failure of the environment, or None when `exc` is not one (a bug)."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "disk is full" in text or "disk I/O error" in text:
            return MibenchError(f"the results store cannot be written: {text}", f"free disk space; {KEPT}")
        if "readonly" in text or "unable to open" in text:
            return MibenchError(f"the results store cannot be written: {text}",
                                f"make the run folder writable or use another --run-dir; {KEPT}")
        return None
    if _out_of_memory(exc):
        return MibenchError(f"out of memory: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                            "use fewer --frames, --dtype bf16, --offload model or --vae-tiling, or a larger "
                            f"device; {KEPT}")
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL | _NOT_WRITABLE:
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        fix = "free disk space" if exc.errno in _DISK_FULL else "make the run folder writable or use another --run-dir"
        return MibenchError(f"cannot write{where} ({exc.strerror or exc})", f"{fix}; {KEPT}")
    return None


def _out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    import torch

    return isinstance(exc, torch.OutOfMemoryError)
