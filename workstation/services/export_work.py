"""The per-object work of a de-identified export (read, de-identify, encode, check), on every core.

Why processes: pydicom's reading and writing is pure Python, so threads share one core; a 500-slice study
spends ~4 ms an object in it. Large exports (PARALLEL_FROM objects and more) are spread over worker processes
(`[deid] workers`, default one per core) that hand back each object's summary in input order, and its bytes:
written by the worker into the destination's temporary folder when the writer has one (the calling thread only
moves them to their names), else carried back (a zip, a node). Small ones run in this process, through the same
function.

The workers are started fresh (spawn: never a fork of a process running Qt or other threads), hold the
Deidentifier made from the options and the site secret, and stay for IDLE_S after an export so that the next
one does not pay their start again. A worker that dies (killed, out of memory on a hostile file) stops the
export with the reason; nothing is left half-written (the caller aborts its writer).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from workstation.core.study import FileLocation
from workstation.core.tasks import CancelToken
from workstation.deid import DeidError, DeidOptions, Deidentifier, KeyedMapping
from workstation.deid.validate import encode, problems
from workstation.dicom.sources import open_location

PARALLEL_FROM = 24  # objects; below, starting the workers costs more than they save
MAX_DEFAULT_WORKERS = 8
AHEAD_PER_WORKER = 4  # objects in flight per worker (each holds one encoded object in memory)
IDLE_S = 120.0


class WorkerDied(Exception):
    """A worker process ended while it held objects (the message says what to do)."""


@dataclass(frozen=True)
class Done:
    """One object de-identified and checked: its bytes and what the manifest and the audit need (no PHI
    beyond what the caller already holds: the original patient and study for the re-identification table)."""

    data: bytes
    original_patient: str
    original_study: str
    original_study_uid_of_result: str  # result.original_study_uid (the study the pseudonymised UID stands for)
    pseudonym: str
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class: str
    modality: str
    actions: dict = field(default_factory=dict)
    scrubbed: dict = field(default_factory=dict)
    pixel_boxes: int | None = None
    spilled: str = ""  # written by the worker to this file instead of carried back in `data`


@dataclass(frozen=True)
class Refused:
    reason: str
    original_study: str = ""


def default_workers(configured: int) -> int:
    if configured:
        return configured
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


def work(deid: Deidentifier, source: FileLocation | pydicom.Dataset) -> Done | Refused:
    """Read, de-identify, encode and check one object. OcrUnavailable passes (the export cannot go on)."""
    from workstation.deid.pixels import OcrUnavailable

    original_study = ""
    try:
        if isinstance(source, pydicom.Dataset):
            ds = source
        else:
            with open_location(source) as handle:
                ds = pydicom.dcmread(handle)
        original_study = str(ds.get("StudyInstanceUID", ""))
        original_patient = str(ds.get("PatientID", "") or "")
        result = deid.deidentify(ds)
        data = encode(result.dataset)
        found = problems(result, data)
        if found:
            raise DeidError("; ".join(found))
    except OcrUnavailable:
        raise
    except DeidError as exc:
        return Refused(str(exc), original_study)
    except Exception as exc:  # noqa: BLE001 - an unreadable object is left out, the rest go on
        return Refused(f"cannot be read: {type(exc).__name__}", original_study)
    out = result.dataset
    return Done(data, original_patient, original_study, result.original_study_uid, result.pseudonym.patient_id,
                str(out.StudyInstanceUID), str(out.get("SeriesInstanceUID", "")), str(out.SOPInstanceUID),
                pydicom.uid.UID(str(out.SOPClassUID)).name, str(out.get("Modality", "")),
                dict(sorted(result.actions.items())), dict(result.scrubbed), result.pixel_boxes)


# ----- in the worker processes
_worker_deid: Deidentifier | None = None


def _start_worker(options: DeidOptions, secret: bytes, safe_private: tuple) -> None:
    global _worker_deid
    _worker_deid = Deidentifier(options, KeyedMapping(secret), safe_private)


def _work_in_worker(location: FileLocation, spill: str) -> Done | Refused:
    """With `spill` (a file in the destination's temporary folder) the worker writes the object there:
    carrying ~0.5 MB an object back through the result pipe made the exporting process the bottleneck."""
    outcome = work(_worker_deid, location)
    if not spill or not isinstance(outcome, Done):
        return outcome
    with open(spill, "xb") as handle:  # on disk with the rest at commit (export_writers._flush_files)
        handle.write(outcome.data)
    return dataclasses.replace(outcome, data=b"", spilled=spill)


# ----- in the exporting process
def _new_executor(key: tuple, workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                               initargs=key[:3])


class _Pool:
    """One pool for the process, kept for the next export with the same settings, closed after IDLE_S. An
    export that starts while another uses it with other settings gets a pool of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._executor: ProcessPoolExecutor | None = None
        self._users = 0
        self._timer: threading.Timer | None = None

    def acquire(self, key: tuple, workers: int) -> tuple[ProcessPoolExecutor, bool]:
        """(executor, shared); a shared one goes back with release(), an unshared one is the caller's to shut."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._executor is not None and self._key != key:
                if self._users:
                    return _new_executor(key, workers), False
                self._close_locked()
            if self._executor is None:
                self._executor, self._key = _new_executor(key, workers), key
            self._users += 1
            return self._executor, True

    def release(self, broken: bool) -> None:
        with self._lock:
            self._users -= 1
            if broken:
                self._close_locked()
            elif self._executor is not None and not self._users:
                self._timer = threading.Timer(IDLE_S, self.close)
                self._timer.daemon = True
                self._timer.start()

    def close(self) -> None:
        with self._lock:
            if not self._users:
                self._close_locked()

    def _close_locked(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor, self._key = None, None


_pool = _Pool()


def deidentify_all(locations: list[FileLocation], options: DeidOptions, secret: bytes, safe_private: tuple,
                   workers: int, cancel: CancelToken | None = None, deid: Deidentifier | None = None,
                   spill: Path | None = None) -> Iterator[Done | Refused]:
    """Each location's outcome, in input order. Stops early (without an outcome for the rest) when cancelled.
    `spill`: a folder where workers may write the objects themselves (Done.spilled names the file)."""
    workers = default_workers(workers)
    if workers < 2 or len(locations) < PARALLEL_FROM:
        deid = deid or Deidentifier(options, KeyedMapping(secret), safe_private)
        for location in locations:
            if cancel is not None and cancel.cancelled:
                return
            yield work(deid, location)
        return
    executor, shared = _pool.acquire((options, secret, safe_private, workers), workers)
    pending: deque[Future] = deque()
    upcoming = enumerate(locations)
    broken = False

    def submit(number: int, location: FileLocation) -> Future:
        return executor.submit(_work_in_worker, location, str(spill / f"{number:06d}.dcm") if spill else "")

    try:
        for number, location in upcoming:
            pending.append(submit(number, location))
            if len(pending) >= workers * AHEAD_PER_WORKER:
                break
        while pending:
            if cancel is not None and cancel.cancelled:
                return
            try:
                outcome = pending.popleft().result()
            except BrokenProcessPool:
                broken = True
                raise WorkerDied("a de-identifying worker process ended unexpectedly (out of memory, or killed); "
                                 "nothing was written: export again, or set [deid] workers = 1") from None
            following = next(upcoming, None)
            if following is not None:
                pending.append(submit(*following))
            yield outcome
    finally:
        running = [future for future in pending if not future.cancel()]
        if not broken:
            wait(running)  # none may write into a spill folder the caller is about to remove
        if shared:
            _pool.release(broken)
        else:
            executor.shutdown(wait=False, cancel_futures=True)
