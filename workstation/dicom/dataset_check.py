"""Is a received data set whole and well-formed? A walk over its element headers, values skipped.

A C-STORE data set arrives as bytes that are written to a file as they come; before the file is
kept, this walk checks that every element, item and sequence fits exactly within the data set
(a truncated or garbled one does not), and returns the UIDs the checks and the file name need.
pydicom's full parse would cost as much as receiving the instance; this reads a few hundred
headers (values of defined length are skipped, encapsulated fragments are stepped over).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

_ITEM, _ITEM_DELIMITER, _SEQUENCE_DELIMITER = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_SOP_CLASS, _SOP_INSTANCE, _STUDY, _SERIES = 0x00080016, 0x00080018, 0x0020000D, 0x0020000E
_WANTED = {_SOP_CLASS, _SOP_INSTANCE, _STUDY, _SERIES}
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_VRS = _LONG_VRS | {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN", b"SH",
                    b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
MAX_DEPTH = 32  # nested sequences; deeper is taken for an attack
_STRUCTS = {True: (struct.Struct("<HHI"), struct.Struct("<HH2sH"), struct.Struct("<I")),
            False: (struct.Struct(">HHI"), struct.Struct(">HH2sH"), struct.Struct(">I"))}


class MalformedDataSet(ValueError):
    """The data set is truncated or does not parse; the message says where."""


class NeedMore(Exception):
    """The walk needs bytes beyond the head it was given: walk the whole data set instead."""


class DataSetUids(NamedTuple):
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str


def check_data_set(buffer, start: int, implicit: bool, little: bool, end: int | None = None) -> DataSetUids:
    """Walk the data set in `buffer[start:end]` (bytes or an mmap) to its very end; raises MalformedDataSet.

    `buffer` may hold only the head of a data set `end` bytes long: when the walk needs more than
    the head (a header or a UID beyond it), NeedMore is raised. Values are skipped, so a head with
    the header elements and the Pixel Data element's header is usually enough.
    """
    end = len(buffer) if end is None else end
    if end <= start:
        raise MalformedDataSet("the data set is empty")
    walker = _Walker(buffer, little, end)
    found: dict[int, bytes] = {}
    try:
        walker.elements(start, end, implicit, 0, found)
    except MalformedDataSet:
        # explicit VR announced, implicit VR written (pydicom and DCMTK read such files too): try that
        if implicit or not little or bytes(buffer[start + 4:start + 6]) in _VRS:
            raise
        found.clear()
        walker.elements(start, end, True, 0, found)
    text = {tag: value.decode("latin-1").rstrip("\0 ").strip() for tag, value in found.items()}
    return DataSetUids(text.get(_SOP_CLASS, ""), text.get(_SOP_INSTANCE, ""), text.get(_STUDY, ""), text.get(_SERIES, ""))


class _Walker:
    def __init__(self, buffer, little: bool, end: int) -> None:
        self.buffer = buffer
        self.available = len(buffer)  # less than `end` when only the head is here
        self.end = end
        self.implicit_header, self.explicit_header, self.u32 = _STRUCTS[little]

    def _header(self, offset: int, end: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
        """(tag, VR or None, value length, value offset) of the element or item at `offset`."""
        if offset + 8 > end:
            raise MalformedDataSet(f"truncated: an element header at byte {offset} runs past the end")
        if offset + 12 > self.available and self.available < self.end:
            raise NeedMore
        group, number, vr, length = self.explicit_header.unpack_from(self.buffer, offset)
        if implicit or group == 0xFFFE:
            return group << 16 | number, None, self.u32.unpack_from(self.buffer, offset + 4)[0], offset + 8
        if vr in _LONG_VRS:
            if offset + 12 > end:
                raise MalformedDataSet(f"truncated: the header of ({group:04X},{number:04X}) runs past the end")
            return group << 16 | number, vr, self.u32.unpack_from(self.buffer, offset + 8)[0], offset + 12
        if vr not in _VRS:
            raise MalformedDataSet(f"element ({group:04X},{number:04X}) at byte {offset} has no valid VR")
        return group << 16 | number, vr, length, offset + 8

    def elements(self, offset: int, end: int | None, implicit: bool, depth: int, found: dict[int, bytes] | None,
                 limit: int | None = None) -> int:
        """Elements from `offset` up to `end` exactly, or (end None) up to and past an item delimiter."""
        limit = self.end if limit is None else limit
        stop = end if end is not None else limit
        while True:
            if end is not None and offset == end:
                return offset
            tag, vr, length, value = self._header(offset, stop, implicit)
            if tag >> 16 == 0xFFFE:
                if tag == _ITEM_DELIMITER and end is None:
                    return value
                raise MalformedDataSet(f"an item tag (FFFE,{tag & 0xFFFF:04X}) where an element belongs, at byte {offset}")
            if length == _UNDEFINED:
                if tag == _PIXEL_DATA and vr in (b"OB", b"OW", None):
                    offset = self.fragments(value, stop, tag)
                elif vr in (b"SQ", b"UN", None):
                    offset = self.sequence(value, None, implicit or vr == b"UN", depth + 1, stop)
                else:
                    raise MalformedDataSet(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) of VR {vr.decode()} has undefined length")
                continue
            if value + length > stop:
                raise MalformedDataSet(f"truncated: the value of ({tag >> 16:04X},{tag & 0xFFFF:04X}) runs past the end")
            if found is not None and tag in _WANTED:
                if value + length > self.available:
                    raise NeedMore
                found[tag] = bytes(self.buffer[value:value + length])
            if vr == b"SQ":
                self.sequence(value, value + length, implicit, depth + 1, stop)
            offset = value + length

    def sequence(self, offset: int, end: int | None, implicit: bool, depth: int, limit: int) -> int:
        """Items of a sequence: up to `end`, or (None) up to and past its sequence delimiter."""
        if depth > MAX_DEPTH:
            raise MalformedDataSet(f"sequences nested more than {MAX_DEPTH} deep")
        stop = end if end is not None else limit
        while True:
            if end is not None and offset == end:
                return offset
            tag, _, length, value = self._header(offset, stop, True)
            if tag == _SEQUENCE_DELIMITER and end is None:
                return value
            if tag != _ITEM:
                raise MalformedDataSet(f"a sequence holds ({tag >> 16:04X},{tag & 0xFFFF:04X}), not an item, at byte {offset}")
            if length == _UNDEFINED:
                offset = self.elements(value, None, implicit, depth, None, stop)
            elif value + length > stop:
                raise MalformedDataSet(f"truncated: a sequence item at byte {offset} runs past the end")
            else:
                offset = self.elements(value, value + length, implicit, depth, None)

    def fragments(self, offset: int, limit: int, tag: int) -> int:
        """Items of encapsulated pixel data, stepped over, up to and past the sequence delimiter."""
        while True:
            item, _, length, value = self._header(offset, limit, True)
            if item == _SEQUENCE_DELIMITER:
                return value
            if item != _ITEM or length == _UNDEFINED:
                raise MalformedDataSet(f"encapsulated pixel data holds no item at byte {offset}")
            if value + length > limit:
                raise MalformedDataSet("truncated: a pixel data fragment runs past the end")
            offset = value + length
