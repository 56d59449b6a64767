"""Did pretraining learn anything? Two signs that it did not, recorded in every run.

- The loss sits at its trivial level: the value of a network that tells no image apart from
  another (ln(2B - 1) for contrastive losses over 2B views, ln K for K uniform prototypes; see
  Method.trivial_loss). A run whose last tenth of logged losses averages within 2% of it has not
  left it.
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


def final_loss(log: pd.DataFrame) -> float | None:
    losses = log["train_loss"].dropna().to_numpy() if "train_loss" in log else np.array([])
    if len(losses) == 0:
        return None
    return float(losses[-max(1, len(losses) // 10):].mean())


def training_health(val_features: np.ndarray, log: pd.DataFrame | None, trivial: float | None) -> dict:
    """What metrics.json records under `health`."""
    rank = effective_rank(val_features)
    spread = val_features.std(axis=0)
    loss = final_loss(log) if log is not None else None
    at_trivial = (loss is not None and trivial is not None and trivial > 0
                  and abs(loss - trivial) <= TRIVIAL_TOLERANCE * trivial)
    reasons = []
    if at_trivial:
        reasons.append(f"final loss {loss:.3f} at its trivial level {trivial:.3f}")
    if rank < MIN_EFFECTIVE_RANK:
        reasons.append(f"effective rank {rank:.2f} of {val_features.shape[1]} dimensions")
    return {"final_loss": loss, "trivial_loss": trivial, "at_trivial_loss": bool(at_trivial),
            "effective_rank": rank, "feature_dim": int(val_features.shape[1]),
            "dim_std_median": float(np.median(spread)), "collapsed": bool(reasons), "reason": "; ".join(reasons)}
