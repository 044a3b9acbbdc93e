"""Deterministic synthetic chest CT phantom (numpy only).

The volume is painted slice by slice from analytic 2D shapes whose size and
position vary smoothly with a normalised height ``t`` (0 = lung bases / upper
abdomen, 1 = above the lung apices). The aim is a study that looks like a
chest CT at lung and mediastinal windows, carries known nodules as ground
truth, and contains no real patient data.

Coordinates are DICOM LPS patient coordinates in mm: +x patient left (image
right), +y posterior (image down), +z superior. Slice index k grows with z.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

HU_MIN, HU_MAX = -1024, 3071
DEFAULT_FOV_MM = 358.4  # 512 x 0.7 mm, a typical chest reconstruction FOV
MODEL_HEIGHT_MM = 300.0  # cranio-caudal extent the anatomy is modelled on

AIR, FAT, MED_FAT, MUSCLE, SOFT, LIVER = -1000.0, -100.0, -90.0, 50.0, 40.0, 60.0
BLOOD, CSF, CARTILAGE, DISC = 42.0, 20.0, 130.0, 85.0
CORTEX, MARROW = 850.0, 230.0
TABLE_SHELL, TABLE_CORE = 250.0, -850.0


@dataclass(frozen=True)
class Nodule:
    """Ground truth for one spherical nodule."""

    center_mm: tuple[float, float, float]
    diameter_mm: float
    center_index: tuple[int, int, int]  # (k, row, col), k in ascending-z order
    hu: float


@dataclass
class Phantom:
    """A synthetic CT volume in HU, index 0 = most inferior slice."""

    hu: np.ndarray  # int16, (slices, rows, cols)
    pixel_spacing_mm: float
    slice_thickness_mm: float
    origin_mm: tuple[float, float, float]  # centre of voxel [0, 0, 0]
    nodules: list[Nodule]
    lung_mask: np.ndarray | None = field(default=None, repr=False)  # noise-free lungs
    noise_sigma_hu: float = 0.0
    randomised: bool = False

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]

    def index_to_mm(self, k: float, row: float, col: float) -> tuple[float, float, float]:
        """Patient position of a (k, row, col) voxel centre."""
        ox, oy, oz = self.origin_mm
        return (ox + col * self.pixel_spacing_mm,
                oy + row * self.pixel_spacing_mm,
                oz + k * self.slice_thickness_mm)

    def slice_position_mm(self, k: int) -> tuple[float, float, float]:
        """ImagePositionPatient of slice k (centre of its first pixel)."""
        return self.index_to_mm(k, 0, 0)


# --------------------------------------------------------------------------
# Anatomy parameters


@dataclass(frozen=True)
class _Anatomy:
    """Shape parameters; the defaults are the fixed demo patient."""

    body_a: float = 160.0  # lateral semi-axis of the skin outline
    body_b_ant: float = 112.0  # anterior semi-axis
    body_b_post: float = 118.0  # posterior semi-axis
    body_p: float = 2.3  # superellipse power (2 = ellipse, larger = boxier)
    fat_mm: float = 12.0
    muscle_mm: float = 16.0
    lung_width: float = 1.0
    lung_height: float = 1.0
    heart_scale: float = 1.0
    heart_dx: float = 0.0
    spine_scale: float = 1.0
    apex_t: float = 0.95
    dome_right_t: float = 0.36
    dome_left_t: float = 0.32
    lung_hu: float = -855.0
    noise_sigma: float = 12.0
    rib_shift_mm: float = 0.0
    vessel_seed: int = 20240607

    @property
    def cav_a(self) -> float:
        return self.body_a - self.fat_mm - self.muscle_mm

    @property
    def cav_b_ant(self) -> float:
        return self.body_b_ant - self.fat_mm - self.muscle_mm

    @property
    def cav_b_post(self) -> float:
        # The back muscles are thicker than the anterior/lateral chest wall.
        return self.body_b_post - self.fat_mm - 1.6 * self.muscle_mm

    @property
    def spine_y(self) -> float:
        return self.cav_b_post - 32.0 * self.spine_scale


def _random_anatomy(rng: np.random.Generator) -> _Anatomy:
    """Plausible patient-to-patient variation for detector training data."""
    u = rng.uniform
    fat, muscle = u(5.0, 26.0), u(10.0, 22.0)
    wall = fat + muscle  # keep a pleural cavity of sensible size inside it
    body_a = max(u(135.0, 172.0), wall + 100.0)
    body_b_ant = max(u(92.0, 122.0), wall + 70.0)
    body_b_post = min(body_b_ant + u(0.0, 10.0), 130.0)
    right_t = u(0.30, 0.42)
    return _Anatomy(
        body_a=body_a, body_b_ant=body_b_ant, body_b_post=body_b_post,
        body_p=u(2.0, 2.6), fat_mm=fat, muscle_mm=muscle,
        lung_width=u(0.9, 1.08), lung_height=u(0.9, 1.08),
        heart_scale=u(0.85, 1.2), heart_dx=u(-8.0, 10.0), spine_scale=u(0.9, 1.1),
        apex_t=u(0.9, 0.98), dome_right_t=right_t, dome_left_t=right_t - u(0.01, 0.06),
        lung_hu=u(-885.0, -810.0), noise_sigma=u(8.0, 20.0),
        rib_shift_mm=u(-12.0, 12.0), vessel_seed=int(rng.integers(2**31)),
    )


# --------------------------------------------------------------------------
# 2D painting primitives


@dataclass
class _Region:
    """A boolean mask inside a bounding box of the slice."""

    r0: int
    r1: int
    c0: int
    c1: int
    mask: np.ndarray

    def __and__(self, other: "_Region | None") -> "_Region | None":
        if other is None:
            return None
        r0, r1 = max(self.r0, other.r0), min(self.r1, other.r1)
        c0, c1 = max(self.c0, other.c0), min(self.c1, other.c1)
        if r0 >= r1 or c0 >= c1:
            return None
        mask = (self.mask[r0 - self.r0:r1 - self.r0, c0 - self.c0:c1 - self.c0]
                & other.mask[r0 - other.r0:r1 - other.r0, c0 - other.c0:c1 - other.c0])
        return _Region(r0, r1, c0, c1, mask)

    __rand__ = __and__  # lets ``None & region`` (an off-screen shape) give None


class _Canvas:
    """One axial slice being painted, with its lung mask."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y
        self.img = np.empty((y.size, x.size), np.float32)
        self.lung = np.zeros((y.size, x.size), bool)

    def reset(self) -> None:
        self.img.fill(AIR)
        self.lung.fill(False)

    def bounds(self, coords: np.ndarray, lo: float, hi: float) -> tuple[int, int]:
        return int(np.searchsorted(coords, lo)), int(np.searchsorted(coords, hi, "right"))

    def ellipse(self, cx: float, cy: float, a: float, b: float,
                b_post: float | None = None, p: float = 2.0) -> _Region | None:
        """Axis-aligned (super)ellipse; ``b_post`` is the posterior semi-axis."""
        b_post = b if b_post is None else b_post
        if a <= 0 or b <= 0 or b_post <= 0:
            return None
        c0, c1 = self.bounds(self.x, cx - a, cx + a)
        r0, r1 = self.bounds(self.y, cy - b, cy + b_post)
        if r0 >= r1 or c0 >= c1:
            return None
        u = np.abs((self.x[c0:c1] - cx) / a) ** p
        dy = self.y[r0:r1] - cy
        v = np.abs(dy / np.where(dy < 0, b, b_post)) ** p
        return _Region(r0, r1, c0, c1, (v[:, None] + u[None, :]) <= 1.0)

    def rotated_ellipse(self, cx: float, cy: float, a: float, b: float,
                        angle: float) -> _Region | None:
        reach = max(a, b)
        c0, c1 = self.bounds(self.x, cx - reach, cx + reach)
        r0, r1 = self.bounds(self.y, cy - reach, cy + reach)
        if r0 >= r1 or c0 >= c1:
            return None
        dx = (self.x[c0:c1] - cx)[None, :]
        dy = (self.y[r0:r1] - cy)[:, None]
        if a == 0 or b == 0:  # a degenerate ellipse covers no pixel (the division would only warn and say so)
            return _Region(r0, r1, c0, c1, np.zeros((r1 - r0, c1 - c0), bool))
        ca, sa = math.cos(angle), math.sin(angle)
        u, v = (dx * ca + dy * sa) / a, (-dx * sa + dy * ca) / b
        return _Region(r0, r1, c0, c1, u * u + v * v <= 1.0)

    def fill(self, region: _Region | None, value: float) -> None:
        """Paint a non-lung structure (it also removes lung there)."""
        if region is None:
            return
        rs, cs = slice(region.r0, region.r1), slice(region.c0, region.c1)
        self.img[rs, cs][region.mask] = value
        self.lung[rs, cs][region.mask] = False

    def fill_lung(self, region: _Region | None, values: np.ndarray) -> None:
        """Paint lung parenchyma from a full-slice value map."""
        if region is None:
            return
        rs, cs = slice(region.r0, region.r1), slice(region.c0, region.c1)
        self.img[rs, cs][region.mask] = values[rs, cs][region.mask]
        self.lung[rs, cs][region.mask] = True

    def bone(self, region_outer: _Region | None, region_inner: _Region | None) -> None:
        """Cortical shell with cancellous interior."""
        self.fill(region_outer, CORTEX)
        self.fill(region_inner, MARROW)


def _window(t: float, lo: float, hi: float) -> bool:
    return lo <= t <= hi


def _dome(t: float, top: float, bottom: float = 0.0) -> float:
    """0 above ``top``, growing like a rounded cap towards ``bottom``."""
    return math.sqrt(min(max((top - t) / max(top - bottom, 1e-6), 0.0), 1.0))


# --------------------------------------------------------------------------
# Anatomy, painted back to front


def _paint_table(cv: _Canvas, an: _Anatomy) -> None:
    """Curved carbon-fibre cradle with a foam core under the patient."""
    top = an.body_b_post + 3.0
    c0, c1 = cv.bounds(cv.x, -150.0, 150.0)
    r0, r1 = cv.bounds(cv.y, top - 25.0, top + 22.0)
    if r0 >= r1 or c0 >= c1:
        return
    x, y = cv.x[c0:c1], cv.y[r0:r1]
    radius = 650.0
    surface = top - (radius - np.sqrt(radius**2 - x**2))  # rises towards the edges
    depth = y[:, None] - surface[None, :]
    sub = cv.img[r0:r1, c0:c1]
    sub[(depth >= 0) & (depth <= 20)] = TABLE_CORE
    shell = max(2.0, float(cv.x[1] - cv.x[0]))  # stay visible on coarse grids
    sub[((depth >= 0) & (depth <= shell)) | ((depth >= 20 - shell) & (depth <= 20))] = TABLE_SHELL


def _paint_chest_wall(cv: _Canvas, an: _Anatomy) -> None:
    cv.fill(cv.ellipse(0, 0, an.body_a, an.body_b_ant, an.body_b_post, an.body_p), FAT)
    f = an.fat_mm
    cv.fill(cv.ellipse(0, 0, an.body_a - f, an.body_b_ant - f, an.body_b_post - f,
                       an.body_p), MUSCLE)
    # Thin intermuscular fat plane between pectoral muscles and ribs.
    cv.fill(cv.ellipse(0, 0, an.cav_a + 9, an.cav_b_ant + 9, an.cav_b_post + 12), FAT + 20)
    cv.fill(cv.ellipse(0, 0, an.cav_a + 7, an.cav_b_ant + 7, an.cav_b_post + 10), MUSCLE - 5)


def _cavity(cv: _Canvas, an: _Anatomy) -> _Region | None:
    return cv.ellipse(0, 0, an.cav_a, an.cav_b_ant, an.cav_b_post)


def _paint_lungs(cv: _Canvas, an: _Anatomy, t: float, lung_values: np.ndarray) -> None:
    cavity = _cavity(cv, an)
    cv.fill(cavity, MED_FAT)
    u = min(max((an.apex_t - t) / 0.33, 0.0), 1.0)
    s = math.sqrt(1.0 - (1.0 - u) ** 2)  # circular cap: a rounded apex
    if s <= 0:
        return
    a = 0.56 * an.cav_a * an.lung_width * s
    b = 1.1 * max(an.cav_b_ant, an.cav_b_post) * an.lung_height * s
    cy = (1.0 - s) * 0.35 * an.cav_b_post  # apices sit posteriorly
    for side in (-1, 1):
        cx = side * 0.52 * an.cav_a * (0.75 + 0.25 * s)
        cv.fill_lung(cv.ellipse(cx, cy, a, b, p=2.2) & cavity, lung_values)


def _paint_diaphragm(cv: _Canvas, an: _Anatomy, t: float) -> None:
    """Liver and spleen/stomach domes push up into the lung bases."""
    cavity = _cavity(cv, an)
    A, B = an.cav_a, 0.5 * (an.cav_b_ant + an.cav_b_post)
    for side, top, value in ((-1, an.dome_right_t, LIVER), (1, an.dome_left_t, SOFT)):
        rd = 1.15 * _dome(t, top, 0.02)
        if rd <= 0:
            continue
        dome = cv.ellipse(side * 0.3 * A, -0.25 * B, 0.8 * A * rd, 1.05 * B * rd)
        cv.fill(dome & cavity, value)
        if side == 1 and _window(t, 0.03, 0.2):
            bubble = cv.ellipse(0.35 * A, -0.45 * B, 24 * rd, 14 * rd, 20 * rd)
            cv.fill(bubble & dome & cavity, AIR)


def _paint_heart(cv: _Canvas, an: _Anatomy, t: float) -> None:
    cavity = _cavity(cv, an)
    # Mediastinal band: keeps the lungs apart, fat unless an organ is painted.
    widen = min(max((t - 0.55) / 0.15, 0.0), 1.0)  # upper mediastinum is wider
    band_a = 0.11 * an.cav_a * (1.0 + 0.4 * widen)
    cv.fill(cv.ellipse(an.heart_dx + 3, -10, band_a, 1.2 * an.cav_b_ant,
                       an.cav_b_post) & cavity, MED_FAT)
    hp = math.sin(math.pi * (t - 0.1) / 0.42) if _window(t, 0.1, 0.52) else 0.0
    if hp <= 0:
        return
    s = math.sqrt(hp) * an.heart_scale
    cx, cy = 0.12 * an.cav_a + an.heart_dx, -0.25 * an.cav_b_ant
    a, b = 0.45 * an.cav_a * s, 0.42 * an.cav_b_ant * s
    axis = math.radians(-35.0)  # long axis points anterior and to the left
    cv.fill(cv.rotated_ellipse(cx, cy, a + 5, b + 5, axis) & cavity, MED_FAT)
    cv.fill(cv.rotated_ellipse(cx, cy, a, b, axis) & cavity, SOFT)


def _paint_great_vessels(cv: _Canvas, an: _Anatomy, t: float) -> None:
    ys = an.spine_y
    circle = lambda cx, cy, r: cv.ellipse(cx, cy, r, r)  # noqa: E731
    if _window(t, 0.42, 0.64):
        cv.fill(circle(8, -35, 14), BLOOD)  # ascending aorta
    if _window(t, 0.63, 0.69):
        (ax, ay), (dx_, dy_) = (8.0, -35.0), (22.0, ys - 14)  # arch joins the two
        half = 0.5 * math.hypot(dx_ - ax, dy_ - ay) + 12
        cv.fill(cv.rotated_ellipse(0.5 * (ax + dx_) + 6, 0.5 * (ay + dy_), half, 13,
                                   math.atan2(dy_ - ay, dx_ - ax)), BLOOD)
    if t <= 0.67:
        cv.fill(circle(22 if t > 0.12 else 8, ys - 14 if t > 0.12 else ys - 22, 12), BLOOD)
    if _window(t, 0.47, 0.56):
        cv.fill(circle(24, -36, 14), BLOOD)  # pulmonary trunk
    if _window(t, 0.5, 0.55):
        cv.fill(cv.ellipse(-8, -12, 34, 8), BLOOD)  # right pulmonary artery
    if _window(t, 0.54, 0.58):
        cv.fill(cv.ellipse(36, -6, 18, 9), BLOOD)  # left pulmonary artery
    if _window(t, 0.45, 0.82):
        cv.fill(circle(-24, -32, 10), BLOOD)  # superior vena cava
    if t >= 0.69:
        for cx, cy, r in ((-12, -38, 6), (4, -36, 5.5), (18, -28, 5.5),
                          (-30, -48, 7), (22, -55, 6)):
            cv.fill(circle(cx, cy, r), BLOOD)


def _paint_airways(cv: _Canvas, an: _Anatomy, t: float) -> None:
    ys = an.spine_y
    circle = lambda cx, cy, r: cv.ellipse(cx, cy, r, r)  # noqa: E731
    if t > 0.05:
        cv.fill(circle(5, ys - 22, 6.5), SOFT)  # oesophagus
    if t >= 0.58:
        cv.fill(circle(0, ys - 40, 11), SOFT)
        cv.fill(circle(0, ys - 40, 9), AIR)
    elif t >= 0.47:
        spread = 12 + (0.58 - t) * 260
        for side in (-1, 1):
            cx, cy = side * spread, ys - 38 + (0.58 - t) * 40
            cv.fill(circle(cx, cy, 7.5), SOFT)
            cv.fill(circle(cx, cy, 6), AIR)


def _paint_spine(cv: _Canvas, an: _Anatomy, zm: float) -> None:
    k, yv = an.spine_scale, an.spine_y
    canal_y = yv + 26 * k
    ring = lambda cx, cy, a, b, w: (cv.ellipse(cx, cy, a, b),  # noqa: E731
                                    cv.ellipse(cx, cy, a - w, b - w))
    for side in (-1, 1):  # transverse processes
        cv.fill(cv.ellipse(side * 24 * k, canal_y - 2 * k, 14 * k, 5 * k), CORTEX - 150)
    cv.fill(cv.ellipse(0, canal_y + 17 * k, 4 * k, 10 * k), CORTEX - 100)  # spinous
    cv.bone(*ring(0, canal_y, 14 * k, 13 * k, 4 * k))  # neural arch
    cv.fill(cv.ellipse(0, canal_y, 8.5 * k, 8 * k), CSF)
    in_disc = (zm + 11.0) % 27.0 < 6.0
    if in_disc:
        cv.fill(cv.ellipse(0, yv, 20 * k, 17 * k), DISC)
    else:
        cv.bone(*ring(0, yv, 19 * k, 17 * k, 2.2))


def _paint_sternum_scapulae(cv: _Canvas, an: _Anatomy, t: float) -> None:
    if _window(t, 0.33, 0.9):
        y = -an.cav_b_ant - 8
        a = 22.0 if t > 0.75 else 13.0
        cv.bone(cv.ellipse(0, y, a, 6.5), cv.ellipse(0, y, a - 2.2, 4.3))
    if _window(t, 0.6, 0.93):
        phi = 0.3 * math.pi
        A, B = an.cav_a + 12, an.cav_b_post + 12
        length = 42.0 * math.sin(math.pi * (t - 0.6) / 0.33) ** 0.5
        for side in (-1, 1):
            cx, cy = side * A * math.sin(phi), B * math.cos(phi)
            tangent = math.atan2(-B * math.sin(phi), side * A * math.cos(phi))
            cv.fill(cv.rotated_ellipse(cx, cy, length, 3.0, tangent), CORTEX - 200)


class _Ribs:
    """Ribs as sloping elliptical tubes just outside the pleural cavity.

    Precomputes, for the pixels of a band around the cavity, the angle from
    the posterior midline and the radial distance, so each slice only needs
    cheap arithmetic on those pixels.
    """

    COUNT, SPACING, DROP = 12, 23.0, 130.0
    HALF_HEIGHT, HALF_THICK = 4.5, 3.5

    def __init__(self, cv: _Canvas, an: _Anatomy):
        A = an.cav_a + 4.0
        Bp, Ba = an.cav_b_post + 4.0, an.cav_b_ant + 4.0
        X, Y = np.meshgrid(cv.x, cv.y)
        B = np.where(Y >= 0, Bp, Ba)
        u, v = X / A, Y / B
        rho = np.hypot(u, v)
        phi = np.arccos(np.clip(v / np.maximum(rho, 1e-6), -1.0, 1.0))
        dr = (rho - 1.0) * (A * np.abs(np.sin(phi)) + B * np.abs(np.cos(phi)))
        band = np.abs(dr) < self.HALF_THICK + 0.5
        self.rows, self.cols = np.nonzero(band)
        self.phi, self.dr = phi[band], dr[band]
        self.drop = self.DROP * (self.phi / math.pi) ** 1.2
        self.top = an.apex_t * MODEL_HEIGHT_MM - 8.0 + an.rib_shift_mm

    def paint(self, cv: _Canvas, zm: float) -> None:
        i = np.rint((self.top - self.drop - zm) / self.SPACING)
        ok = (i >= 0) & (i < self.COUNT)
        dz = zm - (self.top - i * self.SPACING - self.drop)
        e = (self.dr / self.HALF_THICK) ** 2 + (dz / self.HALF_HEIGHT) ** 2
        bony_end = np.where(i < 7, 0.8, np.where(i < 10, 0.7, 0.45)) * math.pi
        start = self.phi > 0.1 * math.pi
        bone = ok & start & (e < 1.0) & (self.phi < bony_end)
        cartilage = ok & (e < 0.8) & (self.phi >= bony_end) & (self.phi < 0.93 * math.pi) & (i < 10)
        values = np.where(e < 0.4, MARROW, CORTEX)
        for sel, val in ((cartilage, np.full(e.shape, CARTILAGE)), (bone, values)):
            r, c = self.rows[sel], self.cols[sel]
            cv.img[r, c] = val[sel]
            cv.lung[r, c] = False


# --------------------------------------------------------------------------
# Pulmonary vessels: a random branching tree per lung, in model space


def _vessel_tree(an: _Anatomy) -> np.ndarray:
    """Segments (x0, y0, z0, x1, y1, z1, radius) in model mm.

    A short branching tree gives the large hilar vessels; many small
    segments pointing away from the hilum fill the periphery evenly.
    """
    rng = np.random.default_rng(an.vessel_seed)
    segments: list[tuple[float, ...]] = []

    def grow(p: np.ndarray, d: np.ndarray, length: float, radius: float, depth: int) -> None:
        q = p + d * length
        segments.append((*p, *q, radius))
        if depth == 0:
            return
        for _ in range(2):
            nd = d + rng.normal(0.0, 0.45, 3)
            nd /= np.linalg.norm(nd)
            grow(q, nd, length * rng.uniform(0.65, 0.8), radius * 0.72, depth - 1)

    hilum_z = 0.53 * an.apex_t * MODEL_HEIGHT_MM
    for side in (-1, 1):
        hilum = np.array([side * 0.28 * an.cav_a, 0.0, hilum_z])
        for _ in range(16):
            up = rng.uniform(-1.0, 1.0)  # lobar roots spread along the hilum
            root = hilum + np.array([0.0, rng.uniform(-15, 15), 40 * up])
            d = np.array([side * rng.uniform(0.2, 1.0), rng.uniform(-1, 1),
                          up * 1.5 + rng.uniform(-0.6, 0.6)])
            grow(root, d / np.linalg.norm(d), rng.uniform(22, 32), 3.6, 3)
        segments.extend(_peripheral_vessels(rng, an, hilum))
    return np.asarray(segments, np.float32)


def _peripheral_vessels(rng: np.random.Generator, an: _Anatomy, hilum: np.ndarray,
                        count: int = 2200) -> list[tuple[float, ...]]:
    """Short segments throughout one lung, thinner further from the hilum."""
    side = np.sign(hilum[0])
    centre = np.column_stack([
        side * rng.uniform(0.0, an.cav_a, count),
        rng.uniform(-an.cav_b_ant, an.cav_b_post, count),
        rng.uniform(0.0, an.apex_t * MODEL_HEIGHT_MM, count)])
    radial = centre - hilum
    dist = np.linalg.norm(radial, axis=1, keepdims=True)
    d = radial / np.maximum(dist, 1e-6) + rng.normal(0.0, 0.35, (count, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    half = rng.uniform(3.0, 7.0, (count, 1)) * d
    radius = np.clip(1.9 * np.exp(-dist[:, 0] / 55.0), 0.55, 1.9) * rng.uniform(0.8, 1.2, count)
    return [tuple(v) for v in np.column_stack([centre - half, centre + half, radius])]


def _paint_vessels(cv: _Canvas, segs: np.ndarray, zm: float, half: float, lung_hu: float) -> None:
    """Draw the in-slab part of every segment, only over lung.

    Segments are sampled as points and splatted with a fixed stencil in one
    vectorised pass: thousands of tiny vessels cost a few numpy calls.
    """
    z0, z1, r = segs[:, 2], segs[:, 5], segs[:, 6]
    near = (np.minimum(z0, z1) <= zm + half + r) & (np.maximum(z0, z1) >= zm - half - r)
    seg = segs[near]
    if seg.size == 0:
        return
    p0, d, rad = seg[:, 0:3], seg[:, 3:6] - seg[:, 0:3], seg[:, 6]
    dz = np.where(np.abs(d[:, 2]) > 1e-3, d[:, 2], 1e-3)
    ta = (zm - half - rad - p0[:, 2]) / dz
    tb = (zm + half + rad - p0[:, 2]) / dz
    lo = np.clip(np.minimum(ta, tb), 0.0, 1.0)
    hi = np.clip(np.maximum(ta, tb), 0.0, 1.0)
    flat = np.abs(d[:, 2]) <= 1e-3
    lo, hi = np.where(flat, 0.0, lo), np.where(flat, 1.0, hi)
    keep = hi > lo
    p0, d, rad, lo, hi = p0[keep], d[keep], rad[keep], lo[keep], hi[keep]
    # Sample each in-slab piece every half radius (at most one pixel).
    step = np.minimum(0.5 * rad + 0.2, float(cv.x[1] - cv.x[0]))
    length = np.hypot(d[:, 0], d[:, 1]) * (hi - lo)
    count = (np.ceil(length / step) + 1).astype(int)
    owner = np.repeat(np.arange(count.size), count)
    frac = (np.arange(owner.size) - np.repeat(np.cumsum(count) - count, count)) / np.maximum(
        np.repeat(count - 1, count), 1)
    tpar = lo[owner] + (hi - lo)[owner] * frac
    px = p0[owner, 0] + tpar * d[owner, 0]
    py = p0[owner, 1] + tpar * d[owner, 1]
    _splat(cv, px, py, rad[owner], lung_hu)


def _splat(cv: _Canvas, px: np.ndarray, py: np.ndarray, rad: np.ndarray, lung_hu: float) -> None:
    """Max-composite soft discs at (px, py) into the lung pixels of ``cv``."""
    ps = float(cv.x[1] - cv.x[0])
    rows, cols = cv.img.shape
    r0 = np.rint((py - cv.y[0]) / ps).astype(int)
    c0 = np.rint((px - cv.x[0]) / ps).astype(int)
    ok = (r0 >= 0) & (r0 < rows) & (c0 >= 0) & (c0 < cols)
    ok[ok] = cv.lung[r0[ok], c0[ok]]  # centres outside lung are never visible
    for lo, hi in ((0.0, 1.0), (1.0, 2.0), (2.0, np.inf)):  # stencil per size class
        sel = ok & (rad >= lo) & (rad < hi)
        if sel.any():
            _splat_class(cv, px[sel], py[sel], rad[sel], r0[sel], c0[sel], lung_hu)


def _splat_class(cv: _Canvas, px: np.ndarray, py: np.ndarray, rad: np.ndarray,
                 r0: np.ndarray, c0: np.ndarray, lung_hu: float) -> None:
    ps = float(cv.x[1] - cv.x[0])
    rows, cols = cv.img.shape
    h = int(math.ceil((float(rad.max()) + 0.8) / ps))
    off = np.arange(-h, h + 1)
    row = r0[:, None, None] + off[None, :, None]
    col = c0[:, None, None] + off[None, None, :]
    dist = np.hypot(cv.x[0] + col * ps - px[:, None, None], cv.y[0] + row * ps - py[:, None, None])
    soft = max(0.8, ps)  # edge width: at least one pixel
    inside = np.clip((rad[:, None, None] - dist) / soft + 0.5, 0.0, 1.0)
    row, col = np.broadcast_arrays(row, col)
    ok = (inside > 0) & (row >= 0) & (row < rows) & (col >= 0) & (col < cols)
    idx = row[ok] * cols + col[ok]
    # Partial volume: thin vessels (relative to slab and pixel) look fainter.
    peak = lung_hu + (BLOOD - lung_hu) * np.minimum(1.0, rad / 2.0) * np.minimum(1.0, 2 * rad / ps)
    val = (lung_hu + (peak[:, None, None] - lung_hu) * inside)[ok]
    lung = cv.lung.ravel()[idx]
    np.maximum.at(cv.img.reshape(-1), idx[lung], val[lung].astype(np.float32))


# --------------------------------------------------------------------------
# Whole volume


def _blur(img: np.ndarray) -> np.ndarray:
    """Separable [1 4 6 4 1]/16 blur: a scanner-like point spread function."""
    p = np.pad(img, ((0, 0), (2, 2)), mode="edge")
    h = (p[:, :-4] + p[:, 4:] + 4 * (p[:, 1:-3] + p[:, 3:-1]) + 6 * p[:, 2:-2]) * (1 / 16)
    p = np.pad(h, ((2, 2), (0, 0)), mode="edge")
    return (p[:-4] + p[4:] + 4 * (p[1:-3] + p[3:-1]) + 6 * p[2:-2]) * (1 / 16)


def _paint_slice(cv: _Canvas, an: _Anatomy, ribs: _Ribs, segs: np.ndarray, t: float,
                 half_slab: float, lung_values: np.ndarray) -> None:
    zm = t * MODEL_HEIGHT_MM
    cv.reset()
    _paint_table(cv, an)
    _paint_chest_wall(cv, an)
    _paint_lungs(cv, an, t, lung_values)
    _paint_diaphragm(cv, an, t)
    _paint_heart(cv, an, t)
    _paint_great_vessels(cv, an, t)
    _paint_airways(cv, an, t)
    _paint_spine(cv, an, zm)
    _paint_sternum_scapulae(cv, an, t)
    ribs.paint(cv, zm)
    _paint_vessels(cv, segs, zm, half_slab, an.lung_hu)


def _paint_anatomy(an: _Anatomy, slices: int, x: np.ndarray, y: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free HU volume (int16) and lung mask."""
    cv = _Canvas(x, y)
    ribs, segs = _Ribs(cv, an), _vessel_tree(an)
    # Dependent (posterior) lung is slightly denser.
    lung_values = np.broadcast_to(
        (an.lung_hu + 35.0 * y / an.cav_b_post)[:, None], cv.img.shape).astype(np.float32)
    vol = np.empty((slices, y.size, x.size), np.int16)
    lung = np.empty(vol.shape, bool)
    half_slab = 0.5 * MODEL_HEIGHT_MM / max(slices - 1, 1)
    blur = float(x[1] - x[0]) <= 1.0  # coarse pixels already average the PSF away
    for k in range(slices):
        t = k / max(slices - 1, 1)
        _paint_slice(cv, an, ribs, segs, t, half_slab, lung_values)
        np.rint(_blur(cv.img) if blur else cv.img, out=cv.img)
        vol[k] = cv.img
        lung[k] = cv.lung
    return vol, lung


# --------------------------------------------------------------------------
# Nodules


def _nodule_diameters(rng: np.random.Generator, count: int | None, randomise: bool) -> list[float]:
    if randomise:
        n = int(rng.integers(0, 7)) if count is None else count
        return [float(np.exp(rng.uniform(math.log(3.0), math.log(25.0)))) for _ in range(n)]
    n = int(rng.integers(4, 7)) if count is None else count
    sizes = [float(rng.uniform(6.0, 20.0)) if i < 2 else float(rng.uniform(4.0, 20.0))
             for i in range(n)]
    rng.shuffle(sizes)
    return sizes


def _sphere_offsets(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Integer (k, r, c) offsets of voxel centres within ``radius_mm``."""
    ext = np.ceil(radius_mm / spacing).astype(int)
    grids = np.meshgrid(*(np.arange(-e, e + 1) for e in ext), indexing="ij")
    off = np.stack([g.ravel() for g in grids], axis=1)
    dist = np.sqrt((((off * spacing) ** 2).sum(axis=1)))
    return off[dist <= radius_mm]


def _fits(lung: np.ndarray, centre: np.ndarray, offsets: np.ndarray) -> bool:
    idx = centre + offsets
    if (idx < 0).any() or (idx >= np.array(lung.shape)).any():
        return False
    return bool(lung[idx[:, 0], idx[:, 1], idx[:, 2]].all())


def _place_nodules(rng: np.random.Generator, lung: np.ndarray, diameters: list[float],
                   spacing: np.ndarray, min_diameter: float) -> list[tuple[np.ndarray, float]]:
    """Random centres (voxel units, sub-voxel) whose spheres lie inside lung."""
    placed: list[tuple[np.ndarray, float]] = []
    shape = np.array(lung.shape)
    for want in diameters:
        d = want
        offsets = _sphere_offsets(d / 2 + 1.0 + 0.5 * spacing[0], spacing)
        for attempt in range(3000):
            if attempt and attempt % 500 == 0:  # hard to fit: shrink a little
                d = max(d * 0.85, min(min_diameter, want))
                offsets = _sphere_offsets(d / 2 + 1.0 + 0.5 * spacing[0], spacing)
            centre = rng.integers(0, shape)
            if not lung[tuple(centre)]:
                continue
            pos = centre + rng.uniform(-0.35, 0.35, 3) * np.array([0.5, 1.0, 1.0])
            too_close = any(
                np.linalg.norm((pos - p) * spacing) < (d + pd) / 2 + 5.0 for p, pd in placed)
            if too_close:
                continue
            if _fits(lung, centre, offsets):
                placed.append((pos, d))
                break
    return placed


def _draw_nodule(vol: np.ndarray, pos: np.ndarray, diameter: float, hu: float,
                 spacing: np.ndarray) -> None:
    """Sphere with a one-pixel soft edge (partial volume)."""
    radius = diameter / 2
    ext = np.ceil((radius + spacing[1]) / spacing).astype(int)
    lo = np.maximum(np.floor(pos).astype(int) - ext, 0)
    hi = np.minimum(np.ceil(pos).astype(int) + ext + 1, vol.shape)
    axes = [(np.arange(lo[i], hi[i]) - pos[i]) * spacing[i] for i in range(3)]
    dist = np.sqrt(axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2
                   + axes[2][None, None, :] ** 2)
    frac = np.clip((radius - dist) / spacing[1] + 0.5, 0.0, 1.0)
    block = vol[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    block[...] = np.rint(block + (hu - block) * frac).astype(np.int16)


# --------------------------------------------------------------------------
# Public entry point


def make_chest_phantom(seed: int = 0, slices: int = 120, size: int = 512,
                       slice_thickness_mm: float = 2.5,
                       pixel_spacing_mm: float | None = None,
                       nodule_count: int | None = None,
                       randomise: bool = False) -> Phantom:
    """Build a deterministic synthetic chest CT volume.

    The scan always covers upper abdomen to lung apices; ``slices`` sets the
    sampling along z. ``pixel_spacing_mm=None`` keeps a 358.4 mm field of
    view (0.7 mm at 512), so small test volumes still show the whole chest.
    With ``randomise=False`` the anatomy is fixed and the seed only drives
    nodules and noise.
    """
    if slices < 1 or size < 8:
        raise ValueError("need slices >= 1 and size >= 8")
    spacing_xy = (round(DEFAULT_FOV_MM / size, 6) if pixel_spacing_mm is None
                  else float(pixel_spacing_mm))
    anat_rng, nodule_rng, noise_rng = np.random.default_rng(seed).spawn(3)
    an = _random_anatomy(anat_rng) if randomise else _Anatomy()

    centre = (np.arange(size) - (size - 1) / 2) * spacing_xy  # volume centred on 0
    vol, lung = _paint_anatomy(an, slices, centre.astype(np.float32), centre.astype(np.float32))

    spacing = np.array([slice_thickness_mm, spacing_xy, spacing_xy])
    origin = (float(centre[0]), float(centre[0]), -(slices - 1) / 2 * float(slice_thickness_mm))
    nodules = _add_nodules(vol, lung, nodule_rng, nodule_count, randomise, spacing, origin)
    _add_noise(vol, noise_rng, an.noise_sigma)
    return Phantom(hu=vol, pixel_spacing_mm=spacing_xy,
                   slice_thickness_mm=float(slice_thickness_mm), origin_mm=origin,
                   nodules=nodules, lung_mask=lung, noise_sigma_hu=an.noise_sigma,
                   randomised=randomise)


def _add_nodules(vol: np.ndarray, lung: np.ndarray, rng: np.random.Generator,
                 count: int | None, randomise: bool, spacing: np.ndarray,
                 origin: tuple[float, float, float]) -> list[Nodule]:
    diameters = _nodule_diameters(rng, count, randomise)
    min_d = 3.0 if randomise else 6.0
    nodules = []
    for pos, d in _place_nodules(rng, lung, diameters, spacing, min_d):
        d, hu = round(d, 2), round(float(rng.uniform(30.0, 50.0)), 1)
        _draw_nodule(vol, pos, d, hu, spacing)
        k, r, c = (int(v) for v in np.rint(pos))
        mm = (origin[0] + pos[2] * spacing[2], origin[1] + pos[1] * spacing[1],
              origin[2] + pos[0] * spacing[0])
        nodules.append(Nodule(center_mm=tuple(round(float(v), 3) for v in mm),
                              diameter_mm=d, center_index=(k, r, c), hu=hu))
    return nodules


def _add_noise(vol: np.ndarray, rng: np.random.Generator, sigma: float) -> None:
    """Gaussian quantum noise, added slice by slice to bound memory."""
    for k in range(vol.shape[0]):
        noisy = vol[k] + rng.standard_normal(vol.shape[1:], dtype=np.float32) * sigma
        vol[k] = np.clip(np.rint(noisy), HU_MIN, HU_MAX)
