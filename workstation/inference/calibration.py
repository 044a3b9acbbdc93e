"""Finding scores as probabilities (manifest section ``calibration``); numpy only.

A heatmap network trained with a pixel loss is confident far beyond its
accuracy: the peak probability of nearly every candidate reads 1.00, so the
score says nothing. Platt / temperature scaling maps the candidate's peak
*logit* (the probability saturates in float32, the logit does not) to the
probability that the candidate is a real nodule, fitted on held-out phantoms.
The map is monotonic, so the ranking of findings and the set above a threshold
do not change; only the scale does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from workstation.inference.preprocess import _weights

METHODS = ("temperature", "platt")
ECE_BINS = 10


class CalibrationError(ValueError):
    """A malformed ``calibration`` section."""


@dataclass(frozen=True)
class Calibration:
    """score = sigmoid(logit / temperature + bias); bias is 0 for plain temperature scaling."""

    method: str
    temperature: float
    bias: float = 0.0

    def apply(self, logit: float | np.ndarray) -> float | np.ndarray:
        """Calibrated probability of a raw peak logit."""
        out = sigmoid(np.asarray(logit, np.float64) / self.temperature + self.bias)
        return float(out) if out.ndim == 0 else out

    def raw_logit(self, score: float) -> float:
        """The raw logit whose calibrated score is ``score`` (the inverse of :meth:`apply`)."""
        return (logit(score) - self.bias) * self.temperature

    def raw_threshold(self, score: float) -> float:
        """A threshold on the calibrated scale, as a raw peak probability (what post-processing compares)."""
        return float(sigmoid(self.raw_logit(score)))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"method": self.method, "temperature": self.temperature}
        if self.method == "platt":
            data["bias"] = self.bias
        return data


def parse_calibration(data: Any) -> Calibration | None:
    """The manifest's section; None (scores are the raw peak probabilities) when absent."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise CalibrationError("calibration: an object is required")
    method = data.get("method")
    if method not in METHODS:
        raise CalibrationError(f"calibration.method: one of {', '.join(METHODS)} is required")
    temperature = data.get("temperature")
    if not _number(temperature) or not temperature > 0:
        raise CalibrationError("calibration.temperature: a positive number is required")
    bias = data.get("bias", 0.0)
    if method == "platt" and not _number(bias):
        raise CalibrationError("calibration.bias: a number is required for Platt scaling")
    if method == "temperature" and bias not in (0, 0.0):
        raise CalibrationError("calibration.bias: plain temperature scaling has none (use method \"platt\")")
    return Calibration(method, float(temperature), float(bias))


def sigmoid(x: float | np.ndarray) -> np.ndarray:
    """Without overflow for large |x|."""
    x = np.asarray(x, np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def logit(p: float) -> float:
    if not 0.0 < p < 1.0:
        raise ValueError(f"a probability strictly between 0 and 1 is required, not {p}")
    return math.log(p) - math.log1p(-p)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def restored_logit(model_logits: np.ndarray, frame: int, row: int, col: int,
                   original_hw: tuple[int, int]) -> float:
    """Logit of the restored heatmap's probability at one voxel of the original grid.

    ``model_logits`` is the network's (frames, h, w) output. The probability is
    interpolated exactly as :func:`preprocess.restore_heatmap` does, but in
    float64 from the logits, and its complement separately, so the logit stays
    finite and exact where the float32 probability has rounded to 1.
    """
    h, w = model_logits.shape[1:]
    rows_idx, rows_w = _weights(h, int(original_hw[0]))
    cols_idx, cols_w = _weights(w, int(original_hw[1]))
    ri, rw = rows_idx[row], rows_w[row].astype(np.float64)
    ci, cw = cols_idx[col], cols_w[col].astype(np.float64)
    patch = model_logits[frame][np.ix_(ri, ci)].astype(np.float64)
    weight = rw[:, None] * cw[None, :]
    p = float((weight * sigmoid(patch)).sum())
    q = float((weight * sigmoid(-patch)).sum())
    return math.log(p) - math.log(q)


# --------------------------------------------------------------------------
# Fitting and measuring (used by models/*/calibrate.py and the tests)


def fit(logits: np.ndarray, labels: np.ndarray, method: str = "temperature") -> Calibration:
    """Maximum-likelihood fit of sigmoid(logit / T [+ b]) to 0/1 labels (Newton's method).

    Targets are smoothed as in Platt (1999), (N+ + 1) / (N+ + 2) and
    1 / (N- + 2), so separable data still gives a finite temperature.
    """
    if method not in METHODS:
        raise ValueError(f"method: one of {METHODS}")
    x = np.asarray(logits, np.float64)
    y = np.asarray(labels, bool)
    if x.size == 0 or y.all() or not y.any():
        raise ValueError("fitting needs both positive and negative examples")
    pos, neg = int(y.sum()), int((~y).sum())
    target = np.where(y, (pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0))
    features = np.stack([x, np.ones_like(x)], axis=1) if method == "platt" else x[:, None]
    params = np.zeros(features.shape[1])
    params[0] = 1.0 / max(1.0, float(np.abs(x).max()))
    for _ in range(100):
        z = features @ params
        p = sigmoid(z)
        gradient = features.T @ (p - target)
        hessian = (features * (p * (1 - p))[:, None]).T @ features + 1e-9 * np.eye(features.shape[1])
        step = np.linalg.solve(hessian, gradient)
        new = params - step
        while _nll(features @ new, target) > _nll(z, target) + 1e-12 and np.abs(step).max() > 1e-12:
            step /= 2  # damped Newton: never increase the loss
            new = params - step
        params = new
        if np.abs(step).max() < 1e-10:
            break
    if not params[0] > 0:
        raise ValueError("the fitted slope is not positive: higher logits would mean lower probabilities")
    return Calibration(method, float(1.0 / params[0]), float(params[1]) if method == "platt" else 0.0)


def _nll(z: np.ndarray, target: np.ndarray) -> float:
    return float(np.sum(np.logaddexp(0.0, z) - target * z))


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Per equal-width bin of [0, 1] (the last one closed): count, mean score, share of real nodules."""
    p = np.asarray(probabilities, np.float64)
    y = np.asarray(labels, bool)
    which = np.minimum((p * bins).astype(int), bins - 1)
    table = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            table.append({"bin": [b / bins, (b + 1) / bins], "count": int(inside.sum()),
                          "mean_score": float(p[inside].mean()), "fraction_true": float(y[inside].mean())})
    return table


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over equal-width bins of (share of samples) x |fraction true - mean score|."""
    p = np.asarray(probabilities, np.float64)
    if p.size == 0:
        return float("nan")
    return float(sum(row["count"] / p.size * abs(row["fraction_true"] - row["mean_score"])
                     for row in reliability(p, labels, bins)))
