"""A small DICOM byte walker for the fuzzer: where each element sits, so a mutation can aim at it.

pydicom would re-encode (and refuse hostile values); mutations must be made in
the bytes, so elements are located here and spliced by offset.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
TS_TAG = 0x00020010
IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, DEFLATED = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1",
                                                    "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99")


@dataclass(frozen=True)
class Element:
    tag: int
    vr: bytes | None  # None in implicit VR
    start: int  # first byte of the tag
    value: int  # first byte of the value
    length: int  # as stored (UNDEFINED possible)
    end: int  # first byte after the element (delimiters included)

    @property
    def length_field(self) -> tuple[int, int]:
        """(offset, size) of the stored length."""
        return (self.value - 4, 4) if self.vr is None or self.vr in LONG_VRS else (self.value - 2, 2)


@dataclass(frozen=True)
class Layout:
    data: bytes
    meta: list[Element]
    body_start: int
    transfer_syntax: str
    implicit: bool
    little: bool
    elements: list[Element]  # top-level elements of the data set (empty if it could not be walked)

    def find(self, tag: int) -> Element | None:
        return next((e for e in (*self.meta, *self.elements) if e.tag == tag), None)

    @property
    def order(self) -> str:
        return "<" if self.little else ">"


def layout(data: bytes) -> Layout:
    """Meta and top-level elements of a (well-formed) file; elements empty when deflated or not walkable."""
    has_prefix = data[128:132] == b"DICM"
    offset = 132 if has_prefix else 0
    meta: list[Element] = []
    while has_prefix and offset + 8 <= len(data) and struct.unpack_from("<H", data, offset)[0] == 2:
        element = _element(data, offset, implicit=False, little=True)
        meta.append(element)
        offset = element.end
    ts_element = next((e for e in meta if e.tag == TS_TAG), None)
    if ts_element is not None:
        ts = data[ts_element.value:ts_element.value + ts_element.length].rstrip(b"\0 ").decode("ascii", "replace")
    else:  # no meta: guess from the first element, as readers do
        little = struct.unpack_from("<H", data, offset)[0] < 0x0100
        explicit = data[offset + 4:offset + 6].isalpha()
        ts = (EXPLICIT_LE if little else EXPLICIT_BE) if explicit else IMPLICIT_LE
    implicit, little = ts == IMPLICIT_LE, ts != EXPLICIT_BE
    elements: list[Element] = []
    if ts != DEFLATED:
        try:
            elements = walk(data, offset, len(data), implicit, little)
        except (struct.error, ValueError):
            elements = []
    return Layout(data, meta, offset, ts, implicit, little, elements)


def walk(data: bytes, offset: int, end: int, implicit: bool, little: bool, depth: int = 0) -> list[Element]:
    out = []
    while offset + 8 <= end:
        element = _element(data, offset, implicit, little, depth)
        if element.tag == ITEM_END:
            break
        out.append(element)
        offset = element.end
    return out


def _element(data: bytes, offset: int, implicit: bool, little: bool, depth: int = 0) -> Element:
    order = "<" if little else ">"
    group, number = struct.unpack_from(f"{order}HH", data, offset)
    tag = group << 16 | number
    if implicit or group == 0xFFFE:
        vr, value, length = None, offset + 8, struct.unpack_from(f"{order}I", data, offset + 4)[0]
    else:
        vr = bytes(data[offset + 4:offset + 6])
        if not vr.isalpha():
            raise ValueError("bad VR")
        if vr in LONG_VRS:
            value, length = offset + 12, struct.unpack_from(f"{order}I", data, offset + 8)[0]
        else:
            value, length = offset + 8, struct.unpack_from(f"{order}H", data, offset + 6)[0]
    if length != UNDEFINED:
        if value + length > len(data):
            raise ValueError("past the end")
        return Element(tag, vr, offset, value, length, value + length)
    return Element(tag, vr, offset, value, length, _after_items(data, value, implicit, little, depth))


def _after_items(data: bytes, offset: int, implicit: bool, little: bool, depth: int) -> int:
    """End of an undefined-length value: items up to the sequence delimiter."""
    if depth > 40:
        raise ValueError("too deep for the walker")
    order = "<" if little else ">"
    while offset + 8 <= len(data):
        group, number, length = struct.unpack_from(f"{order}HHI", data, offset)
        tag = group << 16 | number
        offset += 8
        if tag == SEQ_END:
            return offset
        if tag != ITEM:
            raise ValueError("not an item")
        if length != UNDEFINED:
            offset += length
            continue
        while True:
            element = _element(data, offset, implicit, little, depth + 1)
            offset = element.end
            if element.tag == ITEM_END:
                break
    raise ValueError("no delimiter")


def fragments(lay: Layout) -> list[tuple[int, int]]:
    """(value offset, length) of each item of encapsulated Pixel Data, the offset table first."""
    pixel = lay.find(PIXEL_DATA)
    if pixel is None or pixel.length != UNDEFINED:
        return []
    out, offset = [], pixel.value
    while offset + 8 <= pixel.end:
        group, number, length = struct.unpack_from(f"{lay.order}HHI", lay.data, offset)
        if (group << 16 | number) != ITEM:
            break
        out.append((offset + 8, length))
        offset += 8 + length
    return out


def encode(tag: int, vr: bytes, value: bytes, implicit: bool, little: bool) -> bytes:
    """One element; `vr` is ignored in implicit VR. Odd values are padded as DICOM requires."""
    if len(value) % 2:
        value += b" " if vr in (b"IS", b"DS", b"CS", b"LO", b"SH", b"PN", b"DA", b"TM", b"LT", b"ST") else b"\0"
    order = "<" if little else ">"
    head = struct.pack(f"{order}HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + struct.pack(f"{order}I", len(value)) + value
    if vr in LONG_VRS:
        return head + vr + b"\0\0" + struct.pack(f"{order}I", len(value)) + value
    return head + vr + struct.pack(f"{order}H", min(len(value), 0xFFFF)) + value


def put(lay: Layout, tag: int, vr: bytes, value: bytes) -> bytes:
    """The file with `tag` replaced (or inserted in tag order) by an element holding `value`."""
    new = encode(tag, vr, value, lay.implicit, lay.little)
    data = lay.data
    old = next((e for e in lay.elements if e.tag == tag), None)
    if old is not None:
        return data[:old.start] + new + data[old.end:]
    after = next((e for e in lay.elements if e.tag > tag), None)
    at = after.start if after is not None else len(data)
    return data[:at] + new + data[at:]


def drop(lay: Layout, tag: int) -> bytes:
    old = next((e for e in lay.elements if e.tag == tag), None)
    return lay.data if old is None else lay.data[:old.start] + lay.data[old.end:]


def with_transfer_syntax(lay: Layout, uid: str) -> bytes:
    """The file with its meta Transfer Syntax UID changed and the group length fixed; the body is untouched."""
    if not lay.meta:
        return lay.data
    value = uid.encode("ascii", "replace")
    if len(value) % 2:
        value += b"\0"
    parts = []
    for element in lay.meta:
        if element.tag == TS_TAG:
            parts.append(encode(TS_TAG, b"UI", value, False, True))
        elif element.tag != 0x00020000:
            parts.append(lay.data[element.start:element.end])
    body = b"".join(parts)
    group_length = encode(0x00020000, b"UL", struct.pack("<I", len(body)), False, True)
    return lay.data[:132] + group_length + body + lay.data[lay.body_start:]
