"""Nodule candidates from a probability volume (numpy + SimpleITK, no torch).

:func:`find_candidates` thresholds a probability volume (frames, rows, cols)
at the original image resolution with hysteresis: a component is the 3-D
connected region where the probability is >= ``region_threshold``, and it is
reported only if its maximum reaches ``threshold``. Because the regions do
not depend on ``threshold``, raising ``threshold`` only removes candidates
(the ones with a lower score), which makes the threshold easy to tune on
validation data. A lower-scoring candidate whose centre lies inside the 3-D
box of a higher-scoring one is merged into it, so one nodule gives one
candidate.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class Candidate:
    """One detection, in voxel coordinates of the probability volume."""

    score: float  # maximum probability in the component
    frame: int  # frame index of the peak
    row: int  # peak position on that frame
    col: int
    box: tuple[int, int, int, int]  # (col0, row0, col1, row1) of the component on the peak frame;
    # pixel edges, end exclusive: the box covers cols col0..col1-1 and rows row0..row1-1
    frames: tuple[int, int]  # first and last frame (inclusive) the component touches
    centroid: tuple[float, float, float]  # probability-weighted centre (frame, row, col)
    voxels: int  # size of the component

    @property
    def frame_count(self) -> int:
        return self.frames[1] - self.frames[0] + 1


def find_candidates(probability: np.ndarray, threshold: float, *,
                    region_threshold: float | None = None,
                    spacing_mm: tuple[float, float, float] | None = None,
                    min_volume_mm3: float = 0.0, min_voxels: int = 1,
                    max_candidates: int | None = None) -> list[Candidate]:
    """Candidates, highest score first.

    ``probability``: (frames, rows, cols) in [0, 1]. ``threshold``: minimum
    score (peak probability) of a candidate. ``region_threshold`` (default
    ``threshold / 2``): level that delimits a component. ``spacing_mm``
    (frame, row, col spacing) is needed only for ``min_volume_mm3``;
    components smaller than ``min_voxels`` voxels or ``min_volume_mm3`` are
    dropped.
    """
    prob = np.asarray(probability)
    if prob.ndim == 2:
        prob = prob[None]
    if prob.ndim != 3:
        raise ValueError(f"expected (frames, rows, cols) probabilities, got shape {prob.shape}")
    region_threshold = threshold / 2.0 if region_threshold is None else float(region_threshold)
    region_threshold = min(region_threshold, threshold)
    if prob.size == 0 or not (prob >= threshold).any():
        return []
    min_count = int(min_voxels)
    if min_volume_mm3 > 0:
        if spacing_mm is None:
            raise ValueError("min_volume_mm3 needs spacing_mm")
        voxel_mm3 = float(np.prod([float(s) for s in spacing_mm]))
        min_count = max(min_count, int(np.ceil(min_volume_mm3 / voxel_mm3 - 1e-9)))

    mask = (prob >= region_threshold).view(np.uint8)
    # Work inside the bounding box of the mask only: usually a small part of the volume.
    nz = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    lo = [int(n[0]) for n in nz]
    hi = [int(n[-1]) + 1 for n in nz]
    sub_mask = np.ascontiguousarray(mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
    sub_prob = prob[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]

    labels_img = sitk.ConnectedComponent(sitk.GetImageFromArray(sub_mask), True)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(labels_img)
    labels = sitk.GetArrayViewFromImage(labels_img)

    found: list[Candidate] = []
    boxes: list[tuple[np.ndarray, np.ndarray]] = []
    for label in stats.GetLabels():
        count = int(stats.GetNumberOfPixels(label))
        if count < min_count:
            continue
        x0, y0, z0, sx, sy, sz = stats.GetBoundingBox(label)  # ITK order: (col, row, frame)
        sl = (slice(z0, z0 + sz), slice(y0, y0 + sy), slice(x0, x0 + sx))
        own = labels[sl] == label
        p = np.where(own, sub_prob[sl], -1.0)
        peak = np.unravel_index(int(np.argmax(p)), p.shape)
        score = float(p[peak])
        if score < threshold:
            continue
        weights = np.where(own, sub_prob[sl], 0.0).astype(np.float64)
        total = weights.sum()
        grid = np.indices(weights.shape, sparse=True)
        centroid = tuple(float((weights * g).sum() / total) + o
                         for g, o in zip(grid, (z0 + lo[0], y0 + lo[1], x0 + lo[2])))
        on_peak = own[peak[0]]
        rows = np.flatnonzero(on_peak.any(axis=1))
        cols = np.flatnonzero(on_peak.any(axis=0))
        r_off, c_off = y0 + lo[1], x0 + lo[2]
        found.append(Candidate(
            score=score, frame=int(peak[0] + z0 + lo[0]),
            row=int(peak[1] + r_off), col=int(peak[2] + c_off),
            box=(int(cols[0] + c_off), int(rows[0] + r_off),
                 int(cols[-1] + 1 + c_off), int(rows[-1] + 1 + r_off)),
            frames=(int(z0 + lo[0]), int(z0 + sz - 1 + lo[0])),
            centroid=centroid, voxels=count))
        boxes.append((np.array([z0 + lo[0], r_off, c_off], float),
                      np.array([z0 + lo[0] + sz, r_off + sy, c_off + sx], float)))

    order = sorted(range(len(found)), key=lambda i: (-found[i].score, found[i].frame,
                                                      found[i].row, found[i].col))
    kept: list[int] = []
    for i in order:
        c = np.array(found[i].centroid) + 0.5  # voxel centre -> edge coordinates of the boxes
        if any(np.all(c >= boxes[j][0]) and np.all(c <= boxes[j][1]) for j in kept):
            continue  # inside a better candidate's box: the same object
        kept.append(i)
    result = [found[i] for i in kept]
    return result if max_candidates is None else result[:int(max_candidates)]


def candidate_to_mm(candidate: Candidate, origin_mm: tuple[float, float, float],
                    spacing_mm: tuple[float, float, float]) -> tuple[float, float, float]:
    """Centroid of a candidate in patient (x, y, z) mm for an axial volume.

    ``origin_mm`` is the (x, y, z) of voxel (0, 0, 0) and ``spacing_mm`` the
    (frame, row, col) spacing, frames ascending in z, rows along +y, columns
    along +x (the synthetic phantom's geometry). Oblique geometries must map
    the voxel ``candidate.centroid`` with their own orientation.
    """
    k, r, c = candidate.centroid
    return (origin_mm[0] + c * spacing_mm[2], origin_mm[1] + r * spacing_mm[1],
            origin_mm[2] + k * spacing_mm[0])
