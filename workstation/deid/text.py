"""Free-text scrubbing: the patient's own identifiers from the header, and identifier-like patterns.

Used on what Annex E says to *clean* (descriptors, SR text, presentation-state text, reader comments) and,
identifiers only, as a last pass over every text value kept. What was removed is counted by kind (never
logged with its value).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

REDACTED = "[REMOVED]"
PATTERNS: dict[str, re.Pattern] = {
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "mrn": re.compile(r"\b(?:MRN|PID|ID|Patient\s*ID|Acc(?:ession)?\.?(?:\s*No\.?)?)\s*[:#=]?\s*[A-Z0-9][A-Z0-9-]{2,}\b",
                      re.IGNORECASE),
    "phone": re.compile(r"(?<![\w.])\+?\(?\d[\d ().-]{5,}\d(?![\w.])"),  # with 7 digits at least (below)
    "date": re.compile(r"\b(?:\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}[./-]\d{1,2}[./-]\d{1,2}|(?:19|20)\d{2}(?:0[1-9]|1[0-2])"
                       r"(?:0[1-9]|[12]\d|3[01]))\b"),
    "number": re.compile(r"\b\d{6,}\b"),  # long digit runs: record numbers, phone numbers without separators
}


class Scrubber:
    """Knows one patient's identifiers (from the header) and removes them, and patterns, from text."""

    def __init__(self, identifiers: Iterable[str]) -> None:
        kept = sorted({i.strip() for i in identifiers if i and len(i.strip()) >= 3}, key=len, reverse=True)
        self.identifiers = kept
        # whole words only: a patient called LEE must not turn SLEEP into S[REMOVED]P
        self._pattern = re.compile("(?<![A-Za-z0-9])(?:" + "|".join(re.escape(i) for i in kept) + ")(?![A-Za-z0-9])",
                                   re.IGNORECASE) if kept else None
        self.counts: Counter[str] = Counter()

    def identifiers_only(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        result, n = self._pattern.subn(REDACTED, text)
        if n:
            self.counts["identifier"] += n
        return result

    def clean(self, text: str) -> str:
        """E-mail, MRN-, phone-, date- and long-number-like patterns, then the patient's identifiers."""
        for kind, pattern in PATTERNS.items():
            text, n = pattern.subn(_replacement(kind), text)
            if n:
                self.counts[kind] += n
        return self.identifiers_only(text)


def _replacement(kind: str):
    if kind != "phone":
        return REDACTED
    return lambda m: REDACTED if sum(c.isdigit() for c in m.group()) >= 7 else m.group()


def identifiers_of(name_parts: Iterable[str], ids: Iterable[str], dates: Iterable[str]) -> list[str]:
    """The strings to look for: name components and the whole name, IDs, and dates written the usual ways."""
    found: list[str] = []
    for part in name_parts:
        found += [part, *re.split(r"[\^= ,]+", part)]
    found += list(ids)
    for value in dates:
        if re.fullmatch(r"\d{8}", value or ""):
            y, m, d = value[:4], value[4:6], value[6:]
            found += [value, f"{y}-{m}-{d}", f"{d}.{m}.{y}", f"{d}/{m}/{y}", f"{m}/{d}/{y}"]
    return [f for f in found if f and len(f.strip()) >= 3]
