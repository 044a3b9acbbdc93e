"""The last check before anything leaves: the written bytes of a de-identified object against what it must not
hold. An object that fails is left out of the export (with the reason), never sent "nearly clean"."""

from __future__ import annotations

from io import BytesIO

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from workstation.deid.profile import InstanceResult

METHOD_CODES = Tag(0x00120064)
PIXEL_TAGS = tuple(Tag(t) for t in (0x7FE00010, 0x7FE00008, 0x7FE00009))


def encode(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def problems(result: InstanceResult, written: bytes | None = None) -> list[str]:
    """What is wrong with the de-identified object (empty: nothing found). Never names the values found."""
    ds = result.dataset
    found = []
    if str(ds.get("PatientIdentityRemoved", "")) != "YES":
        found.append("PatientIdentityRemoved is not YES")
    private, overlay = False, False
    for tag in _tags(ds):
        group = tag >> 16
        private |= group % 2 == 1
        overlay |= (0x6000 <= group <= 0x60FF or 0x5000 <= group <= 0x50FF) and group % 2 == 0
    if private:
        found.append("a private attribute remains")
    if overlay:
        found.append("an overlay or curve group remains")
    header = _header_bytes(ds, written)  # pixel bytes may hold any short byte string by chance
    for kind, needles in (("a patient identifier", result.identifiers), ("an original UID", result.original_uids)):
        for needle in needles:
            if any(form in header for form in _forms(needle)):
                found.append(f"{kind} remains in the written bytes")
                break
    return found


def _tags(ds: Dataset):
    """Every tag at every depth, decoding only sequences (Dataset.iterall decodes every value: slow)."""
    for tag, elem in ds._dict.items():
        yield tag
        vr = elem.VR
        if vr is None or vr == "UN":
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
        if vr == "SQ" and tag != METHOD_CODES:  # the code sequence is ours, the same bytes every time
            for item in ds[tag].value or []:
                yield from _tags(item)


def _header_bytes(ds: Dataset, written: bytes | None) -> bytes:
    """The written bytes without the pixel data's value: cut off the end when Pixel Data is the last element
    (nearly always), else encoded again without it."""
    tags = list(ds._dict)
    if written is not None and tags and max(tags) == PIXEL_TAGS[0]:
        value = ds._dict[PIXEL_TAGS[0]].value
        if isinstance(value, (bytes, bytearray)) and written.endswith(value):
            return written[:len(written) - len(value)]
    held = {tag: ds._dict.pop(tag) for tag in PIXEL_TAGS if tag in ds._dict}
    try:
        return encode(ds)
    finally:
        ds._dict.update(held)


def _forms(text: str) -> list[bytes]:
    forms = {text.encode("utf-8", "ignore"), text.encode("latin-1", "ignore"), text.encode("utf-16-le", "ignore"),
             text.upper().encode("utf-8", "ignore")}
    return [f for f in forms if len(f) >= 3]
