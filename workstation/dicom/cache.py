"""Local cache of retrieved studies: one folder per study, files named by the workstation.

Folder and file names are hashes of the Study and SOP Instance UIDs, never the
UIDs themselves, so a hostile UID cannot steer a path; the same instance always
lands on the same name, so retrieving a study twice stores nothing twice.
Studies are evicted least-recently-opened first when the cache outgrows its limit.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from workstation.core.pacs import StoredInstance

STUDIES = "studies"
INFO = "study.json"
OPENED = ".last-opened"


class CacheError(Exception):
    """An instance that cannot be stored (not DICOM, no UIDs, disk full)."""


def _name(uid: str) -> str:
    return hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()[:40]


class StudyCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        (self.root / STUDIES).mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def study_dir(self, study_instance_uid: str) -> Path:
        return self.root / STUDIES / _name(study_instance_uid)

    def store(self, encoded: bytes) -> StoredInstance:
        """Write one Part 10 encoded instance (atomically); an instance already cached is not rewritten."""
        study_uid, series_uid, sop_uid = _uids(encoded)
        folder = self.study_dir(study_uid)
        target = folder / f"{_name(sop_uid)}.dcm"
        if target.exists():
            return StoredInstance(study_uid, series_uid, sop_uid, target, new=False)
        folder.mkdir(parents=True, exist_ok=True)
        info = folder / INFO
        if not info.exists():
            _write_atomic(info, json.dumps({"study_instance_uid": study_uid}).encode())
            self.touch(study_uid)
        try:
            _write_atomic(target, encoded)
        except OSError as exc:
            raise CacheError(f"cannot write to the cache: {exc.strerror or exc}") from None
        return StoredInstance(study_uid, series_uid, sop_uid, target, new=True)

    def touch(self, study_instance_uid: str) -> None:
        """Mark a study as just opened (eviction order)."""
        marker = self.study_dir(study_instance_uid) / OPENED
        if marker.parent.is_dir():
            marker.write_text(f"{time.time():.6f}")

    def studies(self) -> list[tuple[str, Path, float, int]]:
        """(study UID, folder, last opened, bytes) for every cached study."""
        result = []
        for folder in (self.root / STUDIES).iterdir():
            try:
                uid = json.loads((folder / INFO).read_text())["study_instance_uid"]
                opened = float((folder / OPENED).read_text()) if (folder / OPENED).exists() else 0.0
            except (OSError, ValueError, KeyError):
                continue
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            result.append((uid, folder, opened, size))
        return result

    def size(self) -> int:
        return sum(entry[3] for entry in self.studies())

    def evict(self, keep: set[str] = frozenset()) -> list[str]:
        """Remove least-recently-opened studies (except `keep`) until the cache fits its limit."""
        with self._lock:
            entries = sorted(self.studies(), key=lambda e: e[2])
            total = sum(e[3] for e in entries)
            evicted = []
            for uid, folder, _, size in entries:
                if total <= self.max_bytes:
                    break
                if uid in keep:
                    continue
                shutil.rmtree(folder, ignore_errors=True)
                total -= size
                evicted.append(uid)
            return evicted


def _uids(encoded: bytes) -> tuple[str, str, str]:
    try:
        ds = pydicom.dcmread(io.BytesIO(encoded), stop_before_pixels=True,
                             specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
    except (InvalidDicomError, EOFError, ValueError, TypeError) as exc:
        raise CacheError(f"received data is not a DICOM instance: {exc}") from None
    uids = (str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", "")), str(ds.get("SOPInstanceUID", "")))
    if not uids[0] or not uids[2]:
        raise CacheError("received instance has no Study or SOP Instance UID")
    return uids


def _write_atomic(target: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
