"""Detection metrics against ground-truth nodules (numpy only).

A nodule counts as found when a detection centre lies within
``max(radius, 5 mm)`` of its centre (3-D, patient mm). Per scan, detections
are matched greedily from the highest score down: a detection within reach
of a nodule not yet found is a *hit*; within reach only of nodules already
found, a *duplicate*; otherwise a *false positive*. Duplicates count as false
positives (one nodule should give one detection). A hit on a nodule smaller
than the size limit of a sub-analysis (e.g. the >= 6 mm figures) is neither
a true nor a false positive there.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

MIN_REACH_MM = 5.0
LARGE_NODULE_MM = 6.0


@dataclass(frozen=True)
class Truth:
    center_mm: tuple[float, float, float]  # patient (x, y, z)
    diameter_mm: float


@dataclass(frozen=True)
class Detection:
    center_mm: tuple[float, float, float]  # patient (x, y, z)
    score: float


@dataclass
class Scan:
    """The detections and ground truth of one scan."""

    detections: list[Detection]
    truths: list[Truth]
    name: str = ""


@dataclass
class ScanMatch:
    kinds: list[str]  # per detection (in the order given): "hit", "duplicate" or "fp"
    nodule_of: list[int | None]  # per detection: index of the nodule it hit, or None
    found_by: list[int | None]  # per nodule: index of the detection that found it, or None


@dataclass
class Metrics:
    scans: int
    nodules: int
    nodules_ge_6mm: int
    found: int
    found_ge_6mm: int
    sensitivity_all: float
    sensitivity_ge_6mm: float
    false_positives: int  # false positives + duplicates
    duplicates: int
    false_positives_per_scan: float
    average_precision: float
    average_precision_ge_6mm: float
    threshold: float = 0.0
    per_scan: list[dict] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "per_scan"}
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 4)
        return d


def match_scan(detections: Sequence[Detection], truths: Sequence[Truth],
               min_reach_mm: float = MIN_REACH_MM) -> ScanMatch:
    """Greedy matching of one scan's detections to its nodules (highest score first)."""
    n_det, n_gt = len(detections), len(truths)
    kinds: list[str] = ["fp"] * n_det
    nodule_of: list[int | None] = [None] * n_det
    found_by: list[int | None] = [None] * n_gt
    if n_det == 0:
        return ScanMatch(kinds, nodule_of, found_by)
    if n_gt:
        det = np.array([d.center_mm for d in detections], float).reshape(n_det, 3)
        gt = np.array([t.center_mm for t in truths], float).reshape(n_gt, 3)
        reach = np.maximum(np.array([t.diameter_mm for t in truths], float) / 2.0, min_reach_mm)
        dist = np.linalg.norm(det[:, None, :] - gt[None, :, :], axis=2)
        within = dist <= reach[None, :]
    order = sorted(range(n_det), key=lambda i: -detections[i].score)  # stable for ties
    for i in order:
        if not n_gt or not within[i].any():
            continue
        free = [j for j in np.flatnonzero(within[i]) if found_by[j] is None]
        if free:
            j = min(free, key=lambda j: dist[i, j])
            found_by[j], nodule_of[i], kinds[i] = i, int(j), "hit"
        else:
            kinds[i] = "duplicate"
            nodule_of[i] = int(np.flatnonzero(within[i])[np.argmin(dist[i][within[i]])])
    return ScanMatch(kinds, nodule_of, found_by)


def _average_precision(scores: list[float], positive: list[bool], total: int) -> float:
    """Area under the precision-recall curve with the precision envelope (all points)."""
    if total == 0:
        return float("nan")
    if not scores:
        return 0.0
    order = np.argsort(-np.asarray(scores, float), kind="stable")
    tp = np.asarray(positive, bool)[order].astype(float)
    cum_tp = np.cumsum(tp)
    precision = cum_tp / np.arange(1, tp.size + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float((envelope * tp).sum() / total)


def evaluate(scans: Iterable[Scan], threshold: float = 0.0, large_mm: float = LARGE_NODULE_MM,
             min_reach_mm: float = MIN_REACH_MM) -> Metrics:
    """Sensitivity, false positives per scan and average precision over ``scans``.

    Only detections with ``score >= threshold`` take part. Average precision
    ranks the detections of all scans together by score.
    """
    scans = list(scans)
    n_nod = n_large = found = found_large = fps = dups = 0
    ranked_all: list[tuple[float, bool]] = []
    ranked_large: list[tuple[float, bool]] = []
    per_scan = []
    for scan in scans:
        dets = [d for d in scan.detections if d.score >= threshold]
        m = match_scan(dets, scan.truths, min_reach_mm)
        large = [t.diameter_mm >= large_mm for t in scan.truths]
        n_nod += len(scan.truths)
        n_large += sum(large)
        f = sum(b is not None for b in m.found_by)
        fl = sum(b is not None and lg for b, lg in zip(m.found_by, large))
        found, found_large = found + f, found_large + fl
        fp = sum(k != "hit" for k in m.kinds)
        fps += fp
        dups += sum(k == "duplicate" for k in m.kinds)
        for d, kind, j in zip(dets, m.kinds, m.nodule_of):
            hit = kind == "hit"
            ranked_all.append((d.score, hit))
            if hit and not large[j]:
                continue  # a real (small) nodule: neither right nor wrong for the >= 6 mm figures
            ranked_large.append((d.score, hit))
        per_scan.append({"name": scan.name, "nodules": len(scan.truths), "found": f,
                         "nodules_ge_6mm": sum(large), "found_ge_6mm": fl, "false_positives": fp,
                         "missed_mm": [round(t.diameter_mm, 2) for t, b in zip(scan.truths, m.found_by)
                                       if b is None]})
    n = len(scans)
    return Metrics(
        scans=n, nodules=n_nod, nodules_ge_6mm=n_large, found=found, found_ge_6mm=found_large,
        sensitivity_all=found / n_nod if n_nod else float("nan"),
        sensitivity_ge_6mm=found_large / n_large if n_large else float("nan"),
        false_positives=fps, duplicates=dups,
        false_positives_per_scan=fps / n if n else float("nan"),
        average_precision=_average_precision([s for s, _ in ranked_all], [h for _, h in ranked_all], n_nod),
        average_precision_ge_6mm=_average_precision([s for s, _ in ranked_large],
                                                     [h for _, h in ranked_large], n_large),
        threshold=float(threshold), per_scan=per_scan)


def scan_from_phantom(candidates: Iterable, phantom, name: str = "") -> Scan:
    """A :class:`Scan` from postprocess candidates (voxel coordinates of the phantom's
    volume, ``centroid`` = (frame, row, col)) and a phantom-like object
    (``origin_mm``, ``pixel_spacing_mm``, ``slice_thickness_mm``, ``nodules``)."""
    ox, oy, oz = phantom.origin_mm
    ps, st = float(phantom.pixel_spacing_mm), float(phantom.slice_thickness_mm)
    dets = []
    for c in candidates:
        k, r, col = c.centroid
        dets.append(Detection((ox + col * ps, oy + r * ps, oz + k * st), float(c.score)))
    truths = [Truth(tuple(float(v) for v in n.center_mm), float(n.diameter_mm)) for n in phantom.nodules]
    return Scan(dets, truths, name)
