"""Scan paths for DICOM images: header-only reads, grouped into a Catalog."""

from __future__ import annotations

import os

from workstation.core.study import Catalog, FileLocation, FileProblem, InstanceHeader, ResultRef
from workstation.core.tasks import CancelToken, Progress, no_progress
from workstation.dicom.header import read_header
from workstation.dicom.ordering import build_catalog
from workstation.dicom.sources import Skipped, iter_locations


def scan_paths(
    paths: list[str | os.PathLike],
    cancel: CancelToken | None = None,
    progress: Progress = no_progress,
) -> Catalog:
    """Read the header of every file under `paths`; unusable files become FileProblems, never exceptions."""
    locations: list[FileLocation] = []
    problems: list[FileProblem] = []
    skipped = 0  # files refused by their first bytes: scanned, like those the header reader refuses
    for item in iter_locations(paths):
        if isinstance(item, FileProblem):
            problems.append(item)
            skipped += isinstance(item, Skipped)
        else:
            locations.append(item)
        if cancel is not None and (len(locations) + len(problems)) % 256 == 0:
            cancel.raise_if_cancelled()
    headers: list[InstanceHeader] = []
    results: list[ResultRef] = []
    total = len(locations)
    for done, location in enumerate(locations, start=1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        result = read_header(location)
        if isinstance(result, InstanceHeader):
            headers.append(result)
        elif isinstance(result, ResultRef):
            results.append(result)
        elif isinstance(result, FileProblem):
            problems.append(result)
        if done % 16 == 0 or done == total:
            progress(done, total)
    return build_catalog(headers, problems, files_scanned=total + skipped, results=results)
