"""What a file is, judged from its first 132 bytes: DICOM, maybe DICOM, a zip archive, or not DICOM.

One rule for a file opened directly and one found in a folder or a zip: "DICM" at offset 128 makes
it DICOM whatever its name or other formats it also parses as. The 128-byte preamble is free for
the application, so it can hold another format's header (CVE-2019-11687: a DICOM file that is also
a valid executable or archive); such files are opened as DICOM and flagged.
"""

from __future__ import annotations

HEAD_BYTES = 132
DICOM_PREFIX = b"DICM"

DICOM, MAYBE_DICOM, ZIP, NOT_DICOM = "dicom", "maybe-dicom", "zip", "not-dicom"

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_PREAMBLE_FORMATS: tuple[tuple[bytes, str], ...] = (
    *((magic, "a ZIP archive") for magic in _ZIP_MAGIC),
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", "a Windows (PE) executable"),
    (b"\xfe\xed\xfa\xce", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal executable"),
    (b"#!", "a script"),
)
# Groups an object without preamble can start with: file meta (0002), directory (0004), identifying (0008)
# up to image (0028). Command groups (0000) and zero-filled files are not DICOM files.
_FIRST_GROUPS = {0x0002, 0x0004, 0x0008, 0x0010, 0x0018, 0x0020, 0x0028}


def classify(head: bytes, name: str = "") -> str:
    """DICOM, MAYBE_DICOM (no preamble: the header reader decides), ZIP (to expand) or NOT_DICOM."""
    if len(head) >= HEAD_BYTES and head[128:132] == DICOM_PREFIX:
        return DICOM
    if head[:4] in _ZIP_MAGIC or name.lower().endswith(".zip"):
        return ZIP
    if len(head) >= 8 and _plausible_first_element(head):
        return MAYBE_DICOM
    return NOT_DICOM


def _plausible_first_element(head: bytes) -> bool:
    little, big = int.from_bytes(head[:2], "little"), int.from_bytes(head[:2], "big")
    return little in _FIRST_GROUPS or big in _FIRST_GROUPS


def preamble_format(head: bytes) -> str | None:
    """The other format a DICOM file's preamble claims to be ("an ELF executable"), or None."""
    if len(head) < HEAD_BYTES or head[128:132] != DICOM_PREFIX:
        return None
    return next((what for magic, what in _PREAMBLE_FORMATS if head.startswith(magic)), None)


def preamble_warning(head: bytes) -> str | None:
    """The warning shown for a DICOM file whose preamble is another format's header, or None."""
    what = preamble_format(head)
    if what is None:
        return None
    return (f"warning: preamble looks like {what} (CVE-2019-11687); opened as DICOM by its content, "
            "but the file may also run or unpack as that format: check where it came from")
