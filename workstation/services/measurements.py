"""Use case "measure on a series": each add, edit, delete, undo and redo is a stored entry with its audit entry.

The session keeps no state of its own beyond the entries: what it reports is
the fold of the entries (core.measure_log), so a reopened study shows exactly
what was saved. The values are computed here (core.measure) with the
calibration of the measured frame: PixelSpacing, the ultrasound region that
holds the points, or pixels with a warning. Without an open store the session
keeps its entries in memory and says that nothing is saved.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workstation.core.events import Event
from workstation.core.measure import (
    DIAMETER, ELLIPSE, RECTANGLE, Calibration, MeasureError, Reading, UltrasoundRegion, calibration, measure,
    perpendicular_short_axis, propose_axes,
)
from workstation.core.measure_log import (
    MeasureAction, Measurement, MeasurementEntry, Shown, current, refusal, undo_redo_targets,
)
from workstation.core.roles import User
from workstation.core.study import DisplaySet
from workstation.store.database import Store, now_utc
from workstation.store.measurements import PERMISSION, MeasurementRefused, MeasurementStore

log = logging.getLogger(__name__)

NOT_SAVED = "measurements are not saved: the encrypted store is not open"


@dataclass(frozen=True)
class FrameInfo:
    """What measuring on one frame needs from its header."""

    sop_instance_uid: str
    pixel_spacing: tuple[float, float] | None
    spacing_source: str
    regions: tuple[UltrasoundRegion, ...] = ()


@dataclass(frozen=True)
class SeriesInfo:
    study_instance_uid: str
    series_instance_uid: str
    modality: str
    frames: tuple[FrameInfo, ...]

    @classmethod
    def of(cls, display_set: DisplaySet) -> SeriesInfo:
        series = display_set.series
        frames = tuple(FrameInfo(f.instance.sop_instance_uid, f.instance.pixel_spacing, f.instance.spacing_source,
                                 tuple(getattr(f.instance, "ultrasound_regions", ()) or ()))
                       for f in display_set.frames)
        return cls(series.study.study_instance_uid, series.series_instance_uid, series.modality, frames)


class _MemoryLog:
    """Entries kept for this window only (no store): the same rules, nothing written."""

    def __init__(self) -> None:
        self._entries: dict[str, list[MeasurementEntry]] = {}

    def entries(self, series_instance_uid: str) -> list[MeasurementEntry]:
        return list(self._entries.get(series_instance_uid, []))

    def record(self, entry: MeasurementEntry) -> None:
        entries = self._entries.setdefault(entry.series_instance_uid, [])
        reason = refusal(entries, entry)
        if reason is not None:
            raise ValueError(reason)
        entries.append(entry)


class MeasurementService:
    """Opens measurement sessions for the signed-in user; `store` None keeps them in memory (not saved)."""

    def __init__(self, store: Store | None, workstation_user: User | None = None) -> None:
        self.store = store
        self._log = MeasurementStore(store) if store is not None else _MemoryLog()
        self.user = store.identity.user if store is not None else (workstation_user or User("reader", None))
        self.workstation_id = store.identity.workstation_id if store is not None else ""

    @property
    def saved(self) -> bool:
        return self.store is not None

    @property
    def may_measure(self) -> bool:
        return self.store is None or self.user.may(PERMISSION)

    def stored_heatmap(self, series_instance_uid: str, model_text: str) -> np.ndarray | None:
        """The heatmap kept with the newest stored run of this model on the series (frames, rows, columns;
        uint8 = probability x 255), for "Measure" on a reopened study; None when none was kept."""
        if self.store is None:
            return None
        for run in self.store.inference_runs(series_instance_uid):
            if str(run.model) == model_text:
                return self.store.heatmap(run.run_id)
        return None

    def session(self, display_set: DisplaySet) -> MeasurementSession:
        return MeasurementSession(self, SeriesInfo.of(display_set))


class MeasurementSession:
    """The measurements of one series for the signed-in reader."""

    def __init__(self, service: MeasurementService, series: SeriesInfo) -> None:
        self.service, self.series = service, series
        self.changed = Event()  # after each recorded entry
        self._entries = service._log.entries(series.series_instance_uid)  # noqa: SLF001

    @property
    def user(self) -> User:
        return self.service.user

    # ----- reading
    def measurements(self) -> list[Shown]:
        return current(self._entries)

    def frame_of(self, measurement: Measurement) -> int | None:
        """Where the measured image is in this display set now (by SOP Instance UID: a series that grew, or another
        part of a split series, moves or drops it); None when it is not here."""
        frames, k = self.series.frames, measurement.frame_index
        if not measurement.sop_instance_uid:
            return k if 0 <= k < len(frames) else None
        if 0 <= k < len(frames) and frames[k].sop_instance_uid == measurement.sop_instance_uid:
            return k
        return next((i for i, f in enumerate(frames) if f.sop_instance_uid == measurement.sop_instance_uid), None)

    def here(self) -> list[tuple[Shown, int]]:
        """The measurements on images of this display set, with the frame each is on now."""
        found = [(shown, self.frame_of(shown.measurement)) for shown in self.measurements()]
        return [(shown, frame) for shown, frame in found if frame is not None]

    def get(self, measurement_id: str) -> Shown:
        for shown in self.measurements():
            if shown.measurement.measurement_id == measurement_id:
                return shown
        raise KeyError(f"no measurement {measurement_id}")

    def mine(self, measurement_id: str) -> bool:
        return self.get(measurement_id).user == self.user.login

    def undo_target(self) -> MeasurementEntry | None:
        return undo_redo_targets(self._entries, self.user.login)[0]

    def redo_target(self) -> MeasurementEntry | None:
        return undo_redo_targets(self._entries, self.user.login)[1]

    def calibration(self, frame_index: int, points) -> Calibration:
        frame = self.series.frames[frame_index]
        return calibration(frame.pixel_spacing, frame.spacing_source, frame.regions, tuple(points))

    @property
    def value_unit(self) -> str:
        return "HU" if self.series.modality == "CT" else ""

    def reading(self, kind: str, frame_index: int, points, image: np.ndarray | None = None) -> Reading:
        """The values and text of a measurement on a frame (ROI statistics need `image`, in modality units)."""
        points = self.constrained(kind, frame_index, points)
        needs_pixels = kind in (ELLIPSE, RECTANGLE)
        if needs_pixels and image is not None and image.ndim != 2:
            raise MeasureError("ROI statistics need a greyscale image")
        return measure(kind, points, self.calibration(frame_index, points), image if needs_pixels else None,
                       self.value_unit)

    def constrained(self, kind: str, frame_index: int, points) -> list[tuple[float, float]]:
        """The diameter's short axis kept perpendicular to the long one (in mm); other kinds as given."""
        points = [(float(x), float(y)) for x, y in points]
        if kind == DIAMETER and len(points) == 4:
            return perpendicular_short_axis(points, self.calibration(frame_index, points))
        return points

    def propose(self, frame_index: int, box_px, heat: np.ndarray | None, image: np.ndarray | None) -> tuple[list, str]:
        """("Measure" on a finding box) the long and short axes of the heatmap region inside the box on its key
        slice, and where they came from; without a heatmap (a stored run) the half-maximum region of the image."""
        cal = self.calibration(frame_index, [(box_px[0], box_px[1]), (box_px[2], box_px[3])])
        if heat is not None:
            return propose_axes(heat, box_px, cal), "heatmap"
        if image is None or image.ndim != 2:
            raise MeasureError("no heatmap and no decoded greyscale image to measure from")
        c0, r0, c1, r1 = (int(round(v)) for v in box_px)
        window = image[max(0, r0):max(0, r1), max(0, c0):max(0, c1)].astype(np.float64)
        if window.size == 0:
            raise MeasureError("the box lies outside the image")
        floor = float(np.percentile(window, 10))
        return propose_axes(np.clip(image.astype(np.float64) - floor, 0, None), box_px, cal), "image"

    # ----- writing (each is one entry)
    def add(self, kind: str, frame_index: int, points, image: np.ndarray | None = None, finding_id: str = "") -> Shown:
        measurement = self._measurement(str(uuid.uuid4()), kind, frame_index, points, image, finding_id)
        self._write(MeasureAction.ADD, measurement.measurement_id, measurement)
        return self.get(measurement.measurement_id)

    def edit(self, measurement_id: str, points, image: np.ndarray | None = None) -> Shown:
        old = self.get(measurement_id).measurement
        frame = self.frame_of(old)
        if frame is None:
            raise MeasureError("that measurement is on an image not in this display set")
        measurement = self._measurement(measurement_id, old.kind, frame, points, image, old.finding_id)
        if np.allclose(np.array(measurement.points), np.array(old.points), atol=1e-3):
            return self.get(measurement_id)
        self._write(MeasureAction.EDIT, measurement_id, measurement)
        return self.get(measurement_id)

    def delete(self, measurement_id: str) -> None:
        self.get(measurement_id)
        self._write(MeasureAction.DELETE, measurement_id, None)

    def undo(self) -> MeasurementEntry:
        return self._revert(MeasureAction.UNDO, self.undo_target)

    def redo(self) -> MeasurementEntry:
        return self._revert(MeasureAction.REDO, self.redo_target)

    def _revert(self, action: MeasureAction, target: Callable[[], MeasurementEntry | None]) -> MeasurementEntry:
        entry = target()
        if entry is None:
            raise ValueError(f"nothing to {action.value}")
        self._write(action, entry.measurement_id, None, reverts=entry.entry_id)
        return entry

    def _measurement(self, measurement_id: str, kind: str, frame_index: int, points, image, finding_id: str) -> Measurement:
        if not 0 <= frame_index < len(self.series.frames):
            raise MeasureError(f"no frame {frame_index + 1} in this series")
        points = self.constrained(kind, frame_index, points)
        reading = self.reading(kind, frame_index, points, image)
        cal = self.calibration(frame_index, points)
        return Measurement(measurement_id, kind, frame_index, tuple(points), self.series.frames[frame_index].sop_instance_uid,
                           dict(reading.values), cal.unit, reading.text, finding_id)

    def _write(self, action: MeasureAction, measurement_id: str, measurement: Measurement | None, reverts: str = "") -> None:
        user = self.user
        entry = MeasurementEntry(str(uuid.uuid4()), action, measurement_id, self.series.study_instance_uid,
                                 self.series.series_instance_uid, user.login, user.role.value if user.role else "",
                                 self.service.workstation_id, now_utc(), measurement, reverts)
        try:
            self.service._log.record(entry)  # noqa: SLF001
        except MeasurementRefused as refused:
            raise ValueError(refused.reason) from None
        self._entries = self.service._log.entries(self.series.series_instance_uid)  # noqa: SLF001
        self.changed.emit(entry)
