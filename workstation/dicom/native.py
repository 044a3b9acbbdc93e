"""Fast path for the commonest case: one uncompressed greyscale frame read straight into the volume.

For a 500-slice CT, parsing every header a second time and letting pydicom
build `pixel_array` costs several times the read itself. Here the Pixel Data
element found by the header scan is re-checked (tag, length) and its bytes
read into the volume slot, then given exactly the treatment pydicom gives them:
unused high bits masked (unsigned) or sign-extended (signed), and the integer
rescale added. Anything else returns False and takes the pydicom path; tests
compare both paths on pydicom's own files.
"""

from __future__ import annotations

import struct
import sys

import numpy as np

from workstation.core.study import InstanceHeader
from workstation.dicom.sources import open_location

IMPLICIT_LITTLE = "1.2.840.10008.1.2"
EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
EXPLICIT_BIG = "1.2.840.10008.1.2.2"
_NATIVE = {IMPLICIT_LITTLE: "<", EXPLICIT_LITTLE: "<", EXPLICIT_BIG: ">"}


def read_native_into(header: InstanceHeader, slot: np.ndarray) -> bool:
    """Fill `slot` (rows, columns) with modality values; False if this instance needs the general path."""
    if not _eligible(header, slot):
        return False
    fmt = header.pixel
    order = _NATIVE[header.transfer_syntax_uid]
    nbytes = slot.nbytes
    with open_location(header.location) as fp:
        fp.seek(header.native_pixel_offset)
        element = fp.read(8 if header.transfer_syntax_uid == IMPLICIT_LITTLE else 12)
        if _value_length(element, order, header.transfer_syntax_uid) < nbytes:
            return False
        if fp.readinto(memoryview(slot.reshape(-1)).cast("B")) != nbytes:
            return False
    bits = fmt.bits_allocated
    stored = slot.view(f"{'i' if fmt.pixel_representation else 'u'}{bits // 8}")
    if (order == ">") != (sys.byteorder == "big"):
        stored.byteswap(inplace=True)
    if fmt.bits_stored < bits:
        if fmt.pixel_representation:
            shift = bits - fmt.bits_stored
            np.left_shift(stored, shift, out=stored)
            np.right_shift(stored, shift, out=stored)
        else:
            np.bitwise_and(stored, (1 << fmt.bits_stored) - 1, out=stored)
    if fmt.rescale_intercept:
        np.add(slot, slot.dtype.type(int(fmt.rescale_intercept)), out=slot)
    return True


def _eligible(header: InstanceHeader, slot: np.ndarray) -> bool:
    fmt = header.pixel
    if (header.native_pixel_offset is None or header.frames != 1 or fmt.is_colour or fmt.has_modality_lut
            or header.transfer_syntax_uid not in _NATIVE or fmt.bits_allocated not in (8, 16)
            or fmt.rescale_slope != 1.0 or fmt.rescale_intercept != int(fmt.rescale_intercept)
            or slot.dtype.kind not in "iu" or slot.dtype.itemsize * 8 != fmt.bits_allocated
            or not slot.flags.c_contiguous):
        return False
    if slot.dtype.kind == "u":
        return fmt.pixel_representation == 0 and fmt.rescale_intercept >= 0
    # Signed slot: stored values must be representable as-is before the intercept is added.
    return fmt.pixel_representation == 1 or fmt.bits_stored < fmt.bits_allocated


def _value_length(element: bytes, order: str, transfer_syntax: str) -> int:
    if len(element) < 8 or struct.unpack(f"{order}HH", element[:4]) != (0x7FE0, 0x0010):
        return -1
    if transfer_syntax == IMPLICIT_LITTLE:
        return struct.unpack("<I", element[4:8])[0]
    if len(element) < 12 or element[4:6] not in (b"OW", b"OB"):
        return -1
    return struct.unpack(f"{order}I", element[8:12])[0]
