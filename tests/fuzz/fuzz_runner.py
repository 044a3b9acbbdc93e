"""Run fuzz cases through the project's public API, each in a child process with a time and memory bound.

A case passes through what opening files does: `scan_paths` on a folder holding
its files, then for every display set the viewer's thumbnail and `SeriesLoad.run`
(decoding every frame). Outcome classes:

- ok: nothing to report; problem: reported as FileProblem / warning / frame error;
- escape: an exception out of our API, a load that never says finished, or a load
  stopped by an unexpected error ("loading stopped: ...");
- hang: over the time limit (CPU time, or 6x the limit in wall time when starved);
- memory: MemoryError, or the child killed while allocating; crash: the child died otherwise.

Workers are reused between cases (imports cost a second) and replaced after a hang,
memory blow-up or crash. This module imports nothing heavy at top level: spawned
children set their limits before numpy and pydicom load.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path

CLASSES = ("ok", "problem", "escape", "hang", "memory", "crash")
FAILURES = ("escape", "hang", "memory", "crash")
MEMORY_LIMIT = 2 << 30
TIMEOUT_S = 5.0
WALL_FACTOR = 6  # a case starved of CPU (a loaded machine, a worker decode) gets this many times its time
_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2",
        "RAYON_NUM_THREADS": "1", "QT_QPA_PLATFORM": "offscreen"}


@dataclass
class Outcome:
    case_id: str
    mutator: str
    seed_name: str
    kind: str
    detail: str = ""
    seconds: float = 0.0


# ----------------------------------------------------------------- in the child

def exercise(folder: str) -> tuple[str, str]:
    """(class, detail) of opening `folder` and decoding everything in it, as the viewer would."""
    import logging

    from workstation.dicom.scan import scan_paths
    from workstation.services.loading import SeriesLoad, thumbnail

    logged: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.exc_info:
                logged.append("".join(traceback.format_exception(*record.exc_info))[-3000:])

    handler = Keep(logging.ERROR)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        try:
            catalog = scan_paths([folder])
        except MemoryError:
            return "memory", "MemoryError in scan_paths\n" + traceback.format_exc()[-3000:]
        except BaseException as exc:  # noqa: BLE001 - whatever escapes is what we count
            return "escape", f"scan_paths raised {type(exc).__name__}\n" + traceback.format_exc()[-3000:]
        reasons = [p.reason for p in catalog.problems] + [w for d in catalog.display_sets for w in d.warnings]
        for display_set in catalog.display_sets:
            step = "thumbnail"
            try:
                thumbnail(display_set)
                step = "SeriesLoad()"
                load = SeriesLoad(display_set)
                finished: list = []
                load.finished.connect(lambda problems, cancelled: finished.append(problems))
                step = "SeriesLoad.run"
                volume = load.run()
            except MemoryError:
                return "memory", f"MemoryError in {step}\n" + traceback.format_exc()[-3000:]
            except BaseException as exc:  # noqa: BLE001
                return "escape", f"{step} raised {type(exc).__name__}\n" + traceback.format_exc()[-3000:]
            if not finished:
                return "escape", "the load never reported finished"
            for problem in load.problems:
                if problem.reason.startswith("loading stopped"):
                    kind = "memory" if "MemoryError" in "".join(logged) else "escape"
                    return kind, f"{problem.reason!r}\n" + "\n".join(logged)
                if not problem.reason.strip():
                    return "escape", "a problem without a reason"
            reasons += [p.reason for p in load.problems] + list(volume.frame_errors.values())
        return ("problem", reasons[0]) if reasons else ("ok", "")
    finally:
        root.removeHandler(handler)


def _worker(conn, memory_limit: int, stderr_path: str, timeout: float) -> None:
    import resource
    import sys

    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 2)
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the worker
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.CRITICAL + 1)
    import workstation.services.loading  # noqa: F401 - warm: imports are not the case's time
    try:
        from workstation.dicom import limits
    except ImportError:  # an older tree under test (bench/fuzz.py --tree): no limits to set
        pass
    else:
        limits.DECODE_TIMEOUT_S = timeout / 2  # an isolated decode must be stopped within the case's time
        from workstation.dicom import decode_worker

        decode_worker.start()  # warm, like the imports
    conn.send("ready")
    base = tempfile.mkdtemp(prefix="ws-fuzz-case-")
    while True:
        message = conn.recv()
        if message is None:
            break
        case_id, files = message
        folder = Path(base) / case_id
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        try:
            result = exercise(str(folder))
        except MemoryError:
            result = ("memory", "MemoryError outside the API calls")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        conn.send(result)
    shutil.rmtree(base, ignore_errors=True)


# ----------------------------------------------------------------- in the parent

class _Slot:
    def __init__(self, context, memory_limit: int, workdir: Path, number: int, timeout: float) -> None:
        self.stderr_path = str(workdir / f"worker-{number}-{time.monotonic_ns()}.err")
        self.conn, child = context.Pipe()
        saved = {k: os.environ.get(k) for k in _ENV}
        os.environ.update(_ENV)
        try:
            self.process = context.Process(target=_worker, args=(child, memory_limit, self.stderr_path, timeout),
                                           daemon=True)
            self.process.start()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        child.close()
        if not self.conn.poll(120) or self.conn.recv() != "ready":
            raise RuntimeError(f"fuzz worker did not start: {self.stderr_tail()}")
        self.case = None
        self.last_case = None
        self.started = 0.0
        self.cpu_at_start = 0.0

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def submit(self, case) -> bool:
        """False if the worker died after its last case (the case is not started)."""
        try:
            self.conn.send((case.case_id, case.files))
        except OSError:
            return False
        self.case = self.last_case = case
        self.started = time.monotonic()
        self.cpu_at_start = self.cpu_seconds()
        return True

    def stderr_tail(self) -> str:
        try:
            return Path(self.stderr_path).read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(5)
        self.kill()
        try:
            os.unlink(self.stderr_path)
        except OSError:
            pass


def run_cases(cases, workers: int = 2, timeout: float = TIMEOUT_S, memory_limit: int = MEMORY_LIMIT,
              on_outcome=None) -> list[Outcome]:
    """Run every case; outcomes in case order."""
    context = multiprocessing.get_context("spawn")
    workdir = Path(tempfile.mkdtemp(prefix="ws-fuzz-"))
    pending = list(reversed(cases))
    outcomes: dict[str, Outcome] = {}
    slots: list[_Slot] = []
    try:
        slots = [_Slot(context, memory_limit, workdir, k, timeout) for k in range(max(1, min(workers, len(cases))))]
        while pending or any(s.case is not None for s in slots):
            for index, slot in enumerate(slots):
                if slot.case is None and pending:
                    case = pending.pop()
                    if not slot.submit(case):  # it died after answering: the previous case's doing
                        previous = outcomes[slot.last_case.case_id]
                        tail = slot.stderr_tail()
                        previous.kind = "memory" if _memory_death(tail, slot.process.exitcode) else "crash"
                        previous.detail = f"worker died after the case\n{tail}"
                        if on_outcome is not None:
                            on_outcome(previous)
                        slot.kill()
                        slot = slots[index] = _Slot(context, memory_limit, workdir, index, timeout)
                        slot.submit(case)
            busy = [s for s in slots if s.case is not None]
            ready = wait([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout=0.2)
            for index, slot in enumerate(slots):
                if slot.case is None:
                    continue
                outcome = _collect(slot, ready, timeout)
                if outcome is None:
                    continue
                outcomes[outcome.case_id] = outcome
                if on_outcome is not None:
                    on_outcome(outcome)
                if outcome.kind in ("hang", "memory", "crash"):
                    slot.kill()
                    slots[index] = _Slot(context, memory_limit, workdir, index, timeout)
                else:
                    slot.case = None
    finally:
        for slot in slots:
            slot.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return [outcomes[c.case_id] for c in cases]


def _collect(slot: _Slot, ready: list, timeout: float) -> Outcome | None:
    case = slot.case
    elapsed = time.monotonic() - slot.started
    made = lambda kind, detail="": Outcome(case.case_id, case.mutator, case.seed_name, kind, detail, round(elapsed, 3))  # noqa: E731
    if slot.conn in ready or slot.conn.poll():
        try:
            kind, detail = slot.conn.recv()
        except (EOFError, OSError):
            pass
        else:
            return made(kind, detail)
    if slot.process.sentinel in ready or not slot.process.is_alive():
        slot.process.join(1)
        tail = slot.stderr_tail()
        code = slot.process.exitcode
        return made("memory" if _memory_death(tail, code) else "crash", f"exit code {code}\n{tail}")
    cpu = slot.cpu_seconds() - slot.cpu_at_start
    if cpu > timeout or elapsed > WALL_FACTOR * timeout:
        return made("hang", f"over {timeout} s (cpu {cpu:.1f} s, wall {elapsed:.1f} s)")
    return None


def _memory_death(stderr_tail: str, exit_code: int | None) -> bool:
    """Killed (OOM) or aborted allocating: Python, C++ and Rust each say so in their own words."""
    return exit_code == -9 or any(word in stderr_tail for word in ("MemoryError", "memory allocation", "bad_alloc"))


def counts(outcomes: list[Outcome]) -> Counter:
    found = Counter(o.kind for o in outcomes)
    return Counter({kind: found.get(kind, 0) for kind in CLASSES})


def save_case(case, outcome: Outcome, folder: Path) -> Path:
    """The case's files and what happened, in `folder/<class>-<case id>/`."""
    target = folder / f"{outcome.kind}-{case.case_id}"
    target.mkdir(parents=True, exist_ok=True)
    for name, data in case.files.items():
        (target / name).write_bytes(data)
    (target / "outcome.json").write_text(json.dumps({
        "case": case.case_id, "mutator": case.mutator, "seed": case.seed_name, "class": outcome.kind,
        "seconds": outcome.seconds, "detail": outcome.detail}, indent=1) + "\n")
    return target
