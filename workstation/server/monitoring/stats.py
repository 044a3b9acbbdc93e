"""The statistics of monitoring, on counts (never on rows): Wilson score intervals, PSI and a two-sample KS
statistic on binned score distributions. Plain Python: a handful of numbers each."""

from __future__ import annotations

import math
from statistics import NormalDist


def z_for(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: float, trials: float, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (Wilson 1927); None without trials. Better than the normal
    approximation near 0 and 1 and for small counts (it never leaves [0, 1])."""
    if trials <= 0:
        return None
    z = z_for(confidence)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def proportions(counts: list[float], floor: float = 1e-4) -> list[float]:
    total = sum(counts)
    if total <= 0:
        return [0.0] * len(counts)
    return [max(c / total, floor) for c in counts]


def psi(baseline: list[float], recent: list[float]) -> float | None:
    """Population stability index over the same bins: sum (q - p) ln(q / p); empty bins count as 0.01 %.
    Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift."""
    if sum(baseline) <= 0 or sum(recent) <= 0:
        return None
    p, q = proportions(baseline), proportions(recent)
    return sum((qi - pi) * math.log(qi / pi) for pi, qi in zip(p, q))


def ks(baseline: list[float], recent: list[float]) -> float | None:
    """The two-sample Kolmogorov-Smirnov statistic D on binned samples: the largest gap between the two
    cumulative distributions at the bin edges (a lower bound of D on the raw scores)."""
    n, m = sum(baseline), sum(recent)
    if n <= 0 or m <= 0:
        return None
    gap = cumulative_p = cumulative_q = 0.0
    for b, r in zip(baseline, recent):
        cumulative_p += b / n
        cumulative_q += r / m
        gap = max(gap, abs(cumulative_p - cumulative_q))
    return gap


def ks_critical(n: float, m: float, alpha: float = 0.05) -> float:
    """D above which two samples of sizes n and m differ at level alpha (asymptotic)."""
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))
