"""Measurement geometry on one frame: length, angle, ROI statistics, nodule diameters, axes from a region.

Points are continuous pixel coordinates (column, row): pixel (c, r) covers
[c, c+1) x [r, r+1), so its centre is (c + 0.5, r + 0.5) - the same pixel
edges the finding boxes use. Distances are taken in millimetres with the
row and column spacings applied separately, so a length or an angle is right
on an anisotropic grid. Without a calibration the unit is "px" and the
reading carries a warning, never a silent "mm".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

Point = tuple[float, float]  # (column, row) in pixels, continuous

LENGTH, ANGLE, ELLIPSE, RECTANGLE, DIAMETER = "length", "angle", "ellipse", "rectangle", "diameter"
KINDS = (LENGTH, ANGLE, ELLIPSE, RECTANGLE, DIAMETER)
POINTS = {LENGTH: 2, ANGLE: 3, ELLIPSE: 2, RECTANGLE: 2, DIAMETER: 4}
NAMES = {LENGTH: "Length", ANGLE: "Angle", ELLIPSE: "Ellipse ROI", RECTANGLE: "Rectangle ROI", DIAMETER: "Nodule diameter"}
MAX_ROI_PIXELS = 4096 * 4096  # an ROI is clipped to the image, which is bounded by the file; this is a second guard


class MeasureError(ValueError):
    """A measurement that cannot be made (wrong number of points, ROI outside the image, colour pixels)."""


@dataclass(frozen=True)
class UltrasoundRegion:
    """One calibrated region of a SequenceOfUltrasoundRegions item (pixel bounds inclusive, mm per pixel)."""

    x0: int
    y0: int
    x1: int
    y1: int
    delta_x_mm: float
    delta_y_mm: float

    def contains(self, point: Point) -> bool:
        x, y = point
        return self.x0 <= x <= self.x1 + 1 and self.y0 <= y <= self.y1 + 1


@dataclass(frozen=True)
class Calibration:
    """Millimetres per pixel (row, column) and where they come from; uncalibrated: 1 px and unit "px"."""

    row_mm: float = 1.0
    col_mm: float = 1.0
    calibrated: bool = False
    source: str = ""
    warning: str = ""

    @property
    def unit(self) -> str:
        return "mm" if self.calibrated else "px"

    def to_mm(self, point: Point) -> np.ndarray:
        return np.array([point[0] * self.col_mm, point[1] * self.row_mm])

    def to_px(self, xy_mm) -> Point:
        return (float(xy_mm[0] / self.col_mm), float(xy_mm[1] / self.row_mm))


UNCALIBRATED = "no pixel spacing in the image: values in pixels, not mm"


def calibration(pixel_spacing: tuple[float, float] | None, spacing_source: str = "PixelSpacing",
                regions: tuple[UltrasoundRegion, ...] = (), points: tuple[Point, ...] = ()) -> Calibration:
    """The calibration for a measurement with these points.

    Ultrasound: the region holding every point gives the spacing (its physical
    deltas); points in no region or across two are uncalibrated with a warning
    (a B-mode and a Doppler strip have different scales). Otherwise PixelSpacing;
    ImagerPixelSpacing is at the detector and says so.
    """
    if regions:
        holding = [r for r in regions if points and all(r.contains(p) for p in points)]
        if holding:
            region = holding[0]
            return Calibration(region.delta_y_mm, region.delta_x_mm, True, "ultrasound region")
        if points:
            return Calibration(warning="outside or across the ultrasound calibration regions: values in pixels, not mm")
    if pixel_spacing is not None and all(math.isfinite(v) and v > 0 for v in pixel_spacing):
        warning = ("at the detector (ImagerPixelSpacing): not corrected for magnification"
                   if spacing_source == "ImagerPixelSpacing" else "")
        return Calibration(float(pixel_spacing[0]), float(pixel_spacing[1]), True, spacing_source or "PixelSpacing", warning)
    return Calibration(warning=UNCALIBRATED)


@dataclass(frozen=True)
class Reading:
    """What a measurement says: named values (in `unit`, or HU etc. for statistics) and the text shown."""

    values: dict[str, float] = field(default_factory=dict)
    text: str = ""
    warning: str = ""


def _check(kind: str, points) -> list[Point]:
    if kind not in POINTS:
        raise MeasureError(f"unknown measurement kind {kind!r}")
    pts = [(float(p[0]), float(p[1])) for p in points]
    if len(pts) != POINTS[kind] or not all(math.isfinite(v) for p in pts for v in p):
        raise MeasureError(f"a {kind} needs {POINTS[kind]} finite points, got {len(pts)}")
    return pts


def distance(a: Point, b: Point, cal: Calibration) -> float:
    """Length of a-b in mm (row and column spacing applied separately), or px when uncalibrated."""
    return float(np.linalg.norm(cal.to_mm(b) - cal.to_mm(a)))


def angle_deg(a: Point, vertex: Point, b: Point, cal: Calibration) -> float:
    """The angle at `vertex` between the arms to a and b, in physical space (0-180 degrees)."""
    u, v = cal.to_mm(a) - cal.to_mm(vertex), cal.to_mm(b) - cal.to_mm(vertex)
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        raise MeasureError("an angle needs two arms of non-zero length")
    return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / (nu * nv), -1.0, 1.0))))


def roi_mask(kind: str, corners: tuple[Point, Point], shape: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """(mask, (row0, column0)): the pixels whose centre lies inside the ellipse or rectangle spanned by the
    two corner points, within the image; the mask covers only the ROI's bounding window, placed at (row0, column0)."""
    (xa, ya), (xb, yb) = corners
    x0, x1, y0, y1 = min(xa, xb), max(xa, xb), min(ya, yb), max(ya, yb)
    rows, cols = shape
    c0, c1 = max(0, int(math.floor(x0))), min(cols, int(math.ceil(x1)))
    r0, r1 = max(0, int(math.floor(y0))), min(rows, int(math.ceil(y1)))
    if c1 <= c0 or r1 <= r0:
        raise MeasureError("the ROI lies outside the image")
    if (c1 - c0) * (r1 - r0) > MAX_ROI_PIXELS:
        raise MeasureError("the ROI is too large")
    yy, xx = np.mgrid[r0:r1, c0:c1]
    cx, cy = xx + 0.5, yy + 0.5
    if kind == ELLIPSE:
        a, b = (x1 - x0) / 2, (y1 - y0) / 2
        if a <= 0 or b <= 0:
            raise MeasureError("an ellipse needs a width and a height")
        mask = ((cx - (x0 + a)) / a) ** 2 + ((cy - (y0 + b)) / b) ** 2 <= 1.0
    else:
        mask = (cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)
    return mask, (r0, c0)


def roi_stats(kind: str, corners: tuple[Point, Point], image: np.ndarray, cal: Calibration) -> dict[str, float]:
    """Mean, SD (population, as numpy's std), min, max over the pixels whose centre is inside, their count,
    and the shape's area (mm², or px² uncalibrated): in the image's own units (the volume holds modality
    units, so HU for CT)."""
    if image.ndim != 2:
        raise MeasureError("ROI statistics need a greyscale image")
    mask, (r0, c0) = roi_mask(kind, corners, image.shape)
    window = image[r0:r0 + mask.shape[0], c0:c0 + mask.shape[1]]
    values = window[mask].astype(np.float64)
    width = abs(corners[1][0] - corners[0][0]) * cal.col_mm
    height = abs(corners[1][1] - corners[0][1]) * cal.row_mm
    area = math.pi / 4 * width * height if kind == ELLIPSE else width * height
    if values.size == 0:
        return {"pixels": 0.0, "area": area}
    return {"mean": float(values.mean()), "sd": float(values.std()), "min": float(values.min()),
            "max": float(values.max()), "pixels": float(values.size), "area": area}


def perpendicular_short_axis(points: list[Point], cal: Calibration) -> list[Point]:
    """The diameter tool's four points with the short axis (points 2, 3) made perpendicular to the long one
    (points 0, 1) in physical space, crossing it where the short axis's middle projects onto it."""
    la, lb, sa, sb = (cal.to_mm(p) for p in points)
    length = np.linalg.norm(lb - la)
    if length == 0:
        return list(points)
    u = (lb - la) / length
    n = np.array([-u[1], u[0]])
    middle = (sa + sb) / 2
    cross = la + u * float(np.clip(np.dot(middle - la, u), 0.0, length))
    a, b = cross + n * float(np.dot(sa - cross, n)), cross + n * float(np.dot(sb - cross, n))
    return [points[0], points[1], cal.to_px(a), cal.to_px(b)]


def default_short_axis(a: Point, b: Point, cal: Calibration, ratio: float = 0.5) -> list[Point]:
    """The four points of a fresh diameter: a short axis `ratio` of the long one, perpendicular at its middle."""
    la, lb = cal.to_mm(a), cal.to_mm(b)
    length = np.linalg.norm(lb - la)
    if length == 0:
        return [a, b, a, b]
    u = (lb - la) / length
    n, middle, half = np.array([-u[1], u[0]]), (la + lb) / 2, length * ratio / 2
    return [a, b, cal.to_px(middle - n * half), cal.to_px(middle + n * half)]


def lung_rads_mean(long_mm: float, short_mm: float) -> float:
    """Lung-RADS v2022 mean diameter: the average of long and short axis, to one decimal."""
    return round((long_mm + short_mm) / 2 + 1e-9, 1)


def measure(kind: str, points, cal: Calibration, image: np.ndarray | None = None, unit: str = "") -> Reading:
    """The values and text of one measurement; `image` (modality units) is needed for ROI statistics,
    `unit` names its units ("HU" for CT)."""
    pts = _check(kind, points)
    u = cal.unit
    if kind == LENGTH:
        length = distance(pts[0], pts[1], cal)
        return Reading({"length": length}, f"{length:.1f} {u}", cal.warning)
    if kind == ANGLE:
        value = angle_deg(pts[0], pts[1], pts[2], cal)
        warning = "" if cal.calibrated or cal.row_mm == cal.col_mm else cal.warning
        return Reading({"angle": value}, f"{value:.1f}°", warning)
    if kind == DIAMETER:
        long, short = distance(pts[0], pts[1], cal), distance(pts[2], pts[3], cal)
        if short > long:
            long, short = short, long
        values = {"long": long, "short": short, "mean": lung_rads_mean(long, short) if cal.calibrated else (long + short) / 2}
        text = f"{long:.1f} x {short:.1f} {u}" + (f"\nmean {values['mean']:.1f} {u}")
        return Reading(values, text, cal.warning)
    if image is None:
        raise MeasureError("ROI statistics need the frame's pixels (not decoded yet)")
    stats = roi_stats(kind, (pts[0], pts[1]), image, cal)
    area = f"area {stats['area']:.1f} {u}²"
    if "mean" not in stats:
        return Reading(stats, area + "\nno pixel centre inside", cal.warning)
    unit = f" {unit}" if unit else ""
    text = (f"mean {stats['mean']:.1f}{unit}  SD {stats['sd']:.1f}\n"
            f"min {stats['min']:.0f}  max {stats['max']:.0f}{unit}\n{area}")
    return Reading(stats, text, cal.warning)


# ----- axes of a region (the "measure" proposal from an AI heatmap)

def _turn(o, a, b) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain; points (n, 2)."""
    pts = np.unique(points, axis=0)
    if len(pts) < 3:
        return pts

    def half(sequence):
        chain: list = []
        for p in sequence:
            while len(chain) >= 2 and _turn(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def axes_from_mask(mask: np.ndarray, cal: Calibration, origin: tuple[int, int] = (0, 0)) -> list[Point]:
    """Long axis (the region's longest extent) and the longest extent perpendicular to it, edge to edge,
    as the diameter tool's four points; `origin` (row, column) places the mask in the image."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise MeasureError("the region is empty")
    centres = np.stack([(cols + origin[1] + 0.5) * cal.col_mm, (rows + origin[0] + 0.5) * cal.row_mm], axis=1)
    hull = _convex_hull(centres)
    if len(hull) >= 2:
        gaps = np.linalg.norm(hull[:, None, :] - hull[None, :, :], axis=2)
        i, j = np.unravel_index(int(np.argmax(gaps)), gaps.shape)
        a, b = hull[i], hull[j]
    else:
        a = b = centres[0]
    span = np.linalg.norm(b - a)
    u = (b - a) / span if span > 0 else np.array([1.0, 0.0])
    n = np.array([-u[1], u[0]])
    half_u = 0.5 * (abs(u[0]) * cal.col_mm + abs(u[1]) * cal.row_mm)  # half a pixel's extent along u
    half_n = 0.5 * (abs(n[0]) * cal.col_mm + abs(n[1]) * cal.row_mm)
    long_a, long_b = a - u * half_u, b + u * half_u
    t, s = (centres - a) @ u, (centres - a) @ n
    bins = np.round(t / (2 * half_u)).astype(int)
    best, best_bin = -1.0, 0
    for k in np.unique(bins):
        chosen = s[bins == k]
        extent = chosen.max() - chosen.min()
        if extent > best:
            best, best_bin = extent, k
    chosen = s[bins == best_bin]
    foot = a + u * float(t[bins == best_bin].mean())
    short_a, short_b = foot + n * (chosen.min() - half_n), foot + n * (chosen.max() + half_n)
    return [cal.to_px(long_a), cal.to_px(long_b), cal.to_px(short_a), cal.to_px(short_b)]


def _component(mask: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """The 8-connected part of `mask` holding `seed` (grown by dilation; regions here are small)."""
    grown = np.zeros_like(mask)
    grown[seed] = True
    while True:
        padded = np.pad(grown, 1)
        dilated = np.zeros_like(padded)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                dilated |= np.roll(np.roll(padded, dr, axis=0), dc, axis=1)
        step = dilated[1:-1, 1:-1] & mask
        if (step == grown).all():
            return grown
        grown = step


def propose_axes(heat: np.ndarray, box_px: tuple[float, float, float, float], cal: Calibration,
                 fraction: float = 0.5) -> list[Point]:
    """Long and short axes of the heatmap region inside a finding's box on its key slice.

    The region is the part of the box at or above `fraction` of the box's peak
    (half maximum by default) connected to the peak, so a neighbouring blob
    inside the same box is left out.
    """
    if heat.ndim != 2:
        raise MeasureError("a heatmap frame is two-dimensional")
    rows, cols = heat.shape
    c0, r0, c1, r1 = box_px
    c0, c1 = max(0, int(math.floor(min(c0, c1)))), min(cols, int(math.ceil(max(c0, c1))))
    r0, r1 = max(0, int(math.floor(min(r0, r1)))), min(rows, int(math.ceil(max(r0, r1))))
    if c1 <= c0 or r1 <= r0:
        raise MeasureError("the box lies outside the heatmap")
    window = np.asarray(heat[r0:r1, c0:c1], dtype=np.float64)
    peak = float(window.max())
    if not peak > 0:
        raise MeasureError("the heatmap is empty inside this box")
    seed = np.unravel_index(int(np.argmax(window)), window.shape)
    region = _component(window >= peak * fraction, seed)
    return axes_from_mask(region, cal, origin=(r0, c0))
