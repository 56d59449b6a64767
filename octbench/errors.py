"""The one error type for bad input: the command prints its message and exits with status 2."""

from __future__ import annotations

import difflib


class OctbenchError(Exception):
    """Bad input or configuration. The message names the file, row or column and what to do."""


class NotRankZero(Exception):
    """Raised in the other processes of a distributed run once pretraining is done: only rank 0
    evaluates and writes the run record, the others end quietly with status 0."""


def closest(name: str, choices) -> str:
    """' (did you mean X?)' for the closest choice, or '' when nothing is close."""
    lowered = {str(c).lower(): str(c) for c in choices}
    match = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.5)
    return f" (did you mean {lowered[match[0]]!r}?)" if match else ""
