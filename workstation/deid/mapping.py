"""Keyed, deterministic replacements: UIDs, patient pseudonyms and the per-patient date shift.

HMAC-SHA-256 under a site secret (kept in the OS keyring by services.export): the same input gives the same output on every export
of this site (two exports of one patient link up, references inside an export still resolve), while nobody
without the secret can go back or even test a guess. UIDs become `2.25.<128-bit integer>` (PS3.5 B.2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache


MIN_SHIFT_DAYS, SHIFT_SPAN_DAYS = 365, 3285  # dates move back between 1 and 10 years
STANDARD_ROOT = "1.2.840.10008."  # DICOM's own UIDs (SOP classes, transfer syntaxes, coding schemes): kept


@dataclass(frozen=True)
class Pseudonym:
    patient_id: str  # e.g. P-7Q2M4K9XW3ZA
    patient_name: str  # e.g. ANON^7Q2M4K9XW3ZA
    shift_seconds: int  # add to every date/time of this patient (negative: back in time)
    code: str


class KeyedMapping:
    """The site's keyed mapping; cheap to call repeatedly (UIDs are memoised per instance)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the de-identification secret must be at least 16 bytes")
        self._secret = secret
        self.uid = lru_cache(maxsize=1 << 16)(self._uid)

    def _mac(self, purpose: str, value: str) -> bytes:
        return hmac.new(self._secret, f"{purpose}\0{value}".encode("utf-8", "surrogateescape"), hashlib.sha256).digest()

    def _uid(self, uid: str) -> str:
        uid = uid.strip("\0 ")
        if not uid or uid.startswith(STANDARD_ROOT):
            return uid
        return "2.25." + str(int.from_bytes(self._mac("uid", uid)[:16], "big"))

    def patient(self, patient_id: str, issuer: str = "", name: str = "") -> Pseudonym:
        """Keyed on the patient ID and its issuer (the name when a file has no ID)."""
        key = f"{issuer}\0{patient_id}" if patient_id else f"name\0{name}"
        mac = self._mac("patient", key)
        code = base64.b32encode(mac[:10]).decode("ascii").rstrip("=")[:12]
        days = MIN_SHIFT_DAYS + int.from_bytes(mac[10:14], "big") % SHIFT_SPAN_DAYS
        seconds = int.from_bytes(mac[14:18], "big") % 86_400
        return Pseudonym(f"P-{code}", f"ANON^{code}", -(days * 86_400 + seconds), code)

    def token(self, purpose: str, value: str, length: int = 12) -> str:
        """A keyed stand-in for any other identifier (accession number, study ID), same every time."""
        return base64.b32encode(self._mac(purpose, value)[:10]).decode("ascii").rstrip("=")[:length]
