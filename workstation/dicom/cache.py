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
import logging
import io
import json
import mmap
import os
import shutil
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from workstation.core.pacs import StoredInstance
from workstation.core.receiving import KeptConflict as Conflict
from workstation.dicom.dataset_check import MalformedDataSet, NeedMore, check_data_set
from workstation.dicom.encoded import file_meta, meta_transfer_syntax

log = logging.getLogger(__name__)

STUDIES = "studies"
INCOMING = "incoming"  # temporary files of instances being received: same file system, so renaming them is atomic
INFO = "study.json"
OPENED = ".last-opened"
CONFLICTS = "conflicts"  # received copies of held SOP Instance UIDs with other content, kept for the user to see
SPARE_FILES = 2  # temporary files kept ready for instances about to arrive (prepare_incoming)
HEAD = 64 * 1024  # the start of each received file is kept in memory: the walk of a usual header needs no read back
MAX_INFLATED = 1 << 30  # a deflated data set may inflate to this many bytes at most (checked as it arrives)
INFLATE_CHUNK = 1 << 20  # inflated at most this much at a time: memory stays flat whatever the ratio
MAX_CONFLICTS_PER_INSTANCE = 3  # conflicting copies kept of one SOP Instance UID; later ones are refused unkept
CANNOT_UNDERSTAND, DATA_SET_MISMATCH, OUT_OF_RESOURCES = 0xC000, 0xA900, 0xA700  # C-STORE failure statuses
DUPLICATE_SOP_INSTANCE = 0x0111  # PS3.7 C.4: the SOP Instance UID is held already (with other content)


class CacheError(Exception):
    """An instance that cannot be stored (not DICOM, no UIDs, disk full); `status`: the C-STORE status to answer."""

    status = OUT_OF_RESOURCES


class InvalidInstance(CacheError):
    """A received data set that is not kept: truncated, does not parse, or disagrees with its C-STORE command."""

    def __init__(self, reason: str, status: int = CANNOT_UNDERSTAND) -> None:
        super().__init__(reason)
        self.status = status


class ConflictingInstance(CacheError):
    """The SOP Instance UID is held with other content: the held copy stays, the new one is kept aside."""

    status = DUPLICATE_SOP_INSTANCE

    def __init__(self, conflict: Conflict | None, reason: str) -> None:
        super().__init__(reason)
        self.conflict = conflict


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

    def incoming(self, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str, origin: str = "") -> IncomingInstance:
        """A writer for one instance arriving as data set fragments (as in a C-STORE-RQ); `origin` names the
        sender in a conflict's record."""
        return IncomingInstance(self, sop_class_uid, sop_instance_uid, transfer_syntax_uid, origin)

    def conflicts(self) -> list[Conflict]:
        """Every conflicting copy kept, oldest first."""
        found = []
        for record in (self.root / CONFLICTS).glob("*/*.json"):
            try:
                data = json.loads(record.read_text())
                found.append(Conflict(data["study_instance_uid"], data["series_instance_uid"], data["sop_instance_uid"],
                                      Path(data["held_path"]), record.with_suffix(".dcm"), data.get("origin", ""),
                                      float(data["received_at"])))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return sorted(found, key=lambda c: c.received_at)

    def _keep_conflict(self, uids: tuple[str, str, str], held: Path, temp: str, origin: str) -> Conflict | None:
        """Move a conflicting copy under conflicts/ with its record; None when enough copies are kept already."""
        folder = self.root / CONFLICTS / _name(uids[0])
        folder.mkdir(parents=True, exist_ok=True)
        stem = _name(uids[2])
        if len(list(folder.glob(f"{stem}-*.dcm"))) >= MAX_CONFLICTS_PER_INSTANCE:
            return None
        at = time.time()
        target = folder / f"{stem}-{time.time_ns()}.dcm"
        os.replace(temp, target)
        conflict = Conflict(*uids, held, target, origin, at)
        record = {"study_instance_uid": uids[0], "series_instance_uid": uids[1], "sop_instance_uid": uids[2],
                  "held_path": str(held), "origin": origin, "received_at": at}
        _write_atomic(target.with_suffix(".json"), json.dumps(record).encode())
        return conflict

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

    def _place(self, uids: tuple[str, str, str], write: Callable[[Path], None],
               held: Callable[[tuple[str, str, str], Path], None] | None = None) -> StoredInstance:
        """Put an instance at its name with `write(target)`, unless it is cached already (then `held(uids,
        target)` may raise: a received copy that differs from the held one)."""
        study_uid, series_uid, sop_uid = uids
        folder = self.study_dir(study_uid)
        target = folder / f"{_name(sop_uid)}.dcm"
        if target.exists():
            if held is not None:
                held(uids, target)
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

    The file meta information is ours (from the C-STORE's UIDs and transfer syntax). On `commit()` the
    data set is walked to its end (dicom.dataset_check): a truncated or garbled one, or one whose SOP
    Class/Instance UID differs from the command's, is refused (InvalidInstance) and nothing is kept.
    The file is then named as `store()` names it. A deflated data set is kept as it came and inflated
    as it arrives, in bounded chunks, into a second temporary file that the walk reads (at most
    MAX_INFLATED bytes). A failure to write is reported by `commit()` (CacheError), never by `write()`.
    """

    def __init__(self, cache: StudyCache, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str,
                 origin: str = "") -> None:
        self._cache = cache
        self._announced = (sop_class_uid.strip(), sop_instance_uid.strip())
        self._origin = origin
        self._error: CacheError | None = None
        self._fd: int | None = None
        self._temp: str | None = None
        self._start = 0  # where the data set starts in the file
        self._head = bytearray()  # the file's first HEAD bytes
        self._size = 0  # bytes written to the file
        self._inflater = None
        self._inflated_fd: int | None = None
        self._inflated: str | None = None
        self._inflated_size = 0
        try:
            self._syntax = UID(transfer_syntax_uid)
            meta = file_meta(sop_class_uid, sop_instance_uid, transfer_syntax_uid)
            self._syntax.is_little_endian  # noqa: B018 - raises ValueError for a syntax pydicom does not know
            self._fd, self._temp = cache._temporary_file()
            self._start = len(meta)
            self._write(meta)
            self._head += meta
            if self._syntax.is_deflated:
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                self._inflated_fd, self._inflated = tempfile.mkstemp(dir=cache.root / INCOMING, prefix=".inflate-")
        except ValueError as exc:  # a UID too long to encode, or not a transfer syntax pydicom knows
            self._error = InvalidInstance(f"received data is not a DICOM instance: {exc}")
        except OSError as exc:
            self._fail(exc)

    def write(self, fragment: bytes | memoryview) -> None:
        if self._fd is not None:
            self._write(fragment)
            if len(self._head) < HEAD:
                self._head += fragment[:HEAD - len(self._head)]
            if self._inflater is not None:
                self._inflate(fragment)

    def commit(self) -> StoredInstance:
        """Move the complete instance to its name in the cache; raises CacheError if it cannot be kept."""
        try:
            if self._error is not None:
                raise self._error
            os.close(self._fd)
            self._fd = None
            uids = self._check()
            return self._cache._place(uids, self._rename, self._held_differs)
        finally:
            self.discard()

    def _check(self) -> tuple[str, str, str]:
        """The data set walked to its end; (study, series, SOP instance UID) if it is whole and agrees."""
        if self._inflater is not None:
            if not self._inflater.eof:
                raise InvalidInstance("the deflated data set ends before its deflate stream does")
            os.close(self._inflated_fd)
            self._inflated_fd = None
            path, start, implicit, little = self._inflated, 0, False, True
        else:
            path, start, implicit, little = self._temp, self._start, self._syntax.is_implicit_VR, self._syntax.is_little_endian
            try:
                return self._checked(check_data_set(self._head, start, implicit, little, self._size))
            except NeedMore:
                pass  # the header goes on beyond the head: walk the file
            except MalformedDataSet as exc:
                raise InvalidInstance(f"the data set does not parse: {exc}") from None
        try:
            with open(path, "rb") as handle:
                if os.fstat(handle.fileno()).st_size <= start:
                    raise MalformedDataSet("the data set is empty")
                with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    found = check_data_set(mapped, start, implicit, little)
        except MalformedDataSet as exc:
            raise InvalidInstance(f"the data set does not parse: {exc}") from None
        except OSError as exc:
            raise CacheError(f"cannot read back a received instance: {exc.strerror or exc}") from None
        return self._checked(found)

    def _checked(self, found) -> tuple[str, str, str]:
        sop_class, sop_instance = self._announced
        if found.sop_class_uid != sop_class:
            raise InvalidInstance(f"the data set's SOP Class UID {found.sop_class_uid or '(none)'} differs from the "
                                  f"command's Affected SOP Class UID {sop_class}", DATA_SET_MISMATCH)
        if found.sop_instance_uid != sop_instance:
            raise InvalidInstance(f"the data set's SOP Instance UID {found.sop_instance_uid or '(none)'} differs from "
                                  f"the command's Affected SOP Instance UID {sop_instance}", DATA_SET_MISMATCH)
        if not found.study_instance_uid:
            raise InvalidInstance("received instance has no Study or SOP Instance UID")
        return found.study_instance_uid, found.series_instance_uid, found.sop_instance_uid

    def _held_differs(self, uids: tuple[str, str, str], held: Path) -> None:
        """The SOP Instance UID is held: nothing to do if the content is the same; else a conflict."""
        same = _same_data_set(Path(self._temp), held)
        if same is not False:
            if same is None:
                log.info("an instance held in another transfer syntax arrived again: the held copy is kept")
            return
        conflict = self._cache._keep_conflict(uids, held, self._temp, self._origin)
        if conflict is not None:
            self._temp = None
            raise ConflictingInstance(conflict, "this SOP Instance UID is held already with other content: "
                                                "the held copy is kept, this one is set aside as a conflict")
        raise ConflictingInstance(None, f"this SOP Instance UID is held already with other content, and "
                                        f"{MAX_CONFLICTS_PER_INSTANCE} conflicting copies are kept already: not kept")

    def _write(self, data: bytes | memoryview) -> None:
        self._size += len(data)
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError as exc:
            self._fail(exc)

    def _inflate(self, data: bytes | memoryview) -> None:
        """Inflate what arrived, INFLATE_CHUNK at a time, into the inflated file; stop at MAX_INFLATED."""
        inflater = self._inflater
        try:
            while data and not inflater.eof:
                out = inflater.decompress(data, INFLATE_CHUNK)
                self._inflated_size += len(out)
                if self._inflated_size > MAX_INFLATED:
                    self._refuse(InvalidInstance(f"the deflated data set inflates to more than {MAX_INFLATED >> 20} MB",
                                                 OUT_OF_RESOURCES))
                    return
                while out:
                    out = out[os.write(self._inflated_fd, out):]
                data = inflater.unconsumed_tail
        except zlib.error as exc:
            self._refuse(InvalidInstance(f"the deflated data set does not inflate: {exc}"))
        except OSError as exc:
            self._fail(exc)

    def _refuse(self, error: CacheError) -> None:
        """Stop writing: the rest of the data set is read and dropped, commit() raises `error`."""
        self._error = error
        self._close_files()

    def _rename(self, target: Path) -> None:
        os.replace(self._temp, target)
        self._temp = None

    def discard(self) -> None:
        """Forget the instance (a broken transfer); nothing is left behind."""
        self._close_files()
        for name in ("_temp", "_inflated"):
            path = getattr(self, name)
            if path is not None:
                Path(path).unlink(missing_ok=True)
                setattr(self, name, None)

    def _close_files(self) -> None:
        self._inflater = None
        for name in ("_fd", "_inflated_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def _fail(self, exc: OSError) -> None:
        self._refuse(CacheError(f"cannot write to the cache: {exc.strerror or exc}"))


def _same_data_set(a: Path, b: Path) -> bool | None:
    """Whether two instance files hold the same data set bytes; None when their transfer syntaxes differ."""
    with open(a, "rb") as first, open(b, "rb") as second:
        head_a, head_b = first.read(4096), second.read(4096)
        (syntax_a, start_a), (syntax_b, start_b) = meta_transfer_syntax(head_a), meta_transfer_syntax(head_b)
        if syntax_a != syntax_b:
            return None
        if os.fstat(first.fileno()).st_size - start_a != os.fstat(second.fileno()).st_size - start_b:
            return False
        first.seek(start_a)
        second.seek(start_b)
        while True:
            chunk_a, chunk_b = first.read(1 << 20), second.read(1 << 20)
            if chunk_a != chunk_b:
                return False
            if not chunk_a:
                return True


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
