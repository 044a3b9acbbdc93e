"""Local cache of retrieved studies: one folder per study, files named by the workstation.

Folder and file names are hashes of the Study and SOP Instance UIDs, never the
UIDs themselves, so a hostile UID cannot steer a path; the same instance always
lands on the same name, so retrieving a study twice stores nothing twice.
Studies are evicted least-recently-opened first when the cache outgrows its limit.
Instances arriving from the network are streamed (`incoming()`): each fragment goes
straight into a temporary file, which is renamed into place once complete.
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
from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from workstation.core.pacs import StoredInstance
from workstation.dicom.encoded import file_meta, uids_at_start

STUDIES = "studies"
INCOMING = "incoming"  # temporary files of instances being received: same file system, so renaming them is atomic
INFO = "study.json"
OPENED = ".last-opened"
HEAD = 16 * 1024  # where a data set's Study, Series and SOP Instance UIDs are looked for first
SPARE_FILES = 2  # temporary files kept ready for instances about to arrive (prepare_incoming)


class CacheError(Exception):
    """An instance that cannot be stored (not DICOM, no UIDs, disk full)."""


def _name(uid: str) -> str:
    return hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()[:40]


class StudyCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        (self.root / STUDIES).mkdir(parents=True, exist_ok=True)
        (self.root / INCOMING).mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._ready: set[str] = set()  # studies whose folder (with its study.json) this cache has made
        self._spares: list[tuple[int, str]] = []  # (fd, path) of empty temporary files in INCOMING
        self._spares_lock = threading.Lock()

    def study_dir(self, study_instance_uid: str) -> Path:
        return self.root / STUDIES / _name(study_instance_uid)

    def store(self, encoded: bytes) -> StoredInstance:
        """Write one Part 10 encoded instance (atomically); an instance already cached is not rewritten."""
        return self._place(_uids(encoded), lambda target: _write_atomic(target, encoded))

    def incoming(self, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> IncomingInstance:
        """A writer for one instance arriving as data set fragments (as in a C-STORE-RQ)."""
        return IncomingInstance(self, sop_class_uid, sop_instance_uid, transfer_syntax_uid)

    def prepare_incoming(self) -> None:
        """Create the temporary file of an instance about to arrive, at a moment nothing waits for it:
        creating a file takes 0.1-0.3 ms on a busy disk, and a sender waits for every C-STORE-RSP."""
        with self._spares_lock:
            if len(self._spares) >= SPARE_FILES:
                return
        try:
            spare = tempfile.mkstemp(dir=self.root / INCOMING, prefix=".part-")
        except OSError:
            return  # incoming() tries again, and reports
        with self._spares_lock:
            self._spares.append(spare)

    def close(self) -> None:
        """Remove the temporary files kept ready for incoming instances."""
        with self._spares_lock:
            spares, self._spares = self._spares, []
        for fd, path in spares:
            os.close(fd)
            Path(path).unlink(missing_ok=True)

    def _temporary_file(self) -> tuple[int, str]:
        """(fd, path) of a new empty file in INCOMING: a prepared one if there is one."""
        with self._spares_lock:
            if self._spares:
                return self._spares.pop()
        return tempfile.mkstemp(dir=self.root / INCOMING, prefix=".part-")

    def _place(self, uids: tuple[str, str, str], write: Callable[[Path], None]) -> StoredInstance:
        """Put an instance at its name with `write(target)`, unless it is cached already."""
        study_uid, series_uid, sop_uid = uids
        folder = self.study_dir(study_uid)
        target = folder / f"{_name(sop_uid)}.dcm"
        if target.exists():
            return StoredInstance(study_uid, series_uid, sop_uid, target, new=False)
        try:
            if study_uid not in self._ready:
                self._make_folder(folder, study_uid)
            try:
                write(target)
            except FileNotFoundError:  # the folder went away meanwhile (evicted, or deleted by hand)
                self._make_folder(folder, study_uid)
                write(target)
        except OSError as exc:
            raise CacheError(f"cannot write to the cache: {exc.strerror or exc}") from None
        return StoredInstance(study_uid, series_uid, sop_uid, target, new=True)

    def _make_folder(self, folder: Path, study_uid: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        info = folder / INFO
        if not info.exists():
            _write_atomic(info, json.dumps({"study_instance_uid": study_uid}).encode())
            self.touch(study_uid)
        self._ready.add(study_uid)

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
            with os.scandir(folder) as entries:
                size = sum(entry.stat().st_size for entry in entries if entry.is_file())
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
                self._ready.discard(uid)
                total -= size
                evicted.append(uid)
            return evicted


class IncomingInstance:
    """One instance being received: its fragments go into a temporary file under the cache root.

    The file meta information is ours (from the C-STORE's UIDs and transfer syntax); the name
    the file gets on `commit()` is the one `store()` gives, from the UIDs in the data set. A
    failure to write is reported by `commit()` (CacheError), never by `write()`. A deflated
    data set cannot be read before it is whole: it is kept in memory and handed to `store()`.
    """

    def __init__(self, cache: StudyCache, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> None:
        self._cache = cache
        self._syntax = UID(transfer_syntax_uid)
        self._error: CacheError | None = None
        self._fd: int | None = None
        self._temp: str | None = None
        self._deflated: list[bytes] | None = None
        self._head: bytearray | None = None  # the start of the data set, until its UIDs have been looked for
        self._uids: tuple[str, str, str] | None = None
        try:
            meta = file_meta(sop_class_uid, sop_instance_uid, transfer_syntax_uid)
            if self._syntax.is_deflated:
                self._deflated = [meta]
            else:
                self._fd, self._temp = cache._temporary_file()
                self._head = bytearray()
                self._write(meta)
        except ValueError as exc:  # a UID too long to encode, or not a transfer syntax pydicom knows
            self._error = CacheError(f"received data is not a DICOM instance: {exc}")
        except OSError as exc:
            self._fail(exc)

    def write(self, fragment: bytes | memoryview) -> None:
        if self._fd is not None:
            self._write(fragment)
            if self._head is not None:
                self._look_for_uids(fragment)
        elif self._deflated is not None:
            self._deflated.append(bytes(fragment))

    def commit(self) -> StoredInstance:
        """Move the complete instance to its name in the cache; raises CacheError if it cannot be kept."""
        if self._deflated is not None:
            encoded, self._deflated = b"".join(self._deflated), None
            return self._cache.store(encoded)
        try:
            if self._error is not None:
                raise self._error
            os.close(self._fd)
            self._fd = None
            if self._head is not None:  # the data set is shorter than HEAD: all of it is in the head
                self._uids = uids_at_start(bytes(self._head), self._syntax, whole=True)
            uids = self._uids or _uids(Path(self._temp).read_bytes())
            return self._cache._place(uids, self._rename)
        finally:
            self.discard()

    def _write(self, data: bytes | memoryview) -> None:
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError as exc:
            self._fail(exc)

    def _look_for_uids(self, fragment: bytes | memoryview) -> None:
        """Find the UIDs as soon as HEAD bytes are here, while the rest is still on its way: the sender
        waits for our C-STORE-RSP, so what commit() does not have to do shortens every instance."""
        self._head += fragment[:HEAD - len(self._head)]
        if len(self._head) == HEAD:
            self._uids = uids_at_start(bytes(self._head), self._syntax, whole=False)
            self._head = None

    def _rename(self, target: Path) -> None:
        os.replace(self._temp, target)
        self._temp = None

    def discard(self) -> None:
        """Forget the instance (a broken transfer); nothing is left behind."""
        self._deflated = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._temp is not None:
            Path(self._temp).unlink(missing_ok=True)
            self._temp = None

    def _fail(self, exc: OSError) -> None:
        self._error = CacheError(f"cannot write to the cache: {exc.strerror or exc}")
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _uids(encoded: bytes) -> tuple[str, str, str]:
    try:
        ds = pydicom.dcmread(io.BytesIO(encoded), stop_before_pixels=True,
                             specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
    except (InvalidDicomError, EOFError, ValueError, TypeError) as exc:
        raise CacheError(f"received data is not a DICOM instance: {exc}") from None
    return _checked(ds)


def _checked(ds: pydicom.Dataset) -> tuple[str, str, str]:
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
