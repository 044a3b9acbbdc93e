"""Multiplanar reformatting: axial, coronal and sagittal planes of a Volume, sampled through its affine.

A plane is a grid in patient space (LPS mm): origin, two in-plane unit
directions (screen right, screen down) and one isotropic pixel size. Each
output pixel's patient point is mapped to a fractional voxel index (the
per-frame origins are used, so gaps and irregular spacing land where the
images were) and sampled with linear interpolation. Where the plane's axes
run along the volume's axes (the usual axial stack) the sampling separates
into three 1-D interpolations, a few milliseconds per plane; any other
orientation (oblique stacks, gantry tilt) takes the general trilinear path.
Numpy only, no Qt: the viewer and the benchmark share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workstation.core.orientation import EdgeLabels, edge_labels
from workstation.core.study import DisplaySet
from workstation.core.volume import Volume

# screen right, screen down (radiological convention: the patient's left on the right of axial and coronal views)
PLANES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
}
MAX_SIDE = 1024  # a plane is at most this many pixels a side (the pixel grows instead)
_ALIGNED = 1e-6


def display_spacing(full: float, mm_per_screen_pixel: float) -> float:
    """The sampling a view needs: the full isotropic spacing, or coarser in steps of 1.25x while a screen pixel
    still covers at least one sample (zoomed out, the screen cannot show more; zooming in brings full detail back)."""
    if not np.isfinite(mm_per_screen_pixel) or mm_per_screen_pixel <= full:
        return full
    steps = int(np.floor(np.log(mm_per_screen_pixel / full) / np.log(1.25) + 1e-9))
    return full * 1.25 ** max(0, steps)


class MprUnavailable(ValueError):
    """The series cannot be reformatted; the message says why, in the reader's words."""


def geometry_problem(display_set: DisplaySet, volume: Volume) -> str | None:
    """Why this display set has no geometry MPR can trust, or None when it has."""
    if volume.is_colour:
        return "colour images are not reformatted"
    if volume.frame_count < 3:
        return f"{volume.frame_count} frame(s): MPR needs a stack of at least 3 slices"
    first = display_set.frames[0]
    if first.geometry.orientation is None:
        return "no ImageOrientationPatient: the slices' orientation is unknown"
    if first.instance.pixel_spacing is None:
        return "no PixelSpacing: distances in the slice are unknown"
    if volume.frame_origins is None:
        return "no ImagePositionPatient on every slice: the slices' positions are unknown"
    normal = _unit(volume.affine[:3, 2])
    distances = volume.frame_origins @ normal
    steps = np.diff(distances)
    if not (np.all(steps > 1e-3) or np.all(steps < -1e-3)):
        return "slice positions repeat or do not advance along the slice normal"
    if not np.all(np.isfinite(volume.frame_origins)):
        return "slice positions are not numbers"
    return None


@dataclass(frozen=True)
class Plane:
    """A sampling grid: pixel (i, j) centre = origin + i*spacing*u + j*spacing*v (patient mm)."""

    name: str
    origin: np.ndarray
    u: np.ndarray  # screen right
    v: np.ndarray  # screen down
    spacing: float
    shape: tuple[int, int]  # (rows = along v, columns = along u)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.u, self.v)

    def point(self, x_mm: float, y_mm: float) -> np.ndarray:
        """Patient point of plane coordinates (mm from the first pixel's centre)."""
        return self.origin + x_mm * self.u + y_mm * self.v

    def coords(self, point) -> tuple[float, float, float]:
        """(x, y, distance off the plane) in mm of a patient point."""
        d = np.asarray(point, dtype=float) - self.origin
        return float(d @ self.u), float(d @ self.v), float(d @ self.normal)

    @property
    def labels(self) -> EdgeLabels:
        return edge_labels((*self.u, *self.v))


class MprGeometry:
    """The volume's extent and sampling in patient space; makes and samples the three planes."""

    def __init__(self, volume: Volume) -> None:
        if volume.frame_origins is None or volume.frame_count < 2:
            raise MprUnavailable("the slices' positions are unknown")
        self.volume = volume
        frames, rows, cols = volume.array.shape[:3]
        self._col_dir = _unit(volume.affine[:3, 0])
        self._row_dir = _unit(volume.affine[:3, 1])
        self._row_mm, self._col_mm = (float(s) for s in volume.pixel_spacing)
        self._normal = _unit(volume.affine[:3, 2])
        self._origins = np.asarray(volume.frame_origins, dtype=float)
        self._distances = self._origins @ self._normal
        if self._distances[-1] < self._distances[0]:  # np.interp needs increasing abscissae
            self._order = -1
        else:
            self._order = 1
        slice_mm = float(np.median(np.abs(np.diff(self._distances))))
        self.native = (slice_mm, self._row_mm, self._col_mm)  # mm per index step along (frame, row, column)
        corners = np.array([volume.index_to_patient(c, r, f) for f in (0, frames - 1)
                            for r in (0, rows - 1) for c in (0, cols - 1)])  # voxel centres: the grid hits them
        self.low, self.high = corners.min(axis=0), corners.max(axis=0)
        self.spacing = min(self.native)  # the isotropic display grid: the finest native spacing
        self.center = (self.low + self.high) / 2
        self._corners = corners
        self._fill_key: tuple | None = None
        self._spec_cache: dict[tuple, list | bool] = {}
        self._fill = 0.0

    # ----- planes
    def plane(self, name: str, point, spacing: float | None = None) -> Plane:
        """The `name` plane ("axial", "coronal", "sagittal") through the patient point `point`.

        `spacing` (mm, at least the isotropic display spacing) samples it coarser: a view showing the whole
        plane in fewer screen pixels than it has needs no more (render/mpr.display_spacing).
        """
        u, v = (np.asarray(a, dtype=float) for a in PLANES[name])
        n = np.cross(u, v)
        pu, pv = self._corners @ u, self._corners @ v
        finest = max(self.spacing, float(max(np.ptp(pu), np.ptp(pv))) / (MAX_SIDE - 1))
        spacing = finest if spacing is None else max(float(spacing), finest)
        origin = pu.min() * u + pv.min() * v + float(np.asarray(point, dtype=float) @ n) * n
        shape = (int(np.floor((pv.max() - pv.min()) / spacing)) + 1, int(np.floor((pu.max() - pu.min()) / spacing)) + 1)
        return Plane(name, origin, u, v, spacing, shape)

    def step_mm(self, name: str) -> float:
        """How far one scroll step moves the `name` plane: the native spacing along its normal."""
        u, v = (np.asarray(a, dtype=float) for a in PLANES[name])
        n = np.cross(u, v)
        shares = np.abs([n @ self._normal, n @ self._row_dir, n @ self._col_dir])
        return float(self.native[int(np.argmax(shares))])

    def clamp(self, point) -> np.ndarray:
        return np.clip(np.asarray(point, dtype=float), self.low, self.high)

    def range_along(self, name: str) -> tuple[float, float]:
        """The volume's extent (mm) along the `name` plane's normal."""
        u, v = (np.asarray(a, dtype=float) for a in PLANES[name])
        d = self._corners @ np.cross(u, v)
        return float(d.min()), float(d.max())

    # ----- patient <-> index
    def to_index(self, points: np.ndarray) -> np.ndarray:
        """Fractional (frame, row, column) of patient points (..., 3), following each frame's own origin."""
        points = np.asarray(points, dtype=float)
        frame = self._frame_of(points @ self._normal)
        origin = self._origin_at(frame)
        rel = points - origin
        return np.stack([frame, rel @ self._row_dir / self._row_mm, rel @ self._col_dir / self._col_mm], axis=-1)

    def _frame_of(self, distance: np.ndarray) -> np.ndarray:
        d, idx = self._distances[:: self._order], np.arange(len(self._distances), dtype=float)[:: self._order]
        frame = np.interp(distance, d, idx)
        # continued linearly half a slice past both ends, so the outer slices keep their thickness
        lo, hi = d[0], d[-1]
        step_lo = (idx[1] - idx[0]) / (d[1] - d[0])
        step_hi = (idx[-1] - idx[-2]) / (d[-1] - d[-2])
        frame = np.where(distance < lo, idx[0] + (distance - lo) * step_lo, frame)
        return np.where(distance > hi, idx[-1] + (distance - hi) * step_hi, frame)

    def _origin_at(self, frame: np.ndarray) -> np.ndarray:
        k = np.clip(np.floor(frame), 0, len(self._origins) - 2).astype(int)
        t = (frame - k)[..., None]
        return self._origins[k] * (1 - t) + self._origins[k + 1] * t

    def to_patient(self, index) -> np.ndarray:
        """Patient point of a fractional (frame, row, column)."""
        f, r, c = (float(x) for x in index)
        return self.volume.index_to_patient(c, r, f)

    # ----- sampling
    def reformat(self, plane: Plane, array: np.ndarray | None = None, slab_mm: float = 0.0,
                 fill: float | None = None) -> np.ndarray:
        """The plane sampled from `array` (default: the volume's), in its dtype; a slab > 0 is a MIP that thick."""
        array = self.volume.array if array is None else array
        if fill is None:
            fill = self._fill_value(array)
        separable = self._separable(plane)
        if separable is not None:
            out = _sample_separable(array, separable, slab_mm, fill)
        else:
            out = self._sample_general(array, plane, slab_mm, fill)
        if array.dtype.kind in "iu":  # interpolation and maximum stay within the stored values: no clip needed
            np.rint(out, out=out)
        return out.astype(array.dtype, order="C")

    def _fill_value(self, array: np.ndarray) -> float:
        """Outside the volume: its lowest value (air for CT), from a coarse sample: a full min costs a redraw."""
        if array.dtype.kind not in "iuf" or not array.size:
            return 0.0
        key = (id(array), array.shape, self.volume.loaded_count)
        if self._fill_key != key:
            self._fill_key, self._fill = key, float(array[:: max(1, array.shape[0] // 16), ::4, ::4].min())
        return self._fill

    def _separable(self, plane: Plane):
        """Per volume axis: ("u"|"v", fractional indices) or ("n", index, index steps per mm); None if oblique.

        The in-plane indices depend only on the plane's kind (the stack is straight), so they are kept per kind;
        moving the plane along its normal changes only the "n" index.
        """
        cache_key = (plane.name, plane.shape, plane.spacing, tuple(np.round(plane.u, 9)), tuple(np.round(plane.v, 9)))
        cached = self._spec_cache.get(cache_key)
        if cached is None:
            cached = self._spec_cache[cache_key] = self._separable_spec(plane)
        if cached is False:
            return None
        n_axis = next(a for a, s in enumerate(cached) if s[0] == "n")
        centre = float(self.to_index(plane.origin)[n_axis])
        return [("n", centre, s[2]) if s[0] == "n" else s for s in cached]

    def _separable_spec(self, plane: Plane):
        axes = (self._normal, self._row_dir, self._col_dir)
        roles: list = [None, None, None]
        for role, direction in (("u", plane.u), ("v", plane.v), ("n", plane.normal)):
            shares = np.abs([direction @ a for a in axes])
            axis = int(np.argmax(shares))
            if abs(shares[axis] - 1.0) > _ALIGNED or roles[axis] is not None:
                return False
            roles[axis] = role
        if not self._stack_straight():
            return False
        nv, nu = plane.shape
        coords = {"u": np.arange(nu) * plane.spacing, "v": np.arange(nv) * plane.spacing}
        spec = []
        for axis, role in enumerate(roles):
            if role == "n":
                centre = self.to_index(plane.origin)[axis]
                spec.append(("n", float(centre), 1.0 / self.native[axis]))
                continue
            direction = plane.u if role == "u" else plane.v
            points = plane.origin + coords[role][:, None] * direction
            spec.append((role, self.to_index(points)[:, axis]))
        return spec

    def _stack_straight(self) -> bool:
        """Every frame's origin on the line through the first along the normal (no gantry tilt, no shear)."""
        rel = self._origins - self._origins[0]
        off = rel - np.outer(rel @ self._normal, self._normal)
        return bool(np.all(np.abs(off) < 1e-3 * max(self._row_mm, self._col_mm)))

    def _sample_general(self, array: np.ndarray, plane: Plane, slab_mm: float, fill: float) -> np.ndarray:
        nv, nu = plane.shape
        offsets = [0.0]
        if slab_mm > 0:
            half = slab_mm / 2
            offsets = list(np.arange(-half, half + 1e-9, min(self.native)))
        jj, ii = np.mgrid[0:nv, 0:nu]
        base = plane.origin + (ii[..., None] * plane.u + jj[..., None] * plane.v) * plane.spacing
        out = None
        for offset in offsets:
            sampled = _trilinear(array, self.to_index(base + offset * plane.normal), fill)
            out = sampled if out is None else np.maximum(out, sampled)
        return out

    # ----- AI boxes
    def box_on_plane(self, plane: Plane, box_px, first_frame: int, last_frame: int):
        """A box of pixel edges (c0, r0, c1, r1) spanning frames first..last, cut by the plane: (x0, y0, x1, y1) mm or None."""
        c0, r0, c1, r1 = (float(x) for x in box_px)
        corners = np.array([self.to_patient((f, r - 0.5, c - 0.5)) for f in (first_frame - 0.5, last_frame + 0.5)
                            for r in (r0, r1) for c in (c0, c1)])
        rel = corners - plane.origin
        x, y, d = rel @ plane.u, rel @ plane.v, rel @ plane.normal
        if d.min() > 1e-6 or d.max() < -1e-6:
            return None
        return float(x.min()), float(y.min()), float(x.max()), float(y.max())


def _unit(vector) -> np.ndarray:
    v = np.asarray(vector, dtype=float)
    return v / (np.linalg.norm(v) or 1.0)


def _sample_separable(array: np.ndarray, spec, slab_mm: float, fill: float) -> np.ndarray:
    """Linear interpolation one axis at a time.

    The slices across the plane are picked first (a view), then only the rows and columns the plane's samples
    fall between are gathered, still in the stored type (a zoomed-out view needs a fraction of them), and only
    then is anything converted to float: the blend across the plane (or the slab's maximum) and the two
    in-plane interpolations.
    """
    n_axis = next(a for a, s in enumerate(spec) if s[0] == "n")
    _, centre, per_mm = spec[n_axis]
    size = array.shape[n_axis]
    w = np.float32(0.0)
    if slab_mm > 0:
        lo = max(int(np.ceil(centre - slab_mm / 2 * per_mm - 1e-9)), 0)
        hi = min(int(np.floor(centre + slab_mm / 2 * per_mm + 1e-9)), size - 1)
    elif -0.5 <= centre <= size - 0.5:
        lo = int(np.clip(np.floor(centre), 0, size - 1))
        w = np.float32(centre - lo) if lo + 1 < size else np.float32(0.0)
        hi = lo + 1 if w > 1e-4 else lo
    else:
        lo, hi = 0, -1
    rest_axes = [a for a in range(3) if a != n_axis]
    if lo > hi:  # the plane lies outside the volume
        nv_nu = [len(spec[a][1]) for a in rest_axes]
        out = np.full(nv_nu, fill, np.float32)
        return out.T if spec[rest_axes[0]][0] == "u" else out
    block = array[(slice(None),) * n_axis + (slice(lo, hi + 1),)]
    lerps = {}
    for a in rest_axes:
        indices = spec[a][1]
        n = array.shape[a]
        inside = (indices >= -0.5) & (indices <= n - 0.5)
        base = np.clip(np.floor(indices), 0, n - 1).astype(np.int64)
        need = np.unique(np.concatenate([base, np.minimum(base + 1, n - 1)]))
        if len(need) < n:
            block = np.take(block, need, axis=a)
            indices = np.searchsorted(need, base) + np.clip(indices - base, 0.0, 1.0)
        lerps[a] = (indices, inside)
    block = block.astype(np.float32)
    if slab_mm > 0:
        data = block.max(axis=n_axis)
    elif hi > lo:
        data = _along(block, n_axis, 0)
        data += (_along(block, n_axis, 1) - data) * w
    else:
        data = _along(block, n_axis, 0)
    rest = [lerps[a] for a in rest_axes]
    # the axis that shrinks most first: less data for the second pass
    for axis in sorted((0, 1), key=lambda i: len(rest[i][0]) / max(1, data.shape[i])):
        data = _lerp_take(data, rest[axis][0], axis, fill, rest[axis][1])
    return data.T if spec[rest_axes[0]][0] == "u" else data  # (rows along v, columns along u)


def _along(array: np.ndarray, axis: int, k: int) -> np.ndarray:
    """The k-th slice of `array` across `axis` (a view: basic indexing)."""
    return array[(slice(None),) * axis + (k,)]


def _lerp_take(data: np.ndarray, indices: np.ndarray, axis: int, fill: float, inside: np.ndarray | None = None) -> np.ndarray:
    """Samples of `data` at fractional `indices` along `axis` (linear); outside (`inside` False): `fill`."""
    n = data.shape[axis]
    if inside is None:
        inside = (indices >= -0.5) & (indices <= n - 0.5)
    if len(indices) == n and inside.all() and np.allclose(indices, np.arange(n), atol=1e-4):
        return data  # the plane's pixels are the voxels: nothing to interpolate
    i0 = np.floor(indices).astype(np.int64)
    w = (indices - i0).astype(np.float32)
    a = np.clip(i0, 0, n - 1)
    b = np.clip(i0 + 1, 0, n - 1)
    shape = [1] * data.ndim
    shape[axis] = len(indices)
    w = w.reshape(shape)
    out = np.take(data, a, axis=axis)
    if not np.all(w == 0):
        high = np.take(data, b, axis=axis)
        high -= out
        high *= w
        out += high
    if not inside.all():
        out = np.where(inside.reshape(shape), out, np.float32(fill))
    return out


def _trilinear(array: np.ndarray, index: np.ndarray, fill: float) -> np.ndarray:
    """Trilinear samples of a (frames, rows, columns) array at fractional (..., 3) indices."""
    shape = np.array(array.shape[:3])
    inside = np.all((index >= -0.5) & (index <= shape - 0.5), axis=-1)
    i0 = np.floor(index).astype(np.int64)
    t = (index - i0).astype(np.float32)
    out = np.zeros(index.shape[:-1], np.float32)
    for df in (0, 1):
        for dr in (0, 1):
            for dc in (0, 1):
                f = np.clip(i0[..., 0] + df, 0, shape[0] - 1)
                r = np.clip(i0[..., 1] + dr, 0, shape[1] - 1)
                c = np.clip(i0[..., 2] + dc, 0, shape[2] - 1)
                weight = ((t[..., 0] if df else 1 - t[..., 0]) * (t[..., 1] if dr else 1 - t[..., 1])
                          * (t[..., 2] if dc else 1 - t[..., 2]))
                out += weight * array[f, r, c]
    return np.where(inside, out, np.float32(fill))
