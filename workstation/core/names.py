"""Person names (DICOM PN) as people read them."""

from __future__ import annotations


def format_person_name(value: str) -> str:
    """'FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX' -> 'FAMILY, GIVEN MIDDLE, PREFIX, SUFFIX', empty parts left out.

    Replacing '^' by ', ' turned a name padded with empty components (``OB^^^^``) into "OB, , , ,".
    The alphabetic group is used; the ideographic or phonetic one only when it is empty.
    """
    groups = [g for g in str(value or "").split("=") if g.replace("^", "").strip()]
    if not groups:
        return ""
    parts = [p.strip() for p in groups[0].split("^")] + [""] * 5
    family, given, middle, prefix, suffix = parts[:5]
    extra = [p for p in parts[5:] if p]  # more than five components: keep them rather than lose them
    given_middle = " ".join(p for p in (given, middle) if p)
    return ", ".join(p for p in (family, given_middle, prefix, suffix, *extra) if p)
