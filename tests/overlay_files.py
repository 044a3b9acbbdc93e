"""Images with overlay planes, written with pydicom, for the overlay tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fixtures_data import image_dataset
from pydicom.pixels import pack_bits


def overlay_bits(rows: int, cols: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """A filled rectangle (r0, c0, r1, c1 exclusive) of ones on a rows x cols overlay."""
    bits = np.zeros((rows, cols), np.uint8)
    r0, c0, r1, c1 = box
    bits[r0:r1, c0:c1] = 1
    return bits


def write_overlay_image(path: Path, pixels: np.ndarray, bits: np.ndarray, origin=(1, 1), group: int = 0x6000,
                        data: bytes | None = None, **attributes) -> Path:
    """A greyscale image with one overlay plane in `group` (OverlayData packed from `bits` unless `data` is given)."""
    ds = image_dataset(pixels, **attributes)
    ds.add_new((group, 0x0010), "US", bits.shape[0])
    ds.add_new((group, 0x0011), "US", bits.shape[1])
    ds.add_new((group, 0x0040), "CS", "G")
    ds.add_new((group, 0x0050), "SS", list(origin))
    ds.add_new((group, 0x0100), "US", 1)
    ds.add_new((group, 0x0102), "US", 0)
    ds.add_new((group, 0x0022), "LO", "test marks")
    packed = pack_bits(bits.ravel()) if data is None else data
    ds.add_new((group, 0x3000), "OW", packed + b"\0" * (len(packed) % 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
