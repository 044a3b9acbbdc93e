"""The file references of a DICOMDIR, read by a small bounded parser instead of pydicom's reader.

A DICOMDIR comes from whatever media the user inserts. pydicom parses nested sequences of undefined
length recursively (a few hundred levels raise RecursionError) and converts values by their stated VR
(a wrong VR raises AttributeError or TypeError later). All we need is each directory record's
ReferencedFileID, so this reader walks the elements iteratively with bounds on size, depth and counts,
keeps the records it read completely when the rest is damaged, and never builds a path: it returns
the ID's components for sources.safe_join to check.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAX_BYTES = 256 << 20  # a DICOMDIR of a few hundred thousand records is well under this
MAX_DEPTH = 32  # records nest a few levels (icon images, SR content); 32 is generous
MAX_ELEMENTS = 5_000_000
MAX_RECORDS = 1_000_000
HEAD = 132

_RECORDS_TAG = 0x00041220  # DirectoryRecordSequence
_FILE_ID_TAG = 0x00041500  # ReferencedFileID
_RECORD_TYPE_TAG = 0x00041430  # DirectoryRecordType
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA, _FRAGMENTS = 0x7FE00010, -1  # -1: the "sequence" of an encapsulated value's fragments
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_SYNTAXES = {  # transfer syntax UID -> (implicit VR, little endian)
    "1.2.840.10008.1.2": (True, True),
    "1.2.840.10008.1.2.1": (False, True),
    "1.2.840.10008.1.2.2": (False, False),
}


class DicomdirError(Exception):
    """Why (the rest of) a DICOMDIR cannot be read, in words for the user."""


@dataclass
class Record:
    """One directory record: its type and referenced file ID (None when it has none or it is not text)."""

    record_type: str = ""
    file_id: list[str] | None = None
    bad_file_id: str = ""  # why the ReferencedFileID present could not be used


@dataclass
class Directory:
    records: list[Record] = field(default_factory=list)
    problem: str = ""  # set when the DICOMDIR is damaged: `records` are those read before the damage


def read_dicomdir(path: str) -> Directory:
    """The records of the DICOMDIR at `path`; a damaged one gives the records read so far and the problem."""
    result = Directory()
    try:
        with open(path, "rb") as fp:
            data = fp.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise DicomdirError(f"larger than {MAX_BYTES >> 20} MB")
        _Parser(data, result.records).run()
    except DicomdirError as exc:
        result.problem = str(exc)
    except OSError as exc:
        result.problem = f"cannot read it ({exc.strerror or exc})"
    return result


class _Parser:
    def __init__(self, data: bytes, records: list[Record]) -> None:
        self.data, self.records = data, records
        self.elements = 0

    def run(self) -> None:
        data = self.data
        if len(data) < HEAD or data[128:132] != b"DICM":
            raise DicomdirError("not a DICOM file (no DICM prefix)")
        offset, syntax = self._file_meta(HEAD)
        if syntax not in _SYNTAXES:
            raise DicomdirError(f"transfer syntax {syntax or '(none)'} not supported for a DICOMDIR")
        self.implicit, little = _SYNTAXES[syntax]
        self.order = "<" if little else ">"
        self._dataset(offset)
        if not self.records:
            raise DicomdirError("no directory records")

    def _file_meta(self, offset: int) -> tuple[int, str]:
        """Group 0002 (always explicit VR little endian): the offset after it and the transfer syntax UID."""
        syntax = ""
        while offset + 8 <= len(self.data):
            group, element = struct.unpack_from("<HH", self.data, offset)
            if group != 0x0002:
                break
            tag, vr, length, header = self._element_header(offset, implicit=False, order="<")
            if length == _UNDEFINED or offset + header + length > len(self.data):
                raise DicomdirError("damaged file meta information")
            if element == 0x0010:
                syntax = self.data[offset + header:offset + header + length].decode("ascii", "replace").strip("\0 ")
            offset += header + length
        return offset, syntax

    def _element_header(self, offset: int, implicit: bool, order: str) -> tuple[int, bytes, int, int]:
        """(tag, VR or b"", value length, header size) of the element at `offset`."""
        data = self.data
        if offset + 8 > len(data):
            raise DicomdirError(f"truncated at byte {offset}")
        group, element = struct.unpack_from(order + "HH", data, offset)
        tag = group << 16 | element
        if implicit or group == 0xFFFE:  # items and delimiters have no VR in any syntax
            return tag, b"", struct.unpack_from(order + "I", data, offset + 4)[0], 8
        vr = data[offset + 4:offset + 6]
        if not (vr.isalpha() and vr.isupper()):
            raise DicomdirError(f"damaged element at byte {offset} (no valid VR)")
        if vr in _LONG_VRS:
            if offset + 12 > len(data):
                raise DicomdirError(f"truncated at byte {offset}")
            return tag, vr, struct.unpack_from(order + "I", data, offset + 8)[0], 12
        return tag, vr, struct.unpack_from(order + "H", data, offset + 6)[0], 8

    def _dataset(self, offset: int) -> None:
        """Walk every element without recursion; the stack holds open sequences and items with their ends."""
        # stack entries: [kind, end (None: until its delimiter), tag of the sequence, Record or None]
        stack: list[list] = []
        end_of_data = len(self.data)
        while True:
            while stack and stack[-1][1] is not None and offset >= stack[-1][1]:
                if offset > stack[-1][1]:
                    raise DicomdirError(f"element runs past the end of its sequence at byte {offset}")
                self._close(stack.pop())
            if offset >= end_of_data:
                truncated = any(entry[1] is not None for entry in stack)
                while stack:  # delimiters missing at the very end are tolerated, as other readers do
                    self._close(stack.pop())
                if truncated:
                    raise DicomdirError("truncated: its last record is incomplete")
                return
            self.elements += 1
            if self.elements > MAX_ELEMENTS:
                raise DicomdirError(f"more than {MAX_ELEMENTS} elements")
            tag, vr, length, header = self._element_header(offset, self.implicit, self.order)
            inside = stack[-1] if stack else None
            if tag == _ITEM:
                if inside is None or inside[0] != "seq":
                    raise DicomdirError(f"item outside a sequence at byte {offset}")
                if inside[2] == _FRAGMENTS:  # encapsulated pixel data: items are bytes, not elements
                    if length == _UNDEFINED or offset + header + length > end_of_data:
                        raise DicomdirError(f"damaged pixel data fragment at byte {offset}")
                    offset += header + length
                    continue
                record = Record() if inside[2] == _RECORDS_TAG and len(stack) == 1 else None
                stack.append(["item", None if length == _UNDEFINED else offset + header + length, 0, record])
                offset += header
            elif tag in (_ITEM_END, _SEQUENCE_END):
                kind = "item" if tag == _ITEM_END else "seq"
                if inside is None or inside[0] != kind or inside[1] is not None:
                    raise DicomdirError(f"unexpected delimiter at byte {offset}")
                self._close(stack.pop())
                offset += header
            elif inside is not None and inside[0] == "seq":
                raise DicomdirError(f"element outside an item at byte {offset}")
            elif length == _UNDEFINED or (tag == _RECORDS_TAG and not stack and vr in (b"SQ", b"")):
                if len(stack) >= MAX_DEPTH:
                    raise DicomdirError(f"sequences nested deeper than {MAX_DEPTH} levels")
                kind = _FRAGMENTS if vr in (b"OB", b"OW") or tag == _PIXEL_DATA else tag
                stack.append(["seq", None if length == _UNDEFINED else offset + header + length, kind, None])
                offset += header
            else:
                start, offset = offset + header, offset + header + length
                if offset > end_of_data:
                    raise DicomdirError(f"truncated at byte {start}")
                if inside is not None and inside[3] is not None:
                    _keep(inside[3], tag, vr, self.data[start:offset])

    def _close(self, entry: list) -> None:
        if entry[0] == "item" and entry[3] is not None:
            if len(self.records) >= MAX_RECORDS:
                raise DicomdirError(f"more than {MAX_RECORDS} directory records")
            self.records.append(entry[3])


def _keep(record: Record, tag: int, vr: bytes, value: bytes) -> None:
    if tag == _RECORD_TYPE_TAG:
        record.record_type = value.decode("ascii", "replace").strip("\0 ")
    elif tag == _FILE_ID_TAG:
        if vr not in (b"CS", b""):
            record.bad_file_id = f"ReferencedFileID has VR {vr.decode('ascii', 'replace')}, not CS"
            return
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            record.bad_file_id = "ReferencedFileID is not plain text"
            return
        record.file_id = [part.strip("\0 ") for part in text.split("\\")]
