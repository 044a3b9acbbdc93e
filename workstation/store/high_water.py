"""The audit trail's high-water mark: the newest (seq, hash) ever committed, kept beside the store in a small
sealed file (`<store>.hwm`, mode 0600), so that deleting the newest entries (tail truncation, which leaves a
valid shorter chain) is detected by `audit verify` even before they reached the central server.

The seal is an HMAC-SHA256 under a key derived from the store key (in the OS keyring), so the file cannot be
edited without that key. Limits (also in the README): someone holding the store key can rewrite the mark too;
deleting the file together with the tail, or putting back an older copy of the file, goes unnoticed locally
(new entries never raise a mark whose entry is gone, so writing on after a deletion does not hide it)
(a missing mark is made again from the store at the next open; the central server still catches the loss of
entries it had acknowledged). The mark is written after each commit without fsync: after a power cut it may lag
behind the store (never ahead), which weakens it for the last entries but never raises a false alarm.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable
from pathlib import Path

try:  # POSIX: writers of several processes take turns, so the mark never goes back
    import fcntl
except ImportError:  # pragma: no cover - Windows: last writer wins (the mark may lag, never lead)
    fcntl = None  # type: ignore[assignment]

FORMAT = "workstation.high-water/1"
_CONTEXT = b"workstation audit high-water mark v1"


class HighWaterDamaged(RuntimeError):
    """The mark's file exists but is not one this store's key sealed (edited, forged or damaged)."""


SLOT = 256  # the record's size: written in place with one pwrite (no rename: cheap, and the inode stays the same,
# so the file itself is the lock); 256 bytes at offset 0 lie in one disk sector, written whole or not at all.


class HighWater:
    def __init__(self, store_path: Path, store_key: bytes) -> None:
        self.path = store_path.with_name(store_path.name + ".hwm")
        self._key = hmac.new(store_key, _CONTEXT, hashlib.sha256).digest()

    def _mac(self, seq: int, head: str) -> str:
        return hmac.new(self._key, f"{FORMAT}|{seq}|{head}".encode(), hashlib.sha256).hexdigest()

    def read(self) -> tuple[int, str] | None:
        """(seq, hash) of the mark, None when there is no file; HighWaterDamaged when its seal does not hold."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return self._parse(data)

    def _parse(self, data: bytes) -> tuple[int, str] | None:
        text = data.strip(b" \n\x00")
        if not text:
            return None  # made but never written (a crash at the very first write): as if absent
        try:
            record = json.loads(text)
            seq, head, mac = int(record["seq"]), str(record["hash"]), str(record["mac"])
        except (ValueError, KeyError, TypeError):
            raise HighWaterDamaged(f"{self.path} is not a high-water mark (damaged or edited)") from None
        if record.get("format") != FORMAT or not hmac.compare_digest(mac, self._mac(seq, head)):
            raise HighWaterDamaged(f"{self.path} was not sealed with this store's key (edited or replaced)")
        return seq, head

    def advance(self, seq: int, head: str, holds: Callable[[int, str], bool] | None = None) -> bool:
        """Raise the mark to (seq, hash) unless it is already there or beyond; a mark that does not verify is left
        alone (False). `holds(seq, hash)`: whether the store still holds the entry the mark names; when it does
        not (the tail was deleted and new entries took its numbers) the mark stays where it is, as evidence, and
        False is returned."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                os.lseek(fd, 0, os.SEEK_SET)  # (no pread/pwrite: Windows has neither)
                current = self._parse(os.read(fd, 4 * SLOT))
            except HighWaterDamaged:
                return False  # kept as evidence: verify reports it; IT removes the file once it is understood
            if current is not None and current[0] >= seq:
                return True
            if current is not None and holds is not None and not holds(*current):
                return False
            record = json.dumps({"format": FORMAT, "seq": seq, "hash": head, "mac": self._mac(seq, head)}).encode()
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, record.ljust(SLOT - 1) + b"\n")
            return True
        finally:
            os.close(fd)  # also releases the lock
