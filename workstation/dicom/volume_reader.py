"""Fill a core.Volume from a display set, one instance at a time, in a chosen order."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np

from workstation.core.study import DisplaySet, FileProblem, InstanceHeader
from workstation.core.tasks import CancelToken
from workstation.core.volume import Volume, frame_affine, slice_normal
from workstation.dicom.limits import MAX_VOLUME_BYTES, LimitExceeded
from workstation.dicom.native import read_native_into
from workstation.dicom.overlays import read_overlays
from workstation.dicom.pixels import DecodeError, decode_instance, output_dtype

log = logging.getLogger(__name__)

FramesReady = Callable[[list[int]], None]  # volume frame indices that now hold data


def allocate_volume(display_set: DisplaySet) -> Volume:
    """An empty volume with the display set's shape, dtype and geometry; LimitExceeded if no machine holds it."""
    first = display_set.first
    formats = [h.pixel for h in display_set.instances]
    dtype = output_dtype(formats)
    shape: tuple[int, ...] = (len(display_set.frames), first.pixel.rows, first.pixel.columns)
    if first.pixel.is_colour:
        shape += (3,)
    size = math.prod(shape) * dtype.itemsize
    if size > MAX_VOLUME_BYTES:
        raise LimitExceeded(f"series too large to load: {size / (1 << 30):.1f} GB decoded (limit {MAX_VOLUME_BYTES >> 30} GB)")
    geometry = display_set.frames[0].geometry
    slice_vector = None
    if geometry.orientation is not None and display_set.slice_spacing:
        slice_vector = slice_normal(geometry.orientation) * display_set.slice_spacing
    affine = frame_affine(geometry.position, geometry.orientation, first.pixel_spacing, slice_vector)
    positions = [f.geometry.position for f in display_set.frames]
    origins = np.array(positions, dtype=float) if all(p is not None for p in positions) else None
    return Volume(np.zeros(shape, dtype=dtype), affine, first.pixel_spacing or (1.0, 1.0), frame_origins=origins)


def frame_slots(display_set: DisplaySet) -> dict[str, list[tuple[int, int]]]:
    """For each instance UID: (volume index, frame within the instance) pairs."""
    slots: dict[str, list[tuple[int, int]]] = {}
    for index, frame in enumerate(display_set.frames):
        slots.setdefault(frame.instance.sop_instance_uid, []).append((index, frame.frame))
    return slots


def decode_order(display_set: DisplaySet, start_frame: int) -> list[InstanceHeader]:
    """Instances in the order to decode them: the one holding `start_frame` first, then the rest in display order."""
    first = display_set.frames[start_frame].instance
    rest = [h for h in display_set.instances if h.sop_instance_uid != first.sop_instance_uid]
    return [first, *rest]


def _decode_into(volume: Volume, header: InstanceHeader, targets: list[tuple[int, int]]) -> None:
    if len(targets) == 1 and read_native_into(header, volume.array[targets[0][0]]):
        return
    frames = decode_instance(header, volume.array.dtype)
    for index, frame in targets:
        volume.array[index] = frames[frame]


def read_into(
    volume: Volume,
    display_set: DisplaySet,
    start_frame: int = 0,
    cancel: CancelToken | None = None,
    on_frames: FramesReady | None = None,
) -> list[FileProblem]:
    """Decode every instance into `volume`; an instance that fails is reported and its frames stay empty.

    Instances whose frames are all decoded (or failed) already are skipped, so
    a load stopped half-way resumes with what is missing.
    """
    slots = frame_slots(display_set)
    problems = []
    for header in decode_order(display_set, start_frame):
        if cancel is not None:
            cancel.raise_if_cancelled()
        targets = slots[header.sop_instance_uid]
        if all(volume.loaded[index] or index in volume.frame_errors for index, _ in targets):
            continue
        try:
            _decode_into(volume, header, targets)
        except (DecodeError, OSError, MemoryError) as exc:
            reason = (str(exc) if isinstance(exc, DecodeError) else "not enough memory to decode this file"
                      if isinstance(exc, MemoryError) else f"cannot read file: {exc.strerror or exc}")
            problems.append(FileProblem(header.location, reason))
            for index, _ in targets:
                volume.frame_errors[index] = reason
            continue
        _add_overlays(volume, header, targets)
        for index, _ in targets:
            volume.loaded[index] = True
        if on_frames is not None:
            on_frames([index for index, _ in targets])
    return problems


def _add_overlays(volume: Volume, header: InstanceHeader, targets: list[tuple[int, int]]) -> None:
    """Overlay planes go in before the frames count as loaded, so they are drawn with the first paint."""
    if not header.overlay_groups:
        return
    try:
        planes = read_overlays(header)
    except Exception:  # noqa: BLE001 - the image is shown without its overlay
        log.warning("overlays of %s not read", header.location, exc_info=True)
        return
    for index, frame in targets:
        if frame in planes:
            volume.overlays[index] = planes[frame]
