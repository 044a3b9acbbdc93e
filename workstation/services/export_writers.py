"""Where a de-identified export goes: a folder or a zip written under a temporary name and moved into place, or a
research node by C-STORE. File names are ours (counters), never values from the data."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sys
import threading
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from workstation.net.store_scu import outgoing, store_objects

SEND_BATCH = 200  # objects per association to a research node (memory stays bounded)


class DestinationError(Exception):
    """The destination cannot be written (exists, not a folder): the message says which."""


def writer_for(destination, export_id: str):
    if destination.kind == "folder":
        return _FolderWriter(Path(destination.target), export_id)
    if destination.kind == "zip":
        return _ZipWriter(Path(destination.target), export_id)
    return _NodeWriter(export_id)


class _Names:
    """File names we make (never from data set values): DICOM/Pnnn/Snnn/Ennn/Innnnn.dcm by order seen."""

    def __init__(self) -> None:
        self.ids: dict[str, dict[str, int]] = {"P": {}, "S": {}, "E": {}}
        self.count = 0

    def name(self, keys: tuple[str, str, str]) -> str:
        """`keys`: the de-identified Patient ID, Study and Series Instance UID."""
        parts = []
        for level, key in zip("PSE", keys):
            known = self.ids[level]
            parts.append(f"{level}{known.setdefault(key, len(known) + 1):03d}")
        self.count += 1
        return "/".join(["DICOM", *parts, f"I{self.count:05d}.dcm"])

    def spill_folder(self) -> Path | None:
        """Where worker processes may write objects themselves; None: they hand the bytes back (zip, node)."""
        return None


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX); nothing to do where folders cannot be opened (Windows)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _flush_files(folder: Path, paths: list[Path]) -> None:
    """Every file under `folder` on disk before the folder is moved into place. Linux: one syncfs(2) of the file
    system holding it (one journal commit; an fsync per file cost a commit each, ~20% of a 500-slice export and
    the workers' file creation waited on them); elsewhere, or if syncfs fails, an fsync per file."""
    if _syncfs(folder):
        return
    for path in paths:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _syncfs(folder: Path) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        handle = os.open(folder, os.O_RDONLY)
    except (OSError, AttributeError):
        return False
    try:
        return libc.syncfs(handle) == 0  # since Linux 5.8 it also reports write-back errors of the file system
    except AttributeError:  # a C library without syncfs
        return False
    finally:
        os.close(handle)


class _FolderWriter(_Names):
    """Files are written by a helper thread while the next objects are de-identified (or by the worker processes
    themselves, see spill_folder); at most PENDING wait. They reach the disk together at commit (_flush_files)."""

    PENDING = 16
    FLUSH_EVERY = 32  # files; then a syncfs on the helper thread starts their write-back while the export goes on

    def __init__(self, target: Path, export_id: str) -> None:
        super().__init__()
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise DestinationError(f"{target} exists and is not an empty folder")
        if not target.parent.is_dir():
            raise DestinationError(f"{target.parent} is not a folder")
        self.target = target
        self.temp = target.parent / f".{target.name}.partial-{export_id}"
        self.temp.mkdir()
        self.folders: set[Path] = {self.temp}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ws-export-write")
        self.slots = threading.BoundedSemaphore(self.PENDING)
        self.writes: list[Future] = []
        self.paths: list[Path] = []  # every object file, for the per-file fsync where syncfs is not available
        self.flushing: Future | None = None

    def _placed(self, keys: tuple[str, str, str]) -> tuple[str, Path]:
        """The object's name and its path in the temporary folder, whose parent folders exist."""
        name = self.name(keys)
        path = self.temp / name
        if path.parent not in self.folders:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.folders |= {path.parent, *path.parent.parents}
        return name, path

    def add(self, keys: tuple[str, str, str], data: bytes) -> str:
        name, path = self._placed(keys)
        self._check_writes()
        self.slots.acquire()
        self.writes.append(self.pool.submit(self._write, path, data))
        self._written(path)
        return name

    def spill_folder(self) -> Path:
        """Where worker processes write objects themselves (inside the temporary folder, emptied by add_spilled)."""
        folder = self.temp / ".work"
        folder.mkdir(exist_ok=True)
        return folder

    def add_spilled(self, keys: tuple[str, str, str], spilled: str) -> str:
        """An object a worker wrote under the spill folder, moved to its name."""
        name, path = self._placed(keys)
        os.rename(spilled, path)
        self._written(path)
        return name

    def _written(self, path: Path) -> None:
        """Flushing as the export goes keeps the final flush short and the disk busy while the CPUs work (one
        flush at the end had 250 MB to write with nothing left to overlap it)."""
        self.paths.append(path)
        if len(self.paths) % self.FLUSH_EVERY == 0 and (self.flushing is None or self.flushing.done()):
            self.flushing = self.pool.submit(_syncfs, self.temp)

    def _write(self, path: Path, data: bytes) -> None:
        try:
            with open(path, "wb") as handle:
                handle.write(data)
        finally:
            self.slots.release()

    def _check_writes(self) -> None:
        """A failed write (disk full) stops the export at once, with its error."""
        for future in [f for f in self.writes if f.done()]:
            future.result()
        self.writes = [f for f in self.writes if not f.done()]

    def commit(self, manifest: dict, node, config, cancel) -> list[tuple[str, str]]:
        """Every file on disk before the folder appears under its name, then the rename made durable."""
        self.pool.shutdown(wait=True)
        for future in self.writes:
            future.result()
        work = self.temp / ".work"
        if work.exists():
            work.rmdir()  # empty: every object the workers wrote was moved to its name
        manifest_path = self.temp / "manifest.json"
        manifest_path.write_text(json.dumps(manifest, indent=2))
        _flush_files(self.temp, [*self.paths, manifest_path])
        if self.target.exists():
            self.target.rmdir()
        os.rename(self.temp, self.target)
        _fsync_folder(self.target.parent)
        return []

    def keep_manifest(self, manifest: dict, config) -> None:
        (self.target / "manifest.json").write_text(json.dumps(manifest, indent=2))

    def abort(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.temp, ignore_errors=True)


class _ZipWriter(_Names):
    def __init__(self, target: Path, export_id: str) -> None:
        super().__init__()
        if target.exists():
            raise DestinationError(f"{target} exists (choose a new file name)")
        if not target.parent.is_dir():
            raise DestinationError(f"{target.parent} is not a folder")
        self.target = target
        self.temp = target.parent / f".{target.name}.partial-{export_id}"
        self.zip = zipfile.ZipFile(self.temp, "x", zipfile.ZIP_STORED)

    def add(self, keys: tuple[str, str, str], data: bytes) -> str:
        name = self.name(keys)
        self.zip.writestr(name, data)
        return name

    def commit(self, manifest: dict, node, config, cancel) -> list[tuple[str, str]]:
        self.manifest_at_commit = manifest
        return []

    def keep_manifest(self, manifest: dict, config) -> None:
        self.zip.writestr("manifest.json", json.dumps(manifest, indent=2))
        self.zip.close()
        with open(self.temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self.temp, self.target)

    def abort(self) -> None:
        try:
            self.zip.close()
        finally:
            self.temp.unlink(missing_ok=True)


class _NodeWriter(_Names):
    """Objects go to the research node by C-STORE; the manifest stays here (user data folder, exports/)."""

    def __init__(self, export_id: str) -> None:
        super().__init__()
        self.export_id = export_id
        self.objects: list[tuple[str, bytes]] = []

    def add(self, keys: tuple[str, str, str], data: bytes) -> str:
        name = self.name(keys)
        self.objects.append((name, data))
        return name

    def commit(self, manifest: dict, node, config, cancel) -> list[tuple[str, str]]:
        failed = []
        for start in range(0, len(self.objects), SEND_BATCH):
            batch = self.objects[start:start + SEND_BATCH]
            try:
                outcomes = store_objects(node, config.local, [outgoing(data) for _, data in batch], cancel)
            except Exception as exc:  # noqa: BLE001 - node down / association refused: every object of the batch
                failed += [(name, f"not sent to {node.name}: {exc}") for name, _ in batch]
                continue
            for (name, _), outcome in zip(batch, outcomes):
                if not outcome.stored:
                    failed.append((name, f"not stored by {node.name}: {outcome.reason or outcome.status}"))
        self.objects = []
        return failed

    def keep_manifest(self, manifest: dict, config) -> None:
        from workstation.services.session import store_path

        folder = store_path(config).parent / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".{self.export_id}.json.partial"
        temp.write_text(json.dumps(manifest, indent=2))
        os.replace(temp, folder / f"{self.export_id}.json")
        self.manifest_path = folder / f"{self.export_id}.json"

    def abort(self) -> None:
        self.objects = []
