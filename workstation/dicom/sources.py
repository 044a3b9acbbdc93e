"""Find candidate files under user-given paths: files, folders, DICOMDIR and zip archives.

Paths inside a DICOMDIR or zip come from untrusted data: they are resolved and
checked to stay inside the directory that holds them, and zip members are read
in place, never extracted under their stored names.
"""

from __future__ import annotations

import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from workstation.core.study import FileLocation, FileProblem

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
MAX_MEMBER_BYTES = 4 << 30  # a single DICOM object larger than this in a zip is refused

_zip_lock = threading.Lock()
_open_zips: dict[str, tuple[tuple[int, int, int], zipfile.ZipFile]] = {}


def open_location(location: FileLocation) -> BinaryIO:
    """Open an instance's bytes for reading (caller closes)."""
    if location.member is None:
        return open(location.path, "rb")
    return _archive(location.path).open(location.member)


def location_size(location: FileLocation) -> int:
    if location.member is None:
        return os.path.getsize(location.path)
    return _archive(location.path).getinfo(location.member).file_size


def _archive(path: str) -> zipfile.ZipFile:
    """A shared open archive, reopened if the file changed on disk (a re-exported zip at the same path)."""
    info = os.stat(path)
    stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
    with _zip_lock:
        cached = _open_zips.get(path)
        if cached is None or cached[0] != stamp:
            cached = _open_zips[path] = (stamp, zipfile.ZipFile(path))
        return cached[1]


def iter_locations(paths: list[str | os.PathLike]) -> Iterator[FileLocation | FileProblem]:
    """Every file worth trying under `paths`, in a stable order; problems for paths that cannot be used."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from _walk_folder(path)
        elif path.is_file():
            yield from _expand_file(path)
        else:
            yield FileProblem(FileLocation(str(path)), "no such file or folder")


def _walk_folder(folder: Path) -> Iterator[FileLocation | FileProblem]:
    for root, dirs, files in os.walk(folder, onerror=None, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            if name.startswith("."):
                continue
            file = Path(root) / name
            if file.suffix.lower() == ".zip" and zipfile.is_zipfile(file):
                yield from _zip_members(file)
            elif name.upper() != "DICOMDIR":  # the folder walk already reaches every file it indexes
                yield FileLocation(str(file))


def _expand_file(path: Path) -> Iterator[FileLocation | FileProblem]:
    if path.name.upper() == "DICOMDIR":
        yield from _dicomdir_files(path)
    elif zipfile.is_zipfile(path):
        yield from _zip_members(path)
    else:
        yield FileLocation(str(path))


def _zip_members(archive_path: Path) -> Iterator[FileLocation | FileProblem]:
    try:
        with zipfile.ZipFile(archive_path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        yield FileProblem(FileLocation(str(archive_path)), f"unreadable zip archive: {exc}")
        return
    for info in infos:
        if info.is_dir() or PurePosixPath(info.filename).name.upper() == "DICOMDIR":
            continue
        location = FileLocation(str(archive_path), info.filename)
        if info.flag_bits & 0x1:
            yield FileProblem(location, "encrypted zip member")
        elif info.file_size > MAX_MEMBER_BYTES:
            yield FileProblem(location, f"zip member too large ({info.file_size} bytes)")
        else:
            yield location


def _dicomdir_files(dicomdir: Path) -> Iterator[FileLocation | FileProblem]:
    """Files referenced by a DICOMDIR, confined to the folder that holds it."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(dicomdir)
        records = ds.DirectoryRecordSequence
    except (InvalidDicomError, AttributeError, OSError, ValueError) as exc:
        yield FileProblem(FileLocation(str(dicomdir)), f"unreadable DICOMDIR: {exc}")
        return
    root = dicomdir.parent.resolve()
    for record in records:
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        target = safe_join(root, parts)
        if target is None:
            yield FileProblem(FileLocation(str(dicomdir)), f"DICOMDIR entry {'/'.join(map(str, parts))!r} points outside its folder; ignored")
        elif not target.is_file():
            yield FileProblem(FileLocation(str(target)), "referenced by DICOMDIR but missing")
        else:
            yield FileLocation(str(target))


def safe_join(root: Path, parts: list[str]) -> Path | None:
    """`root` joined with untrusted path components, or None if the result would escape `root`."""
    clean = []
    for part in parts:
        part = str(part).strip()
        if not part or part in (".", "..") or "/" in part or "\\" in part or "\x00" in part or ":" in part:
            return None
        clean.append(part)
    if not clean:
        return None
    target = root.joinpath(*clean)
    matched = _match_case(target)
    resolved = matched.resolve()
    if resolved != root and root not in resolved.parents:
        return None
    return resolved


def _match_case(target: Path) -> Path:
    """DICOMDIR file IDs are upper case; media written on other systems may not be."""
    if target.exists():
        return target
    parent = _match_case(target.parent) if target.parent != target else target.parent
    if parent.is_dir():
        lowered = target.name.lower()
        for entry in parent.iterdir():
            if entry.name.lower() == lowered:
                return entry
    return parent / target.name
