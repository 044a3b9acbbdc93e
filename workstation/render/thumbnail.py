"""Small previews of a frame for the study browser."""

from __future__ import annotations

import numpy as np


def downsample(image: np.ndarray, max_side: int = 96) -> np.ndarray:
    """Shrink by block averaging (no aliasing speckle) so the longer side is at most `max_side`."""
    factor = max(1, int(np.ceil(max(image.shape[:2]) / max_side)))
    if factor == 1:
        return image
    rows = image.shape[0] // factor * factor
    cols = image.shape[1] // factor * factor
    cropped = image[:rows, :cols].astype(np.float32)
    shape = (rows // factor, factor, cols // factor, factor) + image.shape[2:]
    return np.rint(cropped.reshape(shape).mean(axis=(1, 3))).astype(np.uint8)
