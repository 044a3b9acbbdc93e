"""Sane limits for values read from files, and a reader that never asks for more than the file holds.

A header is data from anywhere: every value that sizes an allocation or a loop is
checked here before it is used. pydicom reads a value with `fp.read(length)`, and a
read of a misread length (4 GB) reserves that much before finding the file short:
`BoundedReader` clamps reads to what is left of the file, and bounds how many reads
one header may take (a small file of a million empty sequence items would otherwise
take minutes and gigabytes).
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from workstation.core.study import FileLocation
from workstation.dicom.encoded import count_items, meta_transfer_syntax, rewrite_meta_syntax
from workstation.dicom.sources import location_size, open_location

MAX_DIMENSION = 65535  # Rows / Columns are US: more cannot be stored
MAX_FRAMES = 100_000  # frames of one instance
MAX_FRAME_BYTES = 1 << 30  # one decoded frame
MAX_VOLUME_BYTES = 16 << 30  # one display set, decoded
BITS_ALLOCATED = (1, 8, 16, 32, 64)
SAMPLES_PER_PIXEL = (1, 3)
MAX_HEADER_READS = 600_000  # ~200,000 elements or sequence items before the pixel data
MAX_SEQUENCE_BYTES = 1 << 20  # a sequence of items of undefined length, parsed on demand (items not counted first)
MAX_INFLATED_BYTES = 256 << 20  # a deflated data set, inflated (deflate is for small objects: SR, presentation states)
HEAD_BYTES = 16384  # read first, to find the transfer syntax without pydicom
DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
# The first element of a file without preamble: groups a data set can start with (command, meta, identifying...)
FIRST_GROUPS = range(0x0002, 0x0030, 2)
MAX_LUT_ENTRIES = 65536
MAX_PIXEL_SPACING_MM = 10_000.0  # a 10 m pixel: anything larger is a misread value
MIN_PIXEL_SPACING_MM = 1e-6
MAX_COORDINATE_MM = 1e7  # 10 km from the origin: anything further is a misread value
SUSPICIOUS_RATIO = 200  # decoded / encoded bytes above which a codestream is decoded in a worker (lossy JPEG: 10-50)
DECODE_TIMEOUT_S = 20.0  # a worker decode longer than this is stopped


class LimitExceeded(Exception):
    """A file asks for more than any real image needs; the message is for the user."""


class BadData(Exception):
    """Bytes that cannot be what they claim (a corrupt deflate stream); the message is for the user."""


def pixel_format_problem(rows: int, columns: int, samples: int, bits_allocated: int, bits_stored: int,
                         frames: int) -> str | None:
    """Why this pixel layout cannot be a real image, or None (the frame count is held against the data first)."""
    if not 1 <= rows <= MAX_DIMENSION or not 1 <= columns <= MAX_DIMENSION:
        return f"image size {columns} x {rows} is not possible"
    if samples not in SAMPLES_PER_PIXEL:
        return f"SamplesPerPixel {samples} is not supported"
    if bits_allocated not in BITS_ALLOCATED:
        return f"BitsAllocated {bits_allocated} is not possible"
    if not 1 <= bits_stored <= bits_allocated:
        return f"BitsStored {bits_stored} does not fit BitsAllocated {bits_allocated}"
    if frames < 1:
        return f"declares {frames} frames"
    if frame_bytes(rows, columns, samples, bits_allocated) > MAX_FRAME_BYTES:
        return f"a {columns} x {rows} x {samples} frame of {bits_allocated} bits is larger than {MAX_FRAME_BYTES >> 20} MB"
    return None


def frame_bytes(rows: int, columns: int, samples: int, bits_allocated: int) -> int:
    """Bytes of one frame as stored natively (1-bit frames rounded up)."""
    return math.ceil(rows * columns * samples * bits_allocated / 8)


def plausible_spacing(value: float) -> bool:
    return MIN_PIXEL_SPACING_MM <= value <= MAX_PIXEL_SPACING_MM


class BoundedReader:
    """A read-only file wrapper for pydicom: reads stop at `size`, and at most `max_reads` reads are allowed."""

    def __init__(self, raw: BinaryIO, size: int, max_reads: int | None = MAX_HEADER_READS) -> None:
        self._raw = raw
        self._size = size
        self._max_reads = max_reads
        self._reads = 0
        self._pos = raw.tell()
        self.name = getattr(raw, "name", "<bounded>")
        self.deflated = False  # the data set was inflated into memory: file offsets do not apply

    def read(self, n: int | None = -1) -> bytes:
        self._reads += 1
        if self._max_reads is not None and self._reads > self._max_reads:
            raise LimitExceeded(f"header has more than {self._max_reads // 3} elements or sequence items")
        left = max(self._size - self._pos, 0)
        if n is None or n < 0 or n > left:
            n = left
        data = self._raw.read(n)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = self._raw.seek(offset, whence)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def unbounded_reads(self) -> None:
        """Lift the read count (the header is read; pixel data follows in a few large reads)."""
        self._max_reads = None

    @property
    def size(self) -> int:
        return self._size

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> BoundedReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def open_bounded(location: FileLocation, full: bool = False) -> Iterator[BoundedReader]:
    """The instance's bytes for pydicom, reads bounded; a deflated data set comes inflated (within a limit).

    `full`: the pixel data will be read too (allow the reads its fragments take).
    """
    size = location_size(location)
    with open_location(location) as raw:
        head = raw.read(HEAD_BYTES)
        syntax, body = meta_transfer_syntax(head)
        if body and head[body:body + 4] == bytes(4):  # group 0: no stored data set starts so (a file of zeros)
            raise BadData("corrupt DICOM file: zero bytes where the data set should start")
        reads = MAX_HEADER_READS + (size // 4096 if full else 0)
        if syntax == DEFLATED and body <= len(head):
            raw.seek(body)
            data = rewrite_meta_syntax(head, body, EXPLICIT_LITTLE) + _inflate(raw, MAX_INFLATED_BYTES)
            reader = BoundedReader(io.BytesIO(data), len(data), reads + len(data) // 4096)
            reader.deflated = True
        else:
            raw.seek(0)
            reader = BoundedReader(raw, size, reads)
        yield reader


def _inflate(raw: BinaryIO, limit: int) -> bytes:
    """Inflate a deflated data set, refusing one that grows past `limit` (a zip bomb) before it does."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out, total = [], 0
    while not inflater.eof and (chunk := raw.read(1 << 20)):
        while chunk:
            try:
                piece = inflater.decompress(chunk, limit + 1 - total)
            except zlib.error as exc:
                raise BadData(f"deflated data set is corrupt ({exc})") from None
            out.append(piece)
            total += len(piece)
            if total > limit:
                raise LimitExceeded(f"deflated data set inflates to more than {limit >> 20} MB")
            chunk = inflater.unconsumed_tail
    if not inflater.eof:
        raise BadData("deflated data set is corrupt or truncated")
    return b"".join(out)


def looks_like_data_set(first: bytes) -> bool:
    """Whether a file without "DICM" starts like a DICOM data set (a 2 GB file of zeros must not be parsed through)."""
    if len(first) < 8:
        return False
    little = int.from_bytes(first[:2], "little")
    big = int.from_bytes(first[:2], "big")
    return little in FIRST_GROUPS or big in FIRST_GROUPS


def bounded_sequence(ds: Dataset, keyword: str, max_items: int = 64) -> list[Dataset]:
    """A sequence we need a few items of; [] if it is missing, unreadable or larger than any real one.

    pydicom parses a sequence of defined length when it is first used, without bounds:
    its items are counted in the bytes first.
    """
    tag = tag_for_keyword(keyword)
    raw = ds._dict.get(tag)  # noqa: SLF001 - the undecoded value, to count items before pydicom parses them
    if raw is None:
        return []
    if isinstance(raw, RawDataElement) and raw.value is not None:
        items = count_items(raw.value, raw.is_little_endian, max_items)
        if (items is None and len(raw.value) > MAX_SEQUENCE_BYTES) or (items or 0) > max_items:
            return []
    try:
        value = ds[tag].value
    except Exception:  # noqa: BLE001 - a corrupt sequence value: treated as absent
        return []
    return list(value) if isinstance(value, Sequence) else []


# ----------------------------------------------------------------- numbers from text values (DS, IS)

def values_of(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def finite_numbers(value: Any) -> tuple[float, ...]:
    out = []
    for item in values_of(value):
        number = finite_number(item)
        if number is None:
            return ()
        out.append(number)
    return tuple(out)


def finite_number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def integer(value: Any, default: int | None = None) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def position(value: Any) -> tuple[float, float, float] | None:
    numbers = finite_numbers(value)
    return (numbers[0], numbers[1], numbers[2]) if len(numbers) == 3 else None


def orientation(value: Any) -> tuple[float, float, float, float, float, float] | None:
    """ImageOrientationPatient: two near-unit, non-parallel directions, else unknown (None)."""
    numbers = finite_numbers(value)
    if len(numbers) != 6:
        return None
    row, col = numbers[:3], numbers[3:]
    if not all(0.5 <= math.sqrt(sum(v * v for v in d)) <= 1.5 for d in (row, col)):
        return None
    cross = (row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2], row[0] * col[1] - row[1] * col[0])
    if sum(v * v for v in cross) < 0.25:
        return None
    return tuple(numbers)  # type: ignore[return-value]

