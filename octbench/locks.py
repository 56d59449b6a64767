"""Locks that keep two octbench processes off one run folder or one cache entry.

Two identical runs started together would share a checkpoint folder and write one record twice
over; two processes building one cache entry would decode every image twice. Each takes an
exclusive `flock` on a small lock file beside what it writes, holding its process id so the message
can name the holder. The kernel drops the lock when its process dies, so a killed run never leaves
a stale lock behind; the file itself is removed by the holder when it is done.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from octbench.errors import OctbenchError

# Set in the processes a distributed launch starts (Lightning, torchrun, srun). Only the
# launching process of rank 0 locks: the others re-run the same command for the same run.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


class RunBusy(OctbenchError):
    """Another process holds the lock: this process makes nothing."""


def launched_as_rank_zero() -> bool:
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def lock_holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid else "another process"


@contextmanager
def exclusive(path: Path, what: str, wait: bool) -> Iterator[None]:
    """Hold the lock at `path` for the block. `wait`: block until the holder is done (a cache
    entry: seconds); otherwise refuse at once with a message naming `what` and the holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(handle)
            raise RunBusy(f"{what} is being made by {lock_holder(path)} (lock {path}); wait for it to "
                                "finish (its record is then reused) or stop it, and run again") from None
        try:
            if os.stat(path).st_ino == os.fstat(handle).st_ino:
                break  # the file we locked is still the lock file
        except FileNotFoundError:
            pass
        os.close(handle)  # its holder removed it between our open and our lock: lock the new one
    os.ftruncate(handle, 0)
    os.write(handle, f"{os.getpid()}\n".encode())
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # removed while still held, so no one locks a file on its way out
        os.close(handle)
