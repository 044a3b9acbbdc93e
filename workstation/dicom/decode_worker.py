"""Decode one instance in a separate process, stopped after a timeout.

A codestream can declare an image far larger than its bytes (a forged JPEG SOF
passes every check when Rows/Columns were forged to match): decoders then run for
minutes and allocate gigabytes, inside native code that no thread can interrupt.
Such instances (the header check marks them `isolate_decode`) are decoded here: a
child process, started on first use and kept for the next, killed and replaced when
a decode runs past its time. It is a plain `python -m` child over pipes, not
multiprocessing, so that no main module (the app's, pytest's) is imported again.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from workstation.core.study import InstanceHeader
from workstation.dicom import limits

_LENGTH = struct.Struct("<Q")
_START_TIMEOUT_S = 60.0  # imports on a loaded machine
_lock = threading.Lock()
_worker: _Worker | None = None


class WorkerFailed(Exception):
    """The decode failed, timed out or the worker died; the message is for the user."""


def decode(header: InstanceHeader, dtype: np.dtype, timeout: float | None = None) -> np.ndarray:
    """decode_here(header, dtype) in the worker process, within `timeout` seconds (default: the site limit)."""
    global _worker
    timeout = limits.DECODE_TIMEOUT_S if timeout is None else timeout
    with _lock:  # one decode at a time: isolated decodes are rare
        if _worker is None or not _worker.alive():
            _worker = _Worker()
        try:
            kind, value = _worker.call((header, np.dtype(dtype).str), timeout)
        except WorkerFailed:
            _worker.stop()
            _worker = None
            raise
    if kind == "ok":
        return value
    raise WorkerFailed(value)


def start() -> None:
    """Start the worker ahead of need (its imports take a second or more)."""
    global _worker
    with _lock:
        if _worker is None or not _worker.alive():
            _worker = _Worker()


def shutdown() -> None:
    global _worker
    with _lock:
        if _worker is not None:
            _worker.stop()
            _worker = None


class _Worker:
    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen([sys.executable, "-m", "workstation.dicom.decode_worker"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        try:
            if _receive(self.process.stdout, time.monotonic() + _START_TIMEOUT_S) != ("ready", None):
                raise WorkerFailed("pixel data could not be decoded: the decode worker did not start")
        except WorkerFailed:
            self.stop()
            raise

    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, request: object, timeout: float) -> tuple[str, object]:
        try:
            _send(self.process.stdin, request)
        except OSError:
            raise WorkerFailed("pixel data could not be decoded: the decode worker stopped") from None
        return _receive(self.process.stdout, time.monotonic() + timeout, timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass


def _send(pipe, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(_LENGTH.pack(len(data)) + data)
    pipe.flush()


def _receive(pipe, deadline: float, timeout: float | None = None) -> tuple[str, object]:
    """One message, or WorkerFailed at the deadline or when the worker dies."""
    fd = pipe.fileno()
    chunks, wanted, length = [], _LENGTH.size, None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WorkerFailed(f"pixel data could not be decoded: decoding took longer than {timeout or _START_TIMEOUT_S:g} s")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, min(wanted, 1 << 24))
        if not chunk:
            raise WorkerFailed("pixel data could not be decoded: the decoder crashed")
        chunks.append(chunk)
        wanted -= len(chunk)
        if wanted:
            continue
        data = b"".join(chunks)
        chunks = []
        if length is None:
            length = wanted = _LENGTH.unpack(data)[0]
            continue
        return pickle.loads(data)  # noqa: S301 - our own child, over our own pipe


def _serve() -> None:
    """The worker's loop: requests on stdin, answers on stdout (anything printed goes to stderr)."""
    _die_with_parent()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    from workstation.dicom.pixels import DecodeError, decode_here

    _send(stdout, ("ready", None))
    while True:
        head = stdin.read(_LENGTH.size)
        if len(head) < _LENGTH.size:
            return
        header, dtype = pickle.loads(stdin.read(_LENGTH.unpack(head)[0]))  # noqa: S301 - from our parent
        try:
            answer = ("ok", decode_here(header, np.dtype(dtype)))
        except DecodeError as exc:
            answer = ("error", str(exc))
        except MemoryError:
            answer = ("error", "pixel data could not be decoded: out of memory")
        _send(stdout, answer)


def _die_with_parent() -> None:
    """A decode stuck in native code never reads its stdin's end: on Linux, let the kernel end it with its parent."""
    try:
        import ctypes
        import signal

        parent = os.getppid()
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(0)
    except (OSError, AttributeError):
        pass  # elsewhere: the worker ends when its stdin closes, after the decode in progress


if __name__ == "__main__":
    _serve()
