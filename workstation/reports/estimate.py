"""Where a finding is and how big, from its key slice: patient position, side, long/short axis, mean HU.

Pure numpy on values the service reads from the image (pixels in modality
units, the slice's position, orientation and spacing). Without a reader's
measurement the diameters are estimates: the region the AI heatmap marks inside
the box (its principal axes), else the ellipse inscribed in the box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEAT_FRACTION = 0.5  # the region: heatmap values at least half the box's peak
MIN_REGION_PIXELS = 3
MIDLINE_TOLERANCE_MM = 5.0
BODY_THRESHOLD_HU = -500.0  # air outside the body is about -1000 HU


@dataclass(frozen=True)
class SliceGeometry:
    position: tuple[float, float, float]  # ImagePositionPatient of the first pixel's centre
    row_direction: tuple[float, float, float]  # ImageOrientationPatient[:3]: along a row (column index grows)
    column_direction: tuple[float, float, float]  # ImageOrientationPatient[3:]: down a column (row index grows)
    spacing: tuple[float, float]  # PixelSpacing: (between rows, between columns) in mm

    def to_patient(self, column: float, row: float) -> np.ndarray:
        return (np.asarray(self.position, float) + column * self.spacing[1] * np.asarray(self.row_direction, float)
                + row * self.spacing[0] * np.asarray(self.column_direction, float))


@dataclass(frozen=True)
class Estimate:
    center_mm: tuple[float, float, float]
    side: str
    long_mm: float
    short_mm: float
    source: str
    mean_hu: float | None


def region_mask(box_px: tuple[float, float, float, float], shape: tuple[int, int],
                heat: np.ndarray | None) -> tuple[np.ndarray, str]:
    """The finding's pixels: the heatmap's region inside the box when it marks one, else the inscribed ellipse."""
    rows, columns = shape
    c0, r0, c1, r1 = (float(v) for v in box_px)
    c0, c1 = max(0.0, min(c0, c1)), min(float(columns), max(c0, c1))
    r0, r1 = max(0.0, min(r0, r1)), min(float(rows), max(r0, r1))
    inside = np.zeros(shape, bool)
    ic0, ic1, ir0, ir1 = int(np.floor(c0)), int(np.ceil(c1)), int(np.floor(r0)), int(np.ceil(r1))
    inside[ir0:ir1, ic0:ic1] = True
    if heat is not None and heat.shape == shape and inside.any():
        peak = float(heat[inside].max())
        if peak > 0:
            mask = inside & (heat >= HEAT_FRACTION * peak)
            if int(mask.sum()) >= MIN_REGION_PIXELS:
                return mask, "estimated from the AI heatmap"
    rr, cc = np.mgrid[0:rows, 0:columns]
    a, b = max((c1 - c0) / 2, 0.5), max((r1 - r0) / 2, 0.5)
    ellipse = (((cc + 0.5 - (c0 + c1) / 2) / a) ** 2 + ((rr + 0.5 - (r0 + r1) / 2) / b) ** 2) <= 1.0
    return ellipse, "estimated from the box"


def axes_mm(mask: np.ndarray, spacing: tuple[float, float]) -> tuple[float, float]:
    """Long axis and the perpendicular short axis of a region, in mm (extent along its principal axes)."""
    rows, columns = np.nonzero(mask)
    if rows.size == 0:
        return 0.0, 0.0
    points = np.column_stack([columns * spacing[1], rows * spacing[0]]).astype(float)
    pixel = float(np.hypot(spacing[0], spacing[1])) / np.sqrt(2.0)  # one pixel's width, added to each extent
    if rows.size == 1:
        return pixel, pixel
    centred = points - points.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(centred.T))
    major, minor = vectors[:, 1], vectors[:, 0]
    long = float(np.ptp(centred @ major)) + pixel
    short = float(np.ptp(centred @ minor)) + pixel
    return max(long, short), min(long, short)


def patient_side(x_mm: float, midline_x_mm: float) -> str:
    """The patient's side from LPS x (+x is the patient's left)."""
    if x_mm > midline_x_mm + MIDLINE_TOLERANCE_MM:
        return "left"
    if x_mm < midline_x_mm - MIDLINE_TOLERANCE_MM:
        return "right"
    return "midline"


def body_midline_x(pixels: np.ndarray, geometry: SliceGeometry) -> float:
    """Patient x of the body's centre on the slice (pixels above -500 HU), so a table offset does not flip sides."""
    body = pixels > BODY_THRESHOLD_HU
    if not body.any():
        return float(geometry.to_patient((pixels.shape[1] - 1) / 2, (pixels.shape[0] - 1) / 2)[0])
    rows, columns = np.nonzero(body)
    return float(geometry.to_patient(float(columns.mean()), float(rows.mean()))[0])


def estimate(box_px: tuple[float, float, float, float], pixels: np.ndarray, geometry: SliceGeometry,
             heat: np.ndarray | None = None, measured: tuple[float, float] | None = None) -> Estimate:
    """Everything the report says about one finding on its key slice (`pixels` in modality units, e.g. HU)."""
    mask, source = region_mask(box_px, pixels.shape, heat)
    rows, columns = np.nonzero(mask)
    if rows.size:
        centre = geometry.to_patient(float(columns.mean()), float(rows.mean()))
        mean = float(pixels[mask].mean())
    else:
        c0, r0, c1, r1 = box_px
        centre, mean = geometry.to_patient((c0 + c1) / 2, (r0 + r1) / 2), None
    if measured is not None:
        long, short = max(measured), min(measured)
        source = "measured by the reader"
    else:
        long, short = axes_mm(mask, geometry.spacing)
    side = patient_side(float(centre[0]), body_midline_x(pixels, geometry))
    return Estimate(tuple(round(float(v), 2) for v in centre), side, round(float(long), 1), round(float(short), 1), source,
                    None if mean is None else round(mean, 1))
