"""Overlay planes (60xx groups) of an instance, read with pydicom and placed on its frames.

Header values are never trusted for sizes: the overlay's rows x columns x
frames must fit in the Overlay Data actually present before anything is
unpacked, and only the part that lands on the image is kept.
"""

from __future__ import annotations

import logging

import pydicom
from pydicom.dataset import Dataset

from workstation.core.overlays import OverlayPlane, overlay_frame_targets, place_overlay
from workstation.core.study import InstanceHeader
from workstation.dicom.limits import open_bounded

log = logging.getLogger(__name__)

OVERLAY_GROUPS = tuple(range(0x6000, 0x6020, 2))
_DATA = 0x3000


def overlay_groups(ds: Dataset) -> tuple[int, ...]:
    """Groups holding Overlay Data (a header-only read suffices: 60xx comes before Pixel Data)."""
    return tuple(g for g in OVERLAY_GROUPS if (g, _DATA) in ds)


def read_overlays(header: InstanceHeader) -> dict[int, list[OverlayPlane]]:
    """The instance's overlay planes by frame of the instance; {} if it has none or they are unusable."""
    if not header.overlay_groups:
        return {}
    with open_bounded(header.location) as fp:
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
    return overlays_of(ds, (header.pixel.rows, header.pixel.columns), header.frames)


def overlays_of(ds: Dataset, image_shape: tuple[int, int], image_frames: int) -> dict[int, list[OverlayPlane]]:
    planes: dict[int, list[OverlayPlane]] = {}
    for group in overlay_groups(ds):
        try:
            for frame, plane in _group_planes(ds, group, image_shape, image_frames):
                planes.setdefault(frame, []).append(plane)
        except Exception as exc:  # noqa: BLE001 - a broken overlay is skipped, the image is still shown
            log.warning("overlay group %04X skipped: %s", group, exc)
    return planes


def _value(ds: Dataset, group: int, element: int, default=None):
    item = ds.get((group, element))
    return default if item is None or item.value in (None, "") else item.value


def _group_planes(ds: Dataset, group: int, image_shape: tuple[int, int], image_frames: int):
    rows, cols = int(_value(ds, group, 0x0010, 0)), int(_value(ds, group, 0x0011, 0))
    frames = int(_value(ds, group, 0x0015, 1) or 1)
    bits_allocated = int(_value(ds, group, 0x0100, 1))
    data = _value(ds, group, _DATA, b"")
    if bits_allocated != 1:  # retired overlays in unused pixel bits: not supported
        raise ValueError(f"OverlayBitsAllocated {bits_allocated}")
    if rows <= 0 or cols <= 0 or frames <= 0:
        raise ValueError(f"overlay size {rows} x {cols} x {frames}")
    if rows * cols * frames > len(data) * 8:  # checked before pydicom unpacks anything
        raise ValueError(f"{rows} x {cols} x {frames} bits declared, {len(data)} bytes present")
    origin = _value(ds, group, 0x0050, (1, 1))
    origin = (int(origin[0]), int(origin[1])) if len(origin) == 2 else (1, 1)
    first_frame = int(_value(ds, group, 0x0051, 1) or 1)
    kind = str(_value(ds, group, 0x0040, "G")).strip().upper()
    label = str(_value(ds, group, 0x1500, "") or _value(ds, group, 0x0022, "")).strip()
    targets = overlay_frame_targets(frames, first_frame, image_frames)
    if not targets:
        return []
    bits = ds.overlay_array(group)
    if bits.ndim == 2:
        bits = bits[None]
    placed = []
    for overlay_frame, image_frame in targets:
        plane = place_overlay(bits[overlay_frame], origin, image_shape, group, kind, label)
        if plane is not None:
            placed.append((image_frame, plane))
    return placed
