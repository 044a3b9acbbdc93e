"""Use cases "open paths" and "load a series", running on the background executor.

Qt-free models that emit events: the UI connects to them; the CLI and the
benchmarks call the same code synchronously.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future

import numpy as np

from workstation.core.events import Event
from workstation.core.study import Catalog, DisplaySet, FileProblem
from workstation.core.tasks import Cancelled, CancelToken
from workstation.core.volume import Volume
from workstation.dicom.limits import LimitExceeded
from workstation.dicom.ordering import build_catalog
from workstation.dicom.pixels import DecodeError, decode_instance, output_dtype
from workstation.dicom.scan import scan_paths
from workstation.dicom.volume_reader import allocate_volume, read_into
from workstation.render.thumbnail import downsample
from workstation.render.windowing import WindowRenderer
from workstation.services.executor import background
from workstation.services.windows import initial_window

log = logging.getLogger(__name__)


class StudyLibrary:
    """The studies opened in this session. Opening more paths merges them in (no duplicates)."""

    def __init__(self) -> None:
        self.catalog = Catalog()
        self.scan_started = Event()  # ()
        self.scan_progress = Event()  # (done, total)
        self.catalog_changed = Event()  # (catalog, new problems)
        self.scan_failed = Event()  # (message)
        self._cancel: CancelToken | None = None
        self._merge_lock = threading.Lock()

    def open_paths(self, paths: list[str | os.PathLike]) -> Future:
        """Scan `paths` in the background and merge what was found (a user's open: replaces a running scan)."""
        self.cancel()
        token = self._cancel = CancelToken()
        self.scan_started.emit()
        return background().submit(self._scan, list(paths), token)

    def add_files(self, paths: list[str | os.PathLike]) -> Future:
        """Merge newly arrived files (e.g. from a retrieval) without disturbing a user's scan."""
        return background().submit(self._scan, list(paths), CancelToken())

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()

    def _scan(self, paths: list[str | os.PathLike], token: CancelToken) -> Catalog | None:
        try:
            found = scan_paths(paths, token, self.scan_progress.emit)
        except Cancelled:
            self.scan_failed.emit("Scan cancelled")
            return None
        except Exception as exc:  # noqa: BLE001 - reported to the user, never a traceback
            log.exception("scan failed")
            self.scan_failed.emit(f"Scan failed: {exc}")
            return None
        with self._merge_lock:  # scans may finish together; each merge must see the other's result
            merged = build_catalog(
                self.catalog.headers + found.headers,
                self.catalog.problems + found.problems,
                self.catalog.files_scanned + found.files_scanned,
                self.catalog.results + found.results,
            )
            self.catalog = merged
            self.catalog_changed.emit(merged, found.problems)
        return merged


class SeriesLoad:
    """Decodes one display set into a Volume in the background, `start_frame` first.

    A cancelled load can be started again: it decodes only the frames still
    missing, keeping those already decoded. One run at a time writes the volume.
    """

    def __init__(self, display_set: DisplaySet, start_frame: int | None = None) -> None:
        self.display_set = display_set
        self._unloadable: FileProblem | None = None
        try:
            self.volume: Volume = allocate_volume(display_set)
        except (LimitExceeded, MemoryError) as exc:  # reported when run: the load still finishes, with the reason
            self.volume = Volume(np.zeros((len(display_set.frames), 1, 1), dtype=np.int16), np.eye(4), (1.0, 1.0))
            self._unloadable = FileProblem(display_set.first.location, _reason(exc))
        self.start_frame = len(display_set.frames) // 2 if start_frame is None else start_frame
        self.problems: list[FileProblem] = []
        self.frames_ready = Event()  # (list of frame indices)
        self.progress = Event()  # (frames loaded, total frames)
        self.finished = Event()  # (problems, cancelled: bool)
        self._cancel = CancelToken()
        self._future: Future | None = None
        self._state = threading.Lock()
        self._writing = threading.Lock()
        self._runs = 0  # started and not yet finished

    def start(self) -> Future:
        """Decode what is missing; while a run is going (and not cancelled) it is that run's future."""
        with self._state:
            if self._future is not None and self._runs and not self._cancel.cancelled:
                return self._future
            token = self._cancel = CancelToken()
            self._runs += 1
            self._future = background().submit(self._run, token)
            return self._future

    def cancel(self) -> None:
        self._cancel.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.cancelled

    @property
    def busy(self) -> bool:
        """A run is queued or decoding (a run being cancelled counts until it has stopped)."""
        return self._runs > 0

    @property
    def complete(self) -> bool:
        """Every frame decoded or failed: nothing left to resume."""
        return not self.volume.missing_frames

    def run(self) -> Volume:
        """Decode on the calling thread (the background worker, or a CLI/benchmark)."""
        with self._state:
            self._runs += 1
        return self._run(self._cancel)

    def _run(self, token: CancelToken) -> Volume:
        total = self.volume.frame_count

        def ready(indices: list[int]) -> None:
            self.frames_ready.emit(indices)
            self.progress.emit(self.volume.loaded_count, total)

        cancelled = False
        problems: list[FileProblem] = []
        try:
            with self._writing:
                token.raise_if_cancelled()
                if self._unloadable is not None:  # a 1 x 1 stand-in: every frame says why
                    problems = [self._unloadable]
                    self.volume.frame_errors.update({k: self._unloadable.reason for k in range(total)})
                    self._unloadable = None
                else:
                    problems = read_into(self.volume, self.display_set, self.start_frame, token, ready)
        except Cancelled:
            cancelled = True
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure (a decoder's panic too) is reported, the app stays up
            log.exception("series load failed")
            problems.append(FileProblem(self.display_set.first.location, f"loading stopped: {_reason(exc)}"))
        finally:  # a load always says it finished, whatever stopped it
            self.problems.extend(problems)
            with self._state:
                self._runs -= 1
            self.finished.emit(problems, cancelled)
        return self.volume


def _reason(exc: BaseException) -> str:
    """Words for the user: the message, or at least the kind of failure (MemoryError has no message)."""
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def thumbnail(display_set: DisplaySet, max_side: int = 96) -> np.ndarray | None:
    """A small 8-bit preview of the middle frame at the series' opening window; None if it cannot be decoded."""
    frame_ref = display_set.frames[len(display_set.frames) // 2]
    dtype = output_dtype([frame_ref.instance.pixel])
    try:
        frames = decode_instance(frame_ref.instance, dtype)
    except DecodeError:
        return None
    frame = frames[frame_ref.frame]
    renderer = WindowRenderer(dtype, invert=frame_ref.instance.pixel.inverted)
    return downsample(renderer.render(frame, initial_window(display_set, frame)), max_side)
