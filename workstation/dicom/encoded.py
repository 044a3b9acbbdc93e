"""Encoded DICOM read and written without pydicom's object model, where speed or distrust matters.

An instance arriving from the network is written to its file as it comes: its file meta
information is encoded here, and the UIDs that name the file are found by walking the
first few kilobytes of the data set (pydicom per instance would cost as much as receiving it).
What a header claims about its pixel data (element length, fragments, the codestream's own frame
header) is read here from the bytes, so it can be checked before anything is allocated.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

import pydicom
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

IMPLEMENTATION_VERSION_NAME = f"PYDICOM {pydicom.__version__}"  # with pydicom's class UID, as pydicom writes files
_UID_TAGS = (0x0020000D, 0x0020000E, 0x00080018)  # Study, Series and SOP Instance UID
_SERIES_INSTANCE_UID = 0x0020000E
_ITEM, _ITEM_DELIMITER, _SEQUENCE_DELIMITER = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
UNDEFINED_LENGTH = _UNDEFINED
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
# (tag and 4-byte length, 2-byte length, 4-byte length) by little endian yes/no
_ELEMENT_HEADERS = {True: (struct.Struct("<HHI"), struct.Struct("<H"), struct.Struct("<I")),
                    False: (struct.Struct(">HHI"), struct.Struct(">H"), struct.Struct(">I"))}


def file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> bytes:
    """Preamble, DICM prefix and File Meta Information (PS3.10 7.1), as pydicom writes them."""
    def element(number: int, vr: bytes, value: bytes, padding: bytes = b"\x00") -> bytes:
        if len(value) % 2:
            value += padding
        if vr == b"OB":
            return struct.pack("<HH2sxxI", 0x0002, number, vr, len(value)) + value
        if len(value) > 0xFFFF:
            raise ValueError("a UID of more than 64 KiB")
        return struct.pack("<HH2sH", 0x0002, number, vr, len(value)) + value

    body = b"".join((
        element(0x0001, b"OB", b"\x00\x01"),
        element(0x0002, b"UI", sop_class_uid.encode("ascii", "replace")),
        element(0x0003, b"UI", sop_instance_uid.encode("ascii", "replace")),
        element(0x0010, b"UI", transfer_syntax_uid.encode("ascii", "replace")),
        element(0x0012, b"UI", PYDICOM_IMPLEMENTATION_UID.encode()),
        element(0x0013, b"SH", IMPLEMENTATION_VERSION_NAME.encode(), b" "),
    ))
    return b"\x00" * 128 + b"DICM" + element(0x0000, b"UL", struct.pack("<I", len(body))) + body


def uids_at_start(head: bytes, syntax: UID, whole: bool) -> tuple[str, str, str] | None:
    """Study, Series and SOP Instance UID from the start of a data set (`whole`: all of it), by walking
    its top-level elements.

    pydicom takes ~100 us for this, as much as receiving the instance; this walk takes a fifth.
    None when the UIDs may lie beyond `head`, or anything is unusual: then let pydicom read it all.
    """
    header = _ELEMENT_HEADERS[syntax.is_little_endian]
    implicit, end = syntax.is_implicit_VR, len(head)

    def element(offset: int) -> tuple[int, int, int]:
        """(tag, where the value starts, value length) of the element at `offset`."""
        group, number, length = header[0].unpack_from(head, offset)
        if implicit or group == 0xFFFE:  # items and delimiters have no VR
            return group << 16 | number, offset + 8, length
        vr = head[offset + 4:offset + 6]
        if not (vr.isalpha() and vr.isupper()):
            raise ValueError("not explicit VR after all")
        if vr == b"UN" and header[2].unpack_from(head, offset + 8)[0] == _UNDEFINED:
            raise ValueError("UN of undefined length: implicit VR inside")
        if vr in _LONG_VRS:
            return group << 16 | number, offset + 12, header[2].unpack_from(head, offset + 8)[0]
        return group << 16 | number, offset + 8, header[1].unpack_from(head, offset + 6)[0]

    def after_undefined_length(offset: int) -> int:
        """Where the data after an undefined-length value (items up to a sequence delimiter) begins."""
        while True:
            tag, offset, length = element(offset)
            if tag == _SEQUENCE_DELIMITER:
                return offset
            if tag != _ITEM:
                raise ValueError("not an item")
            if length != _UNDEFINED:
                offset += length
                continue
            while True:  # an undefined-length item: its elements up to the item delimiter
                tag, offset, length = element(offset)
                if tag == _ITEM_DELIMITER:
                    break
                offset = after_undefined_length(offset) if length == _UNDEFINED else offset + length

    found: dict[int, bytes] = {}
    offset = 0
    try:
        while offset < end:
            tag, value, length = element(offset)
            if tag > _SERIES_INSTANCE_UID:
                break
            if length == _UNDEFINED:
                offset = after_undefined_length(value)
                continue
            if value + length > end:
                return None
            if tag in _UID_TAGS:
                found[tag] = head[value:value + length]
            offset = value + length
        else:
            if not whole:  # the UIDs may follow
                return None
    except (struct.error, ValueError, RecursionError):
        return None
    texts = [found.get(tag, b"").decode("latin-1").rstrip("\0 ") for tag in _UID_TAGS]
    if any("\\" in text for text in texts):  # several values: pydicom's reading decides
        return None
    study, series, sop = (text.strip() for text in texts)
    return (study, series, sop) if study and sop else None


# ----------------------------------------------------------------- what a header claims, checked in the bytes

def meta_transfer_syntax(head: bytes) -> tuple[str | None, int]:
    """The File Meta Transfer Syntax UID (None without one) and where the data set starts (0 without "DICM")."""
    if head[128:132] != b"DICM":
        return None, 0
    offset, syntax = 132, None
    while offset + 8 <= len(head) and head[offset:offset + 2] == b"\x02\x00":
        number = struct.unpack_from("<H", head, offset + 2)[0]
        vr = head[offset + 4:offset + 6]
        if vr in _LONG_VRS:
            if offset + 12 > len(head):
                break
            value, length = offset + 12, struct.unpack_from("<I", head, offset + 8)[0]
        else:
            value, length = offset + 8, struct.unpack_from("<H", head, offset + 6)[0]
        if number == 0x0010:
            syntax = head[value:value + length].rstrip(b"\0 ").decode("ascii", "replace")
        offset = value + length
    return syntax, offset


def rewrite_meta_syntax(head: bytes, body_start: int, syntax: str) -> bytes:
    """Preamble and File Meta up to `body_start` with another Transfer Syntax UID (group length fixed)."""
    elements, offset = [], 132
    while offset < body_start:
        number = struct.unpack_from("<H", head, offset + 2)[0]
        vr = head[offset + 4:offset + 6]
        long_vr = vr in _LONG_VRS
        length = struct.unpack_from("<I" if long_vr else "<H", head, offset + (8 if long_vr else 6))[0]
        end = offset + (12 if long_vr else 8) + length
        if number == 0x0010:
            value = syntax.encode("ascii") + (b"\0" if len(syntax) % 2 else b"")
            elements.append(struct.pack("<HH2sH", 2, 0x10, b"UI", len(value)) + value)
        elif number != 0x0000:
            elements.append(head[offset:end])
        offset = end
    body = b"".join(elements)
    return head[:132] + struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(body)) + body


@dataclass(frozen=True)
class PixelElement:
    tag: int
    vr: str  # "" in implicit VR
    length: int  # as stored; UNDEFINED for encapsulated data
    value_offset: int


def pixel_element(head: bytes, offset: int, implicit: bool, little: bool) -> PixelElement | None:
    """The element header at `offset` (12 bytes read there), or None if too short."""
    order = "<" if little else ">"
    if len(head) < 8:
        return None
    group, number = struct.unpack_from(f"{order}HH", head)
    if implicit:
        return PixelElement(group << 16 | number, "", struct.unpack_from(f"{order}I", head, 4)[0], offset + 8)
    vr = head[4:6].decode("latin-1")
    if head[4:6] in _LONG_VRS:
        if len(head) < 12:
            return None
        return PixelElement(group << 16 | number, vr, struct.unpack_from(f"{order}I", head, 8)[0], offset + 12)
    return PixelElement(group << 16 | number, vr, struct.unpack_from(f"{order}H", head, 6)[0], offset + 8)


@dataclass(frozen=True)
class Fragments:
    """What the items of encapsulated Pixel Data hold, as far as they were walked."""

    offset_table_bytes: int
    count: int  # fragments after the offset table (stops at the limit asked for)
    first: tuple[int, int] | None  # (value offset, length) of the first fragment
    smallest: int  # length of the smallest fragment seen


def walk_fragments(fp: BinaryIO, value_offset: int, size: int, little: bool, limit: int) -> Fragments | None:
    """Item headers of encapsulated Pixel Data, read by seeking (values are skipped); None if not items."""
    order = "<" if little else ">"
    offset, table, count, first, smallest = value_offset, -1, 0, None, 1 << 62
    while offset + 8 <= size and count < limit:
        fp.seek(offset)
        head = fp.read(8)
        if len(head) < 8:
            break
        group, number, length = struct.unpack(f"{order}HHI", head)
        tag = group << 16 | number
        if tag == _SEQUENCE_DELIMITER:
            break
        if tag != _ITEM or length == _UNDEFINED:
            return None if table < 0 else Fragments(table, count, first, smallest)
        length = min(length, size - offset - 8)
        if table < 0:
            table = length
        else:
            count += 1
            first = first or (offset + 8, length)
            smallest = min(smallest, length)
        offset += 8 + length
    if table < 0:
        return None
    return Fragments(table, count, first, smallest if count else 0)


@dataclass(frozen=True)
class Codestream:
    """Image size a JPEG (SOF), JPEG-LS (SOF55) or JPEG 2000 (SIZ) codestream declares."""

    rows: int
    columns: int
    components: int
    tiles: int = 1


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}


def codestream_header(data: bytes) -> Codestream | None:
    """The frame header of the codestream starting `data`; None if none is found in it."""
    if data[:2] == b"\xff\xd8":
        return _jpeg_frame(data)
    at = _jp2_codestream(data) if data[:8] == b"\x00\x00\x00\x0cjP  " else 0
    if at is None or data[at:at + 4] != b"\xff\x4f\xff\x51" or at + 42 > len(data):  # SOC, then SIZ
        return None
    x, y, x0, y0, tx, ty, tx0, ty0 = struct.unpack_from(">8I", data, at + 8)
    components = struct.unpack_from(">H", data, at + 40)[0]
    if tx == 0 or ty == 0 or x <= x0 or y <= y0:
        return Codestream(0, 0, components, 0)
    tiles = -(-(x - tx0) // tx) * -(-(y - ty0) // ty)
    return Codestream(y - y0, x - x0, components, tiles)


def _jp2_codestream(data: bytes) -> int | None:
    """Where the codestream box's contents start in a JP2 file, if within `data`."""
    offset = 12
    while offset + 8 <= len(data):
        length = int.from_bytes(data[offset:offset + 4], "big")
        if data[offset + 4:offset + 8] == b"jp2c":
            return offset + (16 if length == 1 else 8)
        if length < 8:
            return None
        offset += length
    return None


def _jpeg_frame(data: bytes) -> Codestream | None:
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in _SOF:
            if offset + 10 > len(data):
                return None
            rows, columns = struct.unpack_from(">HH", data, offset + 5)
            return Codestream(rows, columns, data[offset + 9])
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            offset += 2
            continue
        if marker in (0xDA, 0xD9):  # scan data or end before any frame header
            return None
        offset += 2 + struct.unpack_from(">H", data, offset + 2)[0]
    return None


def rle_segments(data: bytes) -> tuple[int, tuple[int, ...]] | None:
    """Segment count and offsets of an RLE frame's 64-byte header; None if it is shorter."""
    if len(data) < 64:
        return None
    values = struct.unpack_from("<16I", data)
    return values[0], values[1:1 + min(values[0], 15)]


def count_items(value: bytes, little: bool, limit: int) -> int | None:
    """Items of a sequence value of defined length, counted up to `limit` + 1; None if an item's length is undefined."""
    order = "<" if little else ">"
    offset = count = 0
    while offset + 8 <= len(value) and count <= limit:
        group, number, length = struct.unpack_from(f"{order}HHI", value, offset)
        if (group << 16 | number) != _ITEM:
            break
        if length == _UNDEFINED:
            return None
        count += 1
        offset += 8 + length
    return count
