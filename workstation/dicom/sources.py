"""Find candidate files under user-given paths: files, folders, DICOMDIR and zip archives.

Everything here comes from untrusted media. Paths inside a DICOMDIR are sanitised and confined to its
folder (also through symbolic links); a folder walk reports links that leave the opened folder or loop
instead of following them; zip members are read in place, never extracted, and an archive is checked
against size, ratio and count limits from its central directory before any member is read. Each file's
first 132 bytes decide what it is, the same way however it was reached (preamble.py).
"""

from __future__ import annotations

import os
import re
import stat
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from workstation.core.study import FileLocation, FileProblem
from workstation.dicom import preamble
from workstation.dicom.dicomdir import read_dicomdir

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

# Zip limits, checked from the central directory before a member is read.
MAX_MEMBER_BYTES = 4 << 30  # one DICOM object larger than this in a zip is refused
MAX_MEMBERS = 50_000  # a study export holds thousands; 100,000 tiny members is an attack
MAX_ARCHIVE_BYTES = 64 << 30  # all members together, uncompressed
MAX_RATIO = 200  # images compress 2-20 times; deflate's limit is about 1,030
RATIO_CHECKED_ABOVE = 64 << 20  # small members may compress far (a blank slice): harmless
MAX_CENTRAL_DIRECTORY = 64 << 20
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}

MAX_FOLDER_DEPTH = 64  # deeper real folders: a bind-mount loop or an attack
MAX_NAME_BYTES = 255  # per path component, as on every common file system
MAX_FILE_ID_PARTS = 16  # DICOM allows 8
_FILE_ID_PART = re.compile(r"[A-Za-z0-9_. -]+")  # CS characters (A-Z 0-9 _ space), lower case and '.' from lax writers
MAX_ENTRY_PROBLEMS = 20  # refused DICOMDIR entries listed one by one; the rest counted in one line

_zip_lock = threading.Lock()
_open_zips: dict[str, tuple[tuple[int, int, int], zipfile.ZipFile]] = {}


@dataclass(frozen=True)
class Skipped(FileProblem):
    """A file looked at and rejected by its first bytes: counted as scanned, like a file the header reader refused."""


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
    """Every file worth trying under `paths`, in a stable order; problems for paths and files that cannot be used."""
    for raw in paths:
        path = Path(raw)
        try:
            mode = path.stat().st_mode
        except (OSError, ValueError):
            yield FileProblem(FileLocation(str(path)), "no such file or folder")
            continue
        if stat.S_ISDIR(mode):
            yield from _walk_folder(path)
        elif stat.S_ISREG(mode):
            yield from _expand_file(path)
        else:
            yield FileProblem(FileLocation(str(path)), "not a regular file (a device, pipe or socket): not read")


# ----- folders


def _walk_folder(folder: Path) -> Iterator[FileLocation | FileProblem]:
    """Files under `folder`, depth first in name order; symbolic links are followed only to files inside it."""
    root = folder.resolve()
    pending: list[tuple[Path, int]] = [(folder, 0)]
    while pending:
        directory, depth = pending.pop()
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            yield FileProblem(FileLocation(str(directory)), f"cannot read folder: {exc.strerror or exc}")
            continue
        subfolders = []
        for entry in entries:
            path = Path(entry.path)
            try:
                if entry.is_symlink():
                    yield from _linked(path, root)
                elif entry.is_dir(follow_symlinks=False):
                    subfolders.append(path)
                elif entry.name.startswith("."):
                    continue
                elif entry.is_file(follow_symlinks=False):
                    if entry.name.upper() != "DICOMDIR":  # the walk already reaches every file it indexes
                        yield from _classify_file(path)
                else:
                    yield FileProblem(FileLocation(str(path)), "not a regular file (a device, pipe or socket): not read")
            except OSError as exc:
                yield FileProblem(FileLocation(str(path)), f"cannot read: {exc.strerror or exc}")
        if subfolders and depth >= MAX_FOLDER_DEPTH:
            yield FileProblem(FileLocation(str(directory)), f"folders nested deeper than {MAX_FOLDER_DEPTH} levels: not read")
            continue
        pending.extend((sub, depth + 1) for sub in reversed(subfolders))


def _linked(link: Path, root: Path) -> Iterator[FileLocation | FileProblem]:
    """A symbolic link met in a walk: its file if it stays inside the opened folder, else a problem saying why not."""
    location = FileLocation(str(link))
    try:
        target = link.resolve(strict=True)
    except RuntimeError:  # Python 3.11 reports a loop this way
        yield FileProblem(location, "symbolic link loop: not followed")
        return
    except FileNotFoundError:
        yield FileProblem(location, "broken symbolic link: its target does not exist")
        return
    except OSError as exc:
        reason = "symbolic link loop" if "loop" in str(exc).lower() else f"unusable symbolic link ({exc.strerror or exc})"
        yield FileProblem(location, f"{reason}: not followed")
        return
    inside = target == root or target.is_relative_to(root)
    if target.is_dir():
        if not inside:
            yield FileProblem(location, f"symbolic link to a folder outside the opened folder ({_shown(target)}): not followed")
        return  # a link to a folder inside is walked as that folder already
    if not inside:
        yield FileProblem(location, f"symbolic link to a file outside the opened folder ({_shown(target)}): not read")
    elif not target.is_file():
        yield FileProblem(location, "symbolic link to something that is not a regular file: not read")
    elif not link.name.startswith(".") and link.name.upper() != "DICOMDIR":
        yield from _classify_file(link)


def _accepted(location: FileLocation, head: bytes, kind: str) -> Iterator[FileLocation | FileProblem]:
    """A file or member whose first bytes start a DICOM object (after a warning about its preamble), or may."""
    if kind == preamble.DICOM:
        warning = preamble.preamble_warning(head)
        if warning:
            yield FileProblem(location, warning)
    yield location


def _shown(path: Path) -> str:
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


# ----- one file: DICOM, a zip to open, a DICOMDIR, or not DICOM


def _expand_file(path: Path) -> Iterator[FileLocation | FileProblem]:
    if path.name.upper() == "DICOMDIR":
        yield from _dicomdir_files(path)
    else:
        yield from _classify_file(path)


def _classify_file(path: Path) -> Iterator[FileLocation | FileProblem]:
    """One rule for every file however it was reached: "DICM" at 128 is DICOM (flagged if its preamble is
    another format's header), a zip by content is opened, a file that cannot start a DICOM object is skipped."""
    location = FileLocation(str(path))
    try:
        with open(path, "rb") as fp:
            head = fp.read(preamble.HEAD_BYTES)
    except OSError as exc:
        yield Skipped(location, f"cannot read file: {exc.strerror or exc}")
        return
    kind = preamble.classify(head, path.name)
    if kind in (preamble.DICOM, preamble.MAYBE_DICOM):
        yield from _accepted(location, head, kind)
    elif kind == preamble.ZIP and _is_zip(path):
        yield from _zip_members(path)
    else:
        yield Skipped(location, _not_dicom(head, kind))


def _not_dicom(head: bytes, kind: str) -> str:
    if not head:
        return "not a DICOM file (empty)"
    if kind == preamble.ZIP:
        return "not a DICOM file (looks like a damaged zip archive)"
    return "not a DICOM file"


def _is_zip(path: Path) -> bool:
    try:
        return zipfile.is_zipfile(path)
    except (OSError, ValueError):
        return False


# ----- zip archives


def _zip_members(archive_path: Path) -> Iterator[FileLocation | FileProblem]:
    archive_location = FileLocation(str(archive_path))
    refusal = _central_directory_refusal(archive_path)
    if refusal:
        yield Skipped(archive_location, refusal)
        return
    try:
        with zipfile.ZipFile(archive_path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError, EOFError) as exc:
        # NotImplementedError: a version or method zipfile refuses, e.g. a damaged central directory
        yield Skipped(archive_location, f"unreadable zip archive: {exc}")
        return
    total = 0
    for info in infos:
        if info.is_dir() or PurePosixPath(info.filename).name.upper() == "DICOMDIR":
            continue
        location = FileLocation(str(archive_path), info.filename)
        total += info.file_size
        if total > MAX_ARCHIVE_BYTES:
            yield Skipped(location, f"zip archive expands to more than {MAX_ARCHIVE_BYTES >> 30} GB: this and "
                                    "the remaining members not read")
            return
        refusal = _member_refusal(info)
        if refusal:
            yield Skipped(location, refusal)
        else:
            yield from _classify_member(archive_path, info, location)


def _central_directory_refusal(path: Path) -> str:
    """Why the archive is refused from its end-of-central-directory record alone ("" if it is not)."""
    try:
        with open(path, "rb") as fp:
            end = zipfile._EndRecData(fp)  # noqa: SLF001 - zipfile's own reader of the record, zip64 included
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        return f"unreadable zip archive: {exc}"
    if not end:
        return "unreadable zip archive: no central directory"
    entries, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]  # noqa: SLF001
    if entries > MAX_MEMBERS:
        return f"zip archive with {entries} members (more than {MAX_MEMBERS}): not opened"
    if size > MAX_CENTRAL_DIRECTORY:
        return f"zip archive with a {size}-byte central directory: not opened"
    return ""


def _member_refusal(info: zipfile.ZipInfo) -> str:
    """Why a member is not read, from its central directory entry alone ("" if it may be)."""
    if info.flag_bits & 0x1:
        return "encrypted zip member"
    if info.flag_bits & 0x60:
        return "zip member in a format not supported (patched or strongly encrypted data)"
    if info.compress_type not in _ZIP_METHODS:
        return f"zip member compressed with method {info.compress_type}, not supported"
    if info.file_size > MAX_MEMBER_BYTES:
        return f"zip member too large ({info.file_size} bytes; limit {MAX_MEMBER_BYTES})"
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        return "damaged zip member (stored sizes differ)"
    if info.file_size > RATIO_CHECKED_ABOVE and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        ratio = info.file_size // max(info.compress_size, 1)
        return (f"zip member expands {ratio} times to {info.file_size} bytes (limit {MAX_RATIO} times): "
                "a zip bomb? not read")
    return ""


def _classify_member(archive_path: Path, info: zipfile.ZipInfo, location: FileLocation) -> Iterator[FileLocation | FileProblem]:
    try:
        with _archive(str(archive_path)).open(info) as member:
            head = member.read(preamble.HEAD_BYTES)
    except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError, EOFError, RuntimeError) as exc:
        # zlib.error is an Exception subclass zipfile lets through; RuntimeError: a password is needed
        yield Skipped(location, f"unreadable zip member: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - zlib.error and lzma/bz2 errors of a damaged stream
        yield Skipped(location, f"unreadable zip member ({type(exc).__name__}: {exc})")
        return
    kind = preamble.classify(head, info.filename)
    if kind in (preamble.DICOM, preamble.MAYBE_DICOM):
        yield from _accepted(location, head, kind)
    elif kind == preamble.ZIP and head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        yield Skipped(location, "not a DICOM file (a zip archive inside the archive: extract it to open it)")
    else:
        yield Skipped(location, _not_dicom(head, preamble.NOT_DICOM))


# ----- DICOMDIR


def _dicomdir_files(dicomdir: Path) -> Iterator[FileLocation | FileProblem]:
    """Files referenced by a DICOMDIR, confined to the folder that holds it.

    A damaged DICOMDIR is one problem: the records read before the damage are used, and when none
    could be read the files of its folder are read instead, so the media still opens.
    """
    location = FileLocation(str(dicomdir))
    directory = read_dicomdir(str(dicomdir))
    if directory.problem and not any(r.file_id for r in directory.records):
        yield FileProblem(location, f"unreadable DICOMDIR ({directory.problem}): the files in its folder were read instead")
        yield from _walk_folder(dicomdir.parent)
        return
    if directory.problem:
        yield FileProblem(location, f"damaged DICOMDIR ({directory.problem}): only the files it lists before "
                                    "the damage were read")
    root = dicomdir.parent.resolve()
    listings: dict[Path, dict[str, str] | None] = {}
    seen: set[Path] = set()  # a hostile index may list one file a million times
    refused = 0
    for record in directory.records:
        if record.file_id is None:
            if record.bad_file_id:
                refused += 1
                if refused <= MAX_ENTRY_PROBLEMS:
                    yield FileProblem(location, f"DICOMDIR entry refused: {record.bad_file_id}")
            continue
        target, why = _confined(root, record.file_id, listings)
        if target is None:
            refused += 1
            if refused <= MAX_ENTRY_PROBLEMS:
                shown = "/".join(record.file_id)[:300].encode("ascii", "backslashreplace").decode("ascii")
                yield FileProblem(location, f"DICOMDIR entry {shown!r} {why}; ignored")
        elif target in seen:
            continue
        elif not target.is_file():
            seen.add(target)
            yield FileProblem(FileLocation(str(target)), "referenced by DICOMDIR but missing")
        else:
            seen.add(target)
            yield from _classify_file(target)
    if refused > MAX_ENTRY_PROBLEMS:
        yield FileProblem(location, f"{refused - MAX_ENTRY_PROBLEMS} more DICOMDIR entries refused")


def safe_join(root: Path, parts: list[str]) -> Path | None:
    """`root` joined with untrusted path components, or None if the result would escape `root`."""
    return _confined(root, parts, {})[0]


def _confined(root: Path, parts: list, listings: dict) -> tuple[Path | None, str]:
    """(resolved path inside `root`, "") or (None, why it is refused). Never builds a path from a bad component."""
    if not parts or len(parts) > MAX_FILE_ID_PARTS:
        return None, f"has {len(parts)} path components"
    clean = []
    for part in parts:
        part = str(part).strip() if isinstance(part, str) else ""
        if part in (".", "..") or "/" in part or "\\" in part or "\x00" in part or ":" in part:
            return None, "points outside its folder"
        if not part or not _FILE_ID_PART.fullmatch(part) or len(part.encode()) > MAX_NAME_BYTES:
            return None, "is not a valid file ID"
        clean.append(part)
    try:
        resolved = _match_case(root.joinpath(*clean), listings).resolve()
    except (OSError, RuntimeError) as exc:  # a link loop on the way
        return None, f"cannot be followed ({getattr(exc, 'strerror', None) or exc})"
    if resolved != root and not resolved.is_relative_to(root):
        return None, "points outside its folder"
    return resolved, ""


def _match_case(target: Path, listings: dict) -> Path:
    """DICOMDIR file IDs are upper case; media written on other systems may not be (folder listings cached)."""
    if target.exists():
        return target
    parent = _match_case(target.parent, listings) if target.parent != target else target.parent
    if parent not in listings:
        try:
            listings[parent] = {entry.name.lower(): entry.name for entry in os.scandir(parent)}
        except OSError:
            listings[parent] = None
    names = listings[parent]
    if names and target.name.lower() in names:
        return parent / names[target.name.lower()]
    return parent / target.name
