"""Headers of arriving instances, read on a background thread while the rest of their series still arrives.

A complete series is then routed and run without reading its 300 files again (scanning them took 0.2-0.4 s of
the time to flag). The receiver's thread only queues the path (the sender waits for our C-STORE response).
After a restart nothing is cached and the job scans the series' folder instead; so does a job when the cache
is full (MAX_HEADERS) or a series' headers are not all read within the wait.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from pathlib import Path

from workstation.core.study import FileLocation, FileProblem, InstanceHeader
from workstation.dicom.header import read_header

MAX_HEADERS = 50_000  # about 100 MB of headers; beyond it, jobs read their files themselves


class SeriesHeaders:
    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, str, str] | None] = queue.Queue()
        self._headers: dict[str, dict[str, InstanceHeader]] = defaultdict(dict)
        self._problems: dict[str, list[FileProblem]] = defaultdict(list)
        self._pending: dict[str, int] = defaultdict(int)
        self._overflowed: set[str] = set()
        self._queued: set[tuple[str, str]] = set()
        self._count = 0
        self._done = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="triage-headers", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(30)
            self._thread = None

    def add(self, series_uid: str, sop_uid: str, path: Path | str) -> None:
        """Queue an instance's header (once: the cache and the receiver may both report it)."""
        with self._done:
            if (series_uid, sop_uid) in self._queued:
                return
            self._queued.add((series_uid, sop_uid))
            self._pending[series_uid] += 1
        self._queue.put((series_uid, sop_uid, str(path)))

    def get(self, series_uid: str, timeout: float = 30.0) -> tuple[list[InstanceHeader], list[FileProblem]] | None:
        """The series' headers and unreadable files once every queued one is read; None when not cached."""
        if self._thread is None:
            return None  # not started: nothing is being read
        deadline = time.monotonic() + timeout
        with self._done:
            while self._pending.get(series_uid, 0) and time.monotonic() < deadline:
                self._done.wait(0.1)
            if self._pending.get(series_uid, 0) or series_uid in self._overflowed or series_uid not in self._headers:
                return None
            return list(self._headers[series_uid].values()), list(self._problems[series_uid])

    def drop(self, series_uid: str) -> None:
        with self._done:
            self._count -= len(self._headers.pop(series_uid, {}))
            self._problems.pop(series_uid, None)
            self._overflowed.discard(series_uid)
            self._queued = {key for key in self._queued if key[0] != series_uid}

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            series_uid, sop_uid, path = item
            try:
                header = read_header(FileLocation(path))
            except Exception as exc:  # noqa: BLE001 - read_header reports problems itself; anything else too
                header = FileProblem(FileLocation(path), f"cannot read: {exc}")
            with self._done:
                self._pending[series_uid] -= 1
                if self._count >= MAX_HEADERS:
                    self._overflowed.add(series_uid)
                elif isinstance(header, InstanceHeader):
                    if sop_uid not in self._headers[series_uid]:
                        self._count += 1
                    self._headers[series_uid][sop_uid] = header
                elif isinstance(header, FileProblem):
                    self._problems[series_uid].append(header)
                self._done.notify_all()
