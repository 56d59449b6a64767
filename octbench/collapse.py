"""Did pretraining learn anything? Two signs that it did not, recorded in every run.

- The loss sits at its trivial level: the value of a network that tells no image apart from
  another (ln(2B - 1) for contrastive losses over 2B views, ln K for K uniform prototypes; see
  Method.trivial_loss). A run has not left it when its last tenth of logged losses averages within
  2% of it and has not fallen by more than 2% of it since the halfway step (the tenth ending
  there). The second test matters because a loss may start well above the trivial level (NT-Xent
  at a low temperature starts near 7.4 for ln 255 = 5.54) and still be falling through it at the
  last step: such a curve is learning. A curve that rises towards the level (DINO's, as its
  teacher's outputs become uniform) is not.
- The embedding has collapsed: the frozen features of the validation B-scans span few directions.
  The effective rank (Roy and Vetterli 2007: the exponential of the entropy of the normalised
  singular values of the centred features) counts them; a collapsed encoder maps every image to
  nearly one point, and its per-dimension spread is near zero.

A run with either sign is marked collapsed; tables and figures mark it and do not rank it among the
methods.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TRIVIAL_TOLERANCE = 0.02  # relative distance of the final loss from the trivial level
MIN_EFFECTIVE_RANK = 2.0  # fewer directions than this: every image lands near one line


def effective_rank(features: np.ndarray) -> float:
    centred = features - features.mean(axis=0, keepdims=True)
    singular = np.linalg.svd(centred.astype(np.float64), compute_uv=False)
    if singular.sum() <= 0:
        return 0.0
    p = singular / singular.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def logged_losses(log: pd.DataFrame | None) -> np.ndarray:
    if log is None or "train_loss" not in log:
        return np.array([])
    return log["train_loss"].dropna().to_numpy()


def tenth_mean(losses: np.ndarray, end: int) -> float:
    """Mean of the tenth of the logged losses (at least one) that ends at index `end`."""
    width = max(1, int(np.ceil(0.1 * len(losses))))
    return float(losses[max(0, end - width):end].mean())


def final_loss(log: pd.DataFrame | None) -> float | None:
    """Mean training loss over the last tenth of the logged steps (at least one)."""
    losses = logged_losses(log)
    return tenth_mean(losses, len(losses)) if len(losses) else None


def halfway_loss(log: pd.DataFrame | None) -> float | None:
    """Mean training loss over the tenth of the logged steps that ends halfway through."""
    losses = logged_losses(log)
    return tenth_mean(losses, max(1, len(losses) // 2)) if len(losses) else None


def sits_at_trivial_level(final: float | None, halfway: float | None, trivial: float | None) -> bool:
    """The final loss is within 2% of the trivial level and has not fallen by 2% of it since halfway."""
    if final is None or trivial is None or trivial <= 0:
        return False
    still_falling = halfway is not None and halfway - final > TRIVIAL_TOLERANCE * trivial
    return abs(final - trivial) <= TRIVIAL_TOLERANCE * trivial and not still_falling


def training_health(val_features: np.ndarray, log: pd.DataFrame | None, trivial: float | None) -> dict:
    """What metrics.json records under `health`."""
    rank = effective_rank(val_features)
    spread = val_features.std(axis=0)
    loss, halfway = final_loss(log), halfway_loss(log)
    at_trivial = sits_at_trivial_level(loss, halfway, trivial)
    reasons = []
    if at_trivial:
        reasons.append(f"final loss {loss:.3f} (halfway {halfway:.3f}) not falling, at its trivial level {trivial:.3f}")
    if rank < MIN_EFFECTIVE_RANK:
        reasons.append(f"effective rank {rank:.2f} of {val_features.shape[1]} dimensions")
    return {"final_loss": loss, "halfway_loss": halfway, "trivial_loss": trivial, "at_trivial_loss": bool(at_trivial),
            "effective_rank": rank, "feature_dim": int(val_features.shape[1]),
            "dim_std_median": float(np.median(spread)), "collapsed": bool(reasons), "reason": "; ".join(reasons)}
