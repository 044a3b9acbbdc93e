"""Encoded DICOM read and written without pydicom's object model, where speed matters.

An instance arriving from the network is written to its file as it comes: its file meta
information is encoded here, and the UIDs that name the file are found by walking the
first few kilobytes of the data set (pydicom per instance would cost as much as receiving it).
"""

from __future__ import annotations

import struct

import pydicom
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

IMPLEMENTATION_VERSION_NAME = f"PYDICOM {pydicom.__version__}"  # with pydicom's class UID, as pydicom writes files
_UID_TAGS = (0x0020000D, 0x0020000E, 0x00080018)  # Study, Series and SOP Instance UID
_SERIES_INSTANCE_UID = 0x0020000E
_ITEM, _ITEM_DELIMITER, _SEQUENCE_DELIMITER = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
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
