"""A stack of frames in patient space: the array plus its index -> patient affine."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workstation.core.overlays import OverlayPlane


def slice_normal(orientation: tuple[float, ...]) -> np.ndarray:
    """Unit normal of a plane given by ImageOrientationPatient (row dir, column dir)."""
    row = np.asarray(orientation[:3], dtype=float)
    col = np.asarray(orientation[3:6], dtype=float)
    normal = np.cross(row, col)
    return normal / (np.linalg.norm(normal) or 1.0)


def frame_affine(
    position: tuple[float, float, float] | None,
    orientation: tuple[float, ...] | None,
    pixel_spacing: tuple[float, float] | None,
    slice_vector: np.ndarray | None,
) -> np.ndarray:
    """4x4 affine mapping (column, row, slice, 1) indices to patient (x, y, z, 1) mm.

    Unknown parts fall back to identity directions and 1 mm spacing, so a
    secondary capture still gets a usable (if not anatomical) geometry.
    """
    orient = orientation or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    row_spacing, col_spacing = pixel_spacing or (1.0, 1.0)
    affine = np.eye(4)
    affine[:3, 0] = np.asarray(orient[:3], dtype=float) * col_spacing
    affine[:3, 1] = np.asarray(orient[3:6], dtype=float) * row_spacing
    affine[:3, 2] = slice_vector if slice_vector is not None else slice_normal(orient)
    affine[:3, 3] = position or (0.0, 0.0, 0.0)
    return affine


@dataclass
class Volume:
    """Frames of one display set in display order, in modality units (e.g. HU).

    `array` is (frames, rows, columns) for greyscale or (frames, rows, columns, 3)
    for colour. `loaded[k]` says whether frame k holds decoded data yet; frames
    that failed to decode stay unloaded and are listed in `frame_errors`.
    `overlays` holds the overlay planes (60xx) of the frames that have any.
    """

    array: np.ndarray
    affine: np.ndarray
    pixel_spacing: tuple[float, float]  # (between rows, between columns) mm
    frame_origins: np.ndarray | None = None  # (frames, 3) patient position of each frame's first voxel
    loaded: np.ndarray = field(init=False)
    frame_errors: dict[int, str] = field(default_factory=dict)
    overlays: dict[int, list[OverlayPlane]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.loaded = np.zeros(self.array.shape[0], dtype=bool)
        if self.frame_origins is not None:
            self.frame_origins = np.asarray(self.frame_origins, dtype=float).reshape(self.array.shape[0], 3)

    @property
    def frame_count(self) -> int:
        return int(self.array.shape[0])

    @property
    def is_colour(self) -> bool:
        return self.array.ndim == 4

    @property
    def fully_loaded(self) -> bool:
        return bool(self.loaded.all())

    @property
    def loaded_count(self) -> int:
        """Frames holding decoded data: the one decode count the status bar and the viewer both show."""
        return int(self.loaded.sum())

    @property
    def missing_frames(self) -> list[int]:
        """Frames neither decoded nor failed: what a resumed load still has to do."""
        return [int(k) for k in np.flatnonzero(~self.loaded) if int(k) not in self.frame_errors]

    def index_to_patient(self, column: float, row: float, frame: float) -> np.ndarray:
        """Patient (x, y, z) in mm of a (possibly fractional) voxel index.

        With known per-frame positions the frame's own origin is used, so a gap
        in the stack does not shift the slices after it.
        """
        in_plane = self.affine[:3, 0] * column + self.affine[:3, 1] * row
        if self.frame_origins is None or self.frame_count < 2:
            return in_plane + self.affine[:3, 2] * frame + self.affine[:3, 3]
        origins = self.frame_origins
        k = int(np.clip(np.floor(frame), 0, self.frame_count - 2))
        origin = origins[k] + (frame - k) * (origins[k + 1] - origins[k])
        return in_plane + origin

    def patient_to_index(self, point: tuple[float, float, float]) -> np.ndarray:
        """Inverse of index_to_patient: (column, row, frame)."""
        column, row, frame = (np.linalg.inv(self.affine) @ np.array([*point, 1.0]))[:3]
        if self.frame_origins is not None and self.frame_count >= 2:
            normal = self.affine[:3, 2] / (np.linalg.norm(self.affine[:3, 2]) or 1.0)
            distances = self.frame_origins @ normal
            if np.all(np.diff(distances) > 0):
                frame = _interp_extrapolated(float(np.dot(point, normal)), distances)
        return np.array([column, row, frame])


def _interp_extrapolated(x: float, xs: np.ndarray) -> float:
    """Fractional index of `x` in increasing `xs`, continued linearly past both ends."""
    if x <= xs[0]:
        return float((x - xs[0]) / (xs[1] - xs[0]))
    if x >= xs[-1]:
        return float(len(xs) - 1 + (x - xs[-1]) / (xs[-1] - xs[-2]))
    return float(np.interp(x, xs, np.arange(len(xs))))
