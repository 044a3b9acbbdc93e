"""Decode an instance's frames into modality values (HU for CT) with pydicom.

pydicom does the decoding (native and, through the pylibjpeg plugins, JPEG,
JPEG-LS, JPEG 2000 and RLE) and the Modality LUT / Rescale step; this module
only chooses a compact output type for a whole display set, so a CT volume is
int16 rather than float64.
"""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom.pixels import apply_color_lut, apply_modality_lut

from workstation.core.study import InstanceHeader, PixelFormat
from workstation.dicom.sources import open_location


class DecodeError(Exception):
    """An instance whose pixel data could not be decoded; the message is for the user."""


def output_dtype(formats: list[PixelFormat]) -> np.dtype:
    """Smallest dtype that holds every frame of a display set exactly after the modality LUT."""
    if formats[0].is_colour:
        return np.dtype(np.uint8)  # colour is for display only: 8 bits a channel
    low, high = np.inf, -np.inf
    for fmt in formats:
        integral = fmt.rescale_slope == int(fmt.rescale_slope) and fmt.rescale_intercept == int(fmt.rescale_intercept)
        if fmt.has_modality_lut or not integral or fmt.bits_allocated > 16 and fmt.bits_stored > 24:
            return np.dtype(np.float32)
        if fmt.pixel_representation:
            stored = (-(2 ** (fmt.bits_stored - 1)), 2 ** (fmt.bits_stored - 1) - 1)
        else:
            stored = (0, 2**fmt.bits_stored - 1)
        ends = [v * fmt.rescale_slope + fmt.rescale_intercept for v in stored]
        low, high = min(low, *ends), max(high, *ends)
    for candidate in (np.uint8, np.int16, np.uint16, np.int32):
        info = np.iinfo(candidate)
        if info.min <= low and high <= info.max:
            return np.dtype(candidate)
    return np.dtype(np.float32)


def decode_instance(header: InstanceHeader, dtype: np.dtype) -> np.ndarray:
    """All frames of one instance as (frames, rows, columns[, 3]) in `dtype`, modality LUT applied."""
    try:
        with open_location(header.location) as fp:
            ds = pydicom.dcmread(fp, force=True)
            _ensure_transfer_syntax(ds, header)
            arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on corrupt data
        detail = " ".join(str(exc).split())[:200]  # plugin errors span lines; the problems list shows one
        raise DecodeError(f"pixel data could not be decoded ({type(exc).__name__}: {detail})") from exc
    if header.frames == 1:
        arr = arr[np.newaxis]
    expected = (header.frames, header.pixel.rows, header.pixel.columns)
    if arr.shape[:3] != expected:
        raise DecodeError(f"decoded pixel data has shape {arr.shape}, header says {expected}")
    if header.pixel.photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if header.pixel.is_colour:
        return _to_8bit(arr)
    return _cast(_modality(arr, ds, header.pixel), dtype)


def _ensure_transfer_syntax(ds: pydicom.Dataset, header: InstanceHeader) -> None:
    """Files without File Meta pass the scan (syntax guessed from the encoding), but pydicom needs one to decode."""
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = header.transfer_syntax_uid


def _to_8bit(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    bits = arr.dtype.itemsize * 8
    return (arr.astype(np.uint64 if bits > 16 else np.uint32) >> (bits - 8)).astype(np.uint8)


def _modality(arr: np.ndarray, ds: pydicom.Dataset, fmt: PixelFormat) -> np.ndarray:
    if "RescaleSlope" in ds or "ModalityLUTSequence" in ds:
        if fmt.rescale_slope == 1.0 and "ModalityLUTSequence" not in ds and fmt.rescale_intercept == int(fmt.rescale_intercept):
            # Same result as apply_modality_lut, without a float64 round trip for every CT slice.
            return arr.astype(np.int32) + int(fmt.rescale_intercept)
        return apply_modality_lut(arr, ds)
    if fmt.rescale_slope != 1.0 or fmt.rescale_intercept != 0.0:  # enhanced multi-frame: shared functional groups
        return arr.astype(np.float64) * fmt.rescale_slope + fmt.rescale_intercept
    return arr


def _cast(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if arr.dtype == dtype:
        return arr
    if np.issubdtype(dtype, np.integer) and not np.issubdtype(arr.dtype, np.integer):
        arr = np.rint(arr)
    return arr.astype(dtype, copy=False)
