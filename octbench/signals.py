"""SIGTERM and SIGINT: a run that is stopped says so with a non-zero status, and keeps what it can.

Schedulers (SLURM, Kubernetes, a shell's `timeout`) send SIGTERM before they kill; a user presses
Ctrl+C (SIGINT). Outside pretraining either signal ends the command at once with status 128 + the
signal number (143, 130). During pretraining the signal is deferred to the end of the current
step (the next one when it lands after the step's callbacks): the checkpoint is saved there,
training stops, and the next identical command resumes from it. A second signal while that
happens ends the command at once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(Exception):
    """The command was stopped by a signal; `checkpoint` is what a rerun resumes from, if any."""

    def __init__(self, signum: int, checkpoint: Path | None = None, step: int | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.checkpoint, self.step = signum, checkpoint, step

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    def message(self) -> str:
        name = signal.Signals(self.signum).name
        if self.checkpoint is None:
            return f"stopped by {name}; nothing was recorded for the unfinished run"
        return (f"stopped by {name} after pretraining step {self.step}; checkpoint saved at {self.checkpoint}; "
                "give the same command again to resume from it")


def raise_interrupted(signum: int, frame) -> None:
    raise Interrupted(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """For a whole command: SIGTERM and SIGINT raise Interrupted (SIGTERM would otherwise kill the
    process without cleanup, and SIGINT raise a KeyboardInterrupt that libraries catch)."""
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, raise_interrupted)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
