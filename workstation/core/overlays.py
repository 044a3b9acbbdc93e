"""Overlay planes (DICOM 60xx groups) placed on the image they annotate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class OverlayPlane:
    """One overlay on one frame, kept as the small block of bits that holds its marks.

    Only the bounding box of the set bits is stored (not a frame-sized mask), so
    a multi-frame overlay costs about what its marks cover.
    """

    bits: np.ndarray  # (h, w) bool
    top: int  # image row of bits[0, 0] (0-based)
    left: int  # image column of bits[0, 0]
    group: int = 0x6000
    kind: str = "G"  # G: graphics, R: region of interest
    label: str = ""

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The plane as a frame-sized boolean mask."""
        full = np.zeros(shape, dtype=bool)
        h, w = self.bits.shape
        full[self.top:self.top + h, self.left:self.left + w] = self.bits
        return full


def place_overlay(bits: np.ndarray, origin: tuple[int, int], image_shape: tuple[int, int],
                  group: int = 0x6000, kind: str = "G", label: str = "") -> OverlayPlane | None:
    """Put an overlay of (rows, columns) bits at its 1-based OverlayOrigin (row, column) on an image.

    The origin may be zero or negative and the overlay may be larger than the
    image: what falls outside is cut off. None when none of its marks land on the image.
    """
    rows, cols = image_shape
    top, left = int(origin[0]) - 1, int(origin[1]) - 1
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + bits.shape[0], rows), min(left + bits.shape[1], cols)
    if r1 <= r0 or c1 <= c0:
        return None
    inside = bits[r0 - top:r1 - top, c0 - left:c1 - left] != 0
    used_rows, used_cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if used_rows.size == 0:
        return None
    (a, b), (c, d) = used_rows[[0, -1]], used_cols[[0, -1]]
    return OverlayPlane(inside[a:b + 1, c:d + 1].copy(), r0 + int(a), c0 + int(c), group, kind, label)


def overlay_frame_targets(overlay_frames: int, image_frame_origin: int, image_frames: int) -> list[tuple[int, int]]:
    """(overlay frame, image frame) pairs: overlay frame f covers image frame ImageFrameOrigin - 1 + f."""
    first = int(image_frame_origin) - 1
    return [(f, first + f) for f in range(max(int(overlay_frames), 0)) if 0 <= first + f < image_frames]
