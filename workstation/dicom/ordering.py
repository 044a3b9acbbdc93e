"""Group instance headers into display sets and order their frames in space.

Frames are ordered by their position along the slice normal
(ImagePositionPatient . (row x column)), never by file name or InstanceNumber,
which scanners do not keep consistent. Irregular spacing (gaps), duplicate
positions, missing geometry and mixed orientations or sizes are reported as
warnings on the display set, in the manner of 3D Slicer's examine step.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import replace

import numpy as np

from workstation.core.study import (Catalog, DisplaySet, FileLocation, FileProblem, FrameRef, InstanceHeader, ResultRef,
                                    SeriesRef)
from workstation.core.volume import slice_normal
from workstation.dicom.sources import open_location

ORIENTATION_TOLERANCE = 1e-3
SPACING_TOLERANCE = 0.1  # relative deviation from the median spacing that counts as a gap


def build_catalog(headers: list[InstanceHeader], problems: list[FileProblem], files_scanned: int,
                  results: list[ResultRef] = ()) -> Catalog:
    """Group headers by patient/study/series, split series into display sets and order them."""
    unique, duplicates = _unique_instances(headers)
    by_series: dict[str, list[InstanceHeader]] = defaultdict(list)
    for header in unique:
        by_series[header.series.series_instance_uid].append(header)
    display_sets: list[DisplaySet] = []
    for members in by_series.values():
        display_sets.extend(split_series(members[0].series, members))
    display_sets.sort(key=_display_order)
    unique_problems = list(dict.fromkeys([*problems, *duplicates]))  # re-opening a folder must not list its bad files twice
    unique_results = list({r.sop_instance_uid: r for r in results}.values())
    return Catalog(display_sets=display_sets, problems=unique_problems, headers=unique,
                   files_scanned=files_scanned, results=unique_results)


def _unique_instances(headers: list[InstanceHeader]) -> tuple[list[InstanceHeader], list[FileProblem]]:
    """One header per file and per instance; files sharing a SOP Instance UID are compared.

    The same bytes twice (a copy, a re-opened folder) count once. Different pixels under one UID
    are two images: the later file gets a key of its own (`UID#2`) and is reported, never dropped.
    """
    by_location: dict[FileLocation, InstanceHeader] = {}
    for header in headers:
        by_location.setdefault(header.location, header)
    groups: dict[str, list[InstanceHeader]] = defaultdict(list)
    for header in by_location.values():
        groups[header.duplicate_of or header.sop_instance_uid].append(header)
    unique: list[InstanceHeader] = []
    problems: list[FileProblem] = []
    for uid, members in groups.items():
        first = replace(members[0], sop_instance_uid=uid, duplicate_of="") if members[0].duplicate_of else members[0]
        unique.append(first)
        if len(members) == 1:
            continue
        kept = {pixel_digest(first): first}
        for header in members[1:]:
            digest = pixel_digest(header)
            if digest in kept:
                continue
            kept[digest] = header
            unique.append(replace(header, sop_instance_uid=f"{uid}#{len(kept)}", duplicate_of=uid))
            problems.append(FileProblem(header.location, f"shares SOP Instance UID {uid} with {first.location} but holds "
                                                         "other pixel data: shown as a separate image"))
    return unique, problems


def _display_order(ds: DisplaySet) -> tuple:
    study = ds.series.study
    return (study.patient.name, study.patient.patient_id, study.date, study.time, study.study_instance_uid,
            ds.series.number if ds.series.number is not None else 1 << 30, ds.series.series_instance_uid, ds.label)


def split_series(series: SeriesRef, members: list[InstanceHeader]) -> list[DisplaySet]:
    """One display set per multi-frame instance, and one per (size, orientation) group of single frames."""
    result = []
    singles = [h for h in members if h.frames == 1]
    for header in sorted((h for h in members if h.frames > 1), key=lambda h: (h.instance_number or 0, h.sop_instance_uid)):
        frames = [FrameRef(header, i) for i in range(header.frames)]
        result.append(_ordered(series, frames, label=f"#{header.instance_number or len(result) + 1}", per_instance=True))
    groups = _stack_groups(singles)
    for index, group in enumerate(groups):
        label = "" if len(groups) == 1 else f"{index + 1}/{len(groups)}"
        display_set = _ordered(series, [FrameRef(h) for h in group], label=label, per_instance=False)
        if len(groups) > 1:
            display_set.warnings.insert(0, _split_warning(groups, group))
        result.append(display_set)
    for display_set in result:  # values ignored as implausible, once per display set
        display_set.warnings.extend(dict.fromkeys(note for h in display_set.instances for note in h.notes))
    return result


def _stack_groups(headers: list[InstanceHeader]) -> list[list[InstanceHeader]]:
    """Cluster single-frame instances by image size, colour layout and orientation."""
    groups: list[tuple[tuple, np.ndarray | None, list[InstanceHeader]]] = []
    for header in sorted(headers, key=lambda h: (h.instance_number or 0, h.sop_instance_uid)):
        size = (header.pixel.rows, header.pixel.columns, header.pixel.is_colour)
        orientation = np.asarray(header.geometry.orientation) if header.geometry.orientation else None
        for key, group_orientation, members in groups:
            if key == size and _same_orientation(orientation, group_orientation):
                members.append(header)
                break
        else:
            groups.append((size, orientation, [header]))
    groups.sort(key=lambda g: -len(g[2]))
    return [members for _, _, members in groups]


def _same_orientation(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.max(np.abs(a - b)) <= ORIENTATION_TOLERANCE)


def _split_warning(groups: list[list[InstanceHeader]], group: list[InstanceHeader]) -> str:
    first = group[0]
    orientation = first.geometry.orientation
    plane = _plane_name(orientation) if orientation else "no orientation"
    return (f"series mixes {len(groups)} orientations/image sizes; this part holds {len(group)} images "
            f"({first.pixel.columns}x{first.pixel.rows}, {plane})")


def _plane_name(orientation: tuple[float, ...]) -> str:
    normal = np.abs(slice_normal(orientation))
    return ("sagittal", "coronal", "axial")[int(np.argmax(normal))] + ("" if normal.max() > 0.95 else " (oblique)")


def _ordered(series: SeriesRef, frames: list[FrameRef], label: str, per_instance: bool) -> DisplaySet:
    """Order frames along the slice normal when every frame has a position; warn otherwise."""
    display_set = DisplaySet(series=series, frames=frames, label=label)
    if len(frames) < 2:
        return display_set
    positions = [f.geometry.position for f in frames]
    orientation = next((f.geometry.orientation for f in frames if f.geometry.orientation), None)
    if orientation is None or any(p is None for p in positions):
        if not per_instance:
            frames.sort(key=lambda f: (f.instance.instance_number is None, f.instance.instance_number or 0, f.instance.sop_instance_uid))
            display_set.warnings.append("no ImagePositionPatient/ImageOrientationPatient: ordered by InstanceNumber, spacing unknown")
        return display_set
    normal = slice_normal(orientation)
    distance = np.array([np.dot(normal, p) for p in positions])
    order = np.argsort(distance, kind="stable")
    display_set.frames = [frames[i] for i in order]
    display_set.warnings.extend(_spacing_warnings(distance[order], display_set))
    return display_set


def _spacing_warnings(distance: np.ndarray, display_set: DisplaySet) -> list[str]:
    """Duplicate positions and gaps; the median step becomes the stack's nominal spacing."""
    steps = np.diff(distance)
    distinct = np.abs(steps) >= 1e-3
    warnings = []
    if not distinct.all():
        warnings.append(f"{int(np.sum(~distinct))} frame(s) share a position with another frame (repeated acquisition?)")
    if not distinct.any():
        return warnings
    spacing = float(np.median(steps[distinct]))
    display_set.slice_spacing = spacing
    irregular = np.flatnonzero(distinct & (np.abs(steps - spacing) > SPACING_TOLERANCE * spacing))
    if irregular.size:
        worst = irregular[np.argmax(np.abs(steps[irregular] - spacing))]
        warnings.append(
            f"irregular slice spacing: {irregular.size} step(s) differ from the usual {spacing:.2f} mm "
            f"(largest {steps[worst]:.2f} mm after slice {worst + 1}); distances across the stack are not uniform"
        )
    return warnings


def pixel_digest(header: InstanceHeader) -> str:
    """A hash of the instance's pixel data (of the whole file where its offset is unknown), to tell two files
    that share a SOP Instance UID apart. Read only for such files; an unreadable file hashes to its location."""
    try:
        with open_location(header.location) as fp:
            fp.seek(header.pixel_data_offset or 0)
            digest = hashlib.blake2b(digest_size=16)
            while chunk := fp.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return f"unreadable:{header.location}"
