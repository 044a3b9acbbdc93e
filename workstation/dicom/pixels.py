"""Decode an instance's frames into modality values (HU for CT) with pydicom, and check pixel data first.

pydicom does the decoding (native and, through the pylibjpeg plugins, JPEG,
JPEG-LS, JPEG 2000 and RLE) and the Modality LUT / Rescale step; this module
chooses a compact output type for a whole display set (a CT volume is int16,
not float64). Before any of that, what the header declares is held against what
the file holds: the Pixel Data length, the fragments, the codestream's own frame
header, the lookup tables. Decoders are foreign code that may panic (a Rust
PanicException is a BaseException) or run for minutes on a forged size: a panic
is a DecodeError, and a codestream that claims far more than its bytes can hold
is decoded in a worker process with a timeout.
"""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom.encaps import generate_frames
from pydicom.pixels import apply_color_lut, apply_modality_lut
from pydicom.uid import UID

from workstation.core.study import InstanceHeader, PixelFormat
from workstation.dicom import decode_worker, limits
from workstation.dicom.encoded import UNDEFINED_LENGTH, codestream_header, pixel_element, rle_segments, walk_fragments
from workstation.dicom.limits import BadData, BoundedReader, LimitExceeded, open_bounded

RLE = "1.2.840.10008.1.2.5"
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  "
RLE_MAX_RATIO = 64  # a 2-byte RLE run decodes to at most 128 bytes
CODESTREAM_HEAD = 65536  # bytes of the first fragment read to find its frame header


class DecodeError(Exception):
    """An instance whose pixel data could not be decoded; the message is for the user."""


class UnusablePixelData(Exception):
    """Pixel data that does not hold what the header declares; the message is for the user."""


# ----------------------------------------------------------------- checks at scan time

def check_pixel_data(fp: BoundedReader, start: int, head: bytes, encoding: tuple, syntax: UID, fmt: PixelFormat,
                     frames: int) -> bool:
    """Raise UnusablePixelData if the pixel data cannot hold what the header declares.

    Returns whether decoding must be isolated (a codestream far smaller than the image it claims).
    """
    implicit, little = encoding[0] is True, encoding[1] is not False
    element = pixel_element(head, start, implicit, little)
    if element is None:
        raise UnusablePixelData("truncated: pixel data element cut short")
    if syntax.is_compressed:
        return _check_encapsulated(fp, element.length, element.value_offset, syntax, fmt, frames)
    _check_native(fp.size, element.length, element.value_offset, fmt, frames)
    return False


def _check_native(size: int, length: int, value_offset: int, fmt: PixelFormat, frames: int) -> None:
    if length == UNDEFINED_LENGTH:
        raise UnusablePixelData("uncompressed pixel data stored as fragments")
    samples = 2 if fmt.photometric == "YBR_FULL_422" else fmt.samples_per_pixel  # chroma is subsampled
    per_frame = limits.frame_bytes(fmt.rows, fmt.columns, samples, fmt.bits_allocated)
    needed = limits.frame_bytes(fmt.rows, fmt.columns * frames, samples, fmt.bits_allocated)
    held = max(min(length, size - value_offset), 0)
    if held >= needed:
        return
    if frames > 1:
        raise UnusablePixelData(f"declares {frames} frames, holds {held // per_frame}")
    raise UnusablePixelData(f"truncated: pixel data needs {needed} bytes, file has {held}")


def _check_encapsulated(fp: BoundedReader, length: int, value_offset: int, syntax: UID, fmt: PixelFormat,
                        frames: int) -> bool:
    if length != UNDEFINED_LENGTH:
        raise UnusablePixelData(f"compressed pixel data ({syntax.name}) is not encapsulated")
    found = walk_fragments(fp, value_offset, fp.size, True, min(frames, limits.MAX_FRAMES) + 1)
    if found is None or found.count == 0 or found.first is None:
        raise UnusablePixelData("compressed pixel data holds no fragments")
    if found.count < frames:
        held = found.count if found.count <= limits.MAX_FRAMES else f"more than {limits.MAX_FRAMES}"
        raise UnusablePixelData(f"declares {frames} frames, holds {held}")
    fp.seek(found.first[0])
    problem = stream_problem(fp.read(min(found.first[1], CODESTREAM_HEAD)), found.first[1], syntax, fmt)
    if problem:
        raise UnusablePixelData(problem)
    decoded = limits.frame_bytes(fmt.rows, fmt.columns, fmt.samples_per_pixel, fmt.bits_allocated)
    encoded = max((fp.size - value_offset) // frames, 1)
    return syntax != RLE and decoded > limits.SUSPICIOUS_RATIO * encoded


def stream_problem(data: bytes, length: int, syntax: UID, fmt: PixelFormat) -> str | None:
    """Why one frame's codestream (`data`: its start, `length`: all of it) cannot be the frame the header declares."""
    if syntax == RLE:
        return _rle_problem(data, length, fmt)
    if data[:8] == JP2_SIGNATURE and not _jp2_boxes_sound(data):
        return "JPEG 2000 file boxes are corrupt"
    stream = codestream_header(data)
    if stream is None:
        return "no JPEG frame header in the compressed pixel data"
    if stream.tiles == 0 or stream.tiles > 65535:
        return "JPEG 2000 header declares an impossible tile layout"
    if stream.columns != fmt.columns or stream.rows not in (fmt.rows, 0):  # 0: JPEG height given later (DNL)
        return f"compressed image is {stream.columns} x {stream.rows}, header says {fmt.columns} x {fmt.rows}"
    if stream.components != fmt.samples_per_pixel:
        return f"compressed image has {stream.components} components, header says {fmt.samples_per_pixel} samples per pixel"
    return None


def _jp2_boxes_sound(data: bytes) -> bool:
    """The boxes before the codestream box each have a length (pydicom loops forever on a box of length 0)."""
    offset = 12
    while offset + 8 <= len(data):
        if data[offset + 4:offset + 8] == b"jp2c":
            return True
        length = int.from_bytes(data[offset:offset + 4], "big")
        if length < 8:
            return False
        offset += length
    return offset >= len(data)  # the codestream box lies beyond what was read


def _rle_problem(data: bytes, length: int, fmt: PixelFormat) -> str | None:
    header = rle_segments(data)
    expected = fmt.samples_per_pixel * fmt.bits_allocated // 8
    if header is None or header[0] != expected:
        return (f"RLE header declares {header[0] if header else 0} segments, "
                f"{expected} expected for {fmt.samples_per_pixel} x {fmt.bits_allocated} bits")
    offsets = header[1]
    if offsets[0] != 64 or any(b <= a for a, b in zip(offsets, offsets[1:])) or offsets[-1] >= length:
        return "RLE segment offsets are not inside the frame"
    if length * RLE_MAX_RATIO < expected * fmt.rows * fmt.columns:
        return f"RLE data of {length} bytes cannot hold a {fmt.columns} x {fmt.rows} frame"
    return None


def _check_frames(pixel_data: bytes, syntax: UID, fmt: PixelFormat, frames: int) -> None:
    """Every frame's codestream header, before a decoder sees it (the scan read the first one only)."""
    for index, stream in enumerate(generate_frames(pixel_data, number_of_frames=frames)):
        problem = stream_problem(stream[:CODESTREAM_HEAD], len(stream), syntax, fmt)
        if problem:
            raise DecodeError(f"frame {index + 1}: {problem}")


def lut_problem(ds: pydicom.Dataset, fmt: PixelFormat) -> str | None:
    """Why the palette or modality LUT cannot be applied (missing, wrong VR, sizes that lie), or None."""
    try:
        if fmt.photometric == "PALETTE COLOR":
            return _palette_problem(ds)
        if "ModalityLUTSequence" in ds:
            return _modality_lut_problem(ds)
    except Exception as exc:  # noqa: BLE001 - pydicom raises several types converting a value of the wrong VR
        return f"lookup table unreadable ({type(exc).__name__})"
    return None


def _palette_problem(ds: pydicom.Dataset) -> str | None:
    if ds.get("PixelPresentation") in ("MIXED", "COLOR"):
        return "supplemental palette colour images are not supported"
    lengths = set()
    for colour in ("Red", "Green", "Blue"):
        descriptor = ds.get(f"{colour}PaletteColorLookupTableDescriptor")
        values = list(descriptor) if isinstance(descriptor, (list, pydicom.multival.MultiValue)) else []
        if len(values) != 3 or not all(isinstance(v, int) for v in values):
            return f"palette colour image without a usable {colour.lower()} LUT descriptor"
        entries, bits = values[0] or 65536, values[2]
        if bits not in (8, 16):
            return f"palette colour LUT of {bits} bits"
        data = ds.get(f"{colour}PaletteColorLookupTableData")
        if data is None and f"Segmented{colour}PaletteColorLookupTableData" in ds:
            return "segmented palette colour LUTs are not supported"
        if not isinstance(data, bytes) or len(data) * 8 not in (entries * 8, entries * 16):
            return f"palette colour {colour.lower()} LUT data does not match its descriptor"
        lengths.add(len(data))
    return None if len(lengths) == 1 else "palette colour LUTs differ in size"


def _modality_lut_problem(ds: pydicom.Dataset) -> str | None:
    items = ds.ModalityLUTSequence
    if len(items) != 1:
        return f"modality LUT sequence has {len(items)} items"
    descriptor = items[0].get("LUTDescriptor")
    values = list(descriptor) if isinstance(descriptor, (list, pydicom.multival.MultiValue)) else []
    if len(values) != 3 or not all(isinstance(v, int) for v in values) or values[2] not in range(8, 17):
        return "modality LUT without a usable descriptor"
    data = items[0].get("LUTData")
    entries = values[0] or 65536
    count = len(data) // 2 if isinstance(data, bytes) else len(data) if isinstance(data, (list, pydicom.multival.MultiValue)) else 1
    return None if count == entries else f"modality LUT holds {count} entries, its descriptor says {entries}"


# ----------------------------------------------------------------- decoding

def output_dtype(formats: list[PixelFormat]) -> np.dtype:
    """Smallest dtype that holds every frame of a display set exactly after the modality LUT."""
    if formats[0].is_colour:
        return np.dtype(np.uint8)  # colour is for display only: 8 bits a channel
    low, high = np.inf, -np.inf
    for fmt in formats:
        integral = fmt.rescale_slope == int(fmt.rescale_slope) and fmt.rescale_intercept == int(fmt.rescale_intercept)
        if fmt.has_modality_lut or not integral or fmt.bits_allocated > 16 and fmt.bits_stored > 24:
            return np.dtype(np.float32)
        bits = min(max(fmt.bits_stored, 1), 64)
        if fmt.pixel_representation:
            stored = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        else:
            stored = (0, 2**bits - 1)
        ends = [float(v) * fmt.rescale_slope + fmt.rescale_intercept for v in stored]
        low, high = min(low, *ends), max(high, *ends)
    for candidate in (np.uint8, np.int16, np.uint16, np.int32):
        info = np.iinfo(candidate)
        if info.min <= low and high <= info.max:
            return np.dtype(candidate)
    return np.dtype(np.float32)


def decode_instance(header: InstanceHeader, dtype: np.dtype) -> np.ndarray:
    """All frames of one instance as (frames, rows, columns[, 3]) in `dtype`, modality LUT applied."""
    if header.isolate_decode:
        try:
            return decode_worker.decode(header, dtype)
        except decode_worker.WorkerFailed as exc:
            raise DecodeError(str(exc)) from None
    return decode_here(header, dtype)


def decode_here(header: InstanceHeader, dtype: np.dtype) -> np.ndarray:
    """decode_instance in this process (the decode worker runs this too)."""
    try:
        with open_bounded(header.location, full=True) as fp:
            ds = pydicom.dcmread(fp, force=True)
            _ensure_transfer_syntax(ds, header)
            syntax = UID(header.transfer_syntax_uid)
            if syntax.is_compressed and isinstance(ds.get("PixelData"), bytes):
                _check_frames(ds.PixelData, syntax, header.pixel, header.frames)
            arr = ds.pixel_array
    except (KeyboardInterrupt, SystemExit, DecodeError):
        raise
    except (LimitExceeded, BadData) as exc:
        raise DecodeError(f"pixel data could not be read: {exc}") from exc
    except OSError as exc:  # pydicom raises it for corrupt data too, without an errno
        reason = f"cannot read file: {exc.strerror}" if exc.errno else f"pixel data could not be read ({exc})"
        raise DecodeError(reason[:250]) from exc
    except BaseException as exc:  # noqa: BLE001 - decoders raise anything on corrupt data, Rust panics included
        detail = " ".join(str(exc).split())[:200]  # plugin errors span lines; the problems list shows one
        raise DecodeError(f"pixel data could not be decoded ({type(exc).__name__}: {detail})") from exc
    if header.frames == 1:
        arr = arr[np.newaxis]
    samples = header.pixel.samples_per_pixel
    expected = (header.frames, header.pixel.rows, header.pixel.columns) + ((samples,) if samples > 1 else ())
    if arr.shape != expected:
        raise DecodeError(f"decoded pixel data has shape {arr.shape}, header says {expected}")
    try:
        if header.pixel.photometric == "PALETTE COLOR":
            arr = apply_color_lut(arr, ds)
        if header.pixel.is_colour:
            return _to_8bit(arr)
        return _cast(_modality(arr, ds, header.pixel, dtype), dtype)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        raise DecodeError(f"lookup table could not be applied ({type(exc).__name__}: {str(exc)[:150]})") from exc


def _ensure_transfer_syntax(ds: pydicom.Dataset, header: InstanceHeader) -> None:
    """Files without File Meta pass the scan (syntax guessed from the encoding), but pydicom needs one to decode."""
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = header.transfer_syntax_uid


def _to_8bit(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    bits = arr.dtype.itemsize * 8
    return (arr.astype(np.uint64 if bits > 16 else np.uint32) >> (bits - 8)).astype(np.uint8)


def _modality(arr: np.ndarray, ds: pydicom.Dataset, fmt: PixelFormat, dtype: np.dtype) -> np.ndarray:
    if "RescaleSlope" in ds or "ModalityLUTSequence" in ds:
        if (fmt.rescale_slope == 1.0 and "ModalityLUTSequence" not in ds and fmt.rescale_intercept == int(fmt.rescale_intercept)
                and dtype.kind in "iu"):
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

