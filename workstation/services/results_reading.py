"""Use case "show the results stored with a study": SR / GSPS / Parametric Map objects found beside the images
are read when a series they refer to opens, and turned into what the viewer draws (read-only).

A review SR (reader verdicts) is preferred to the AI SR it reviews, an SR to
a GSPS that draws the same boxes; a Parametric Map gives the heatmap. An
object that cannot be used is a problem in the Problems panel, never a crash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pydicom

from workstation.core.findings import Finding, InferenceResult, ModelRef
from workstation.core.results import KIND_GSPS, KIND_PMAP, KIND_REVIEW_SR, ForeignFindings
from workstation.core.review import BoxGeometry, FindingState, State
from workstation.core.study import Catalog, DisplaySet, FileProblem
from workstation.dicom.sources import open_location
from workstation.results import read_results

log = logging.getLogger(__name__)

STATES = {s.value: s for s in State}


@dataclass(frozen=True)
class ShownResults:
    """What the viewer shows for a series from its stored result objects."""

    result: InferenceResult  # findings as boxes, the heatmap (zeros when there is no Parametric Map)
    states: list[FindingState]  # verdicts of a review SR, else pending
    source: str  # "nodule-detector 1.1.0 (SR); verdicts: carol (radiologist), verified 2026-12-04 ..."
    has_heatmap: bool


def read_for_series(catalog: Catalog, display_set: DisplaySet) -> tuple[ShownResults | None, list[FileProblem]]:
    """Read the objects that refer to the display set's series; None when none of them is usable here."""
    refs = catalog.results_for(display_set.series.series_instance_uid)
    if not refs:
        return None, []
    datasets, problems = [], []
    by_uid = {r.sop_instance_uid: r for r in refs}
    for ref in refs:
        try:
            with open_location(ref.location) as handle:
                datasets.append(pydicom.dcmread(handle))
        except Exception as exc:  # noqa: BLE001 - a damaged file is reported, the series still opens
            problems.append(FileProblem(ref.location, f"results object unreadable: {type(exc).__name__}: {str(exc)[:200]}"))
    found, bad = read_results(datasets)
    for problem in bad:
        ref = by_uid.get(problem.sop_instance_uid)
        if ref is not None:
            problems.append(FileProblem(ref.location, problem.reason))
    shown = to_display(found, display_set)
    return shown, problems


def to_display(found: list[ForeignFindings], display_set: DisplaySet) -> ShownResults | None:
    """Map the objects' findings and heatmap onto the display set's frames (by SOP Instance UID and frame)."""
    frames = {(f.instance.sop_instance_uid, f.frame + 1): i for i, f in enumerate(display_set.frames)}
    firsts = {}
    for i, f in enumerate(display_set.frames):
        firsts.setdefault(f.instance.sop_instance_uid, i)

    def frame_of(sop_uid: str, frame_number: int | None) -> int | None:
        return frames.get((sop_uid, frame_number)) if frame_number else firsts.get(sop_uid)

    found = sorted(found, key=_written)  # the newest of each kind wins, whatever the file order
    reviews = [f for f in found if f.kind == KIND_REVIEW_SR and f.findings]
    srs = [f for f in found if f.kind not in (KIND_GSPS, KIND_PMAP) and f.findings]
    boxes_from = reviews[-1:] or srs[-1:] or [f for f in found if f.kind == KIND_GSPS][-1:]
    findings, states, sources = [], [], []
    for source in boxes_from:
        items = source.findings if source.kind != KIND_GSPS else _gsps_boxes(source)
        for number, item in enumerate(items, start=1):
            frame = frame_of(item.sop_instance_uid, item.frame_number)
            if frame is None:
                continue  # drawn on an image of another series or one not here
            fid = item.tracking_uid or f"{source.sop_instance_uid}/{number}"
            finding = Finding(fid, item.label or "finding", item.score if item.score is not None else 0.0, frame,
                              item.box_px, ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)), (0.0, 0.0, 0.0), (frame, frame),
                              item.sop_instance_uid)
            findings.append(finding)
            state = STATES.get(item.state, State.PENDING)
            states.append(FindingState(fid, finding.label, BoxGeometry.of(finding), state, item.score,
                                       by=source.verified_by, number=number, box_edited=item.box_edited,
                                       relabelled=item.relabelled))
        sources.append(_describe(source))
    heat = np.zeros((len(display_set.frames), display_set.first.pixel.rows, display_set.first.pixel.columns), np.uint8)
    maps = [f for f in found if f.kind == KIND_PMAP and f.heatmap is not None]
    placed = 0
    for pmap in maps[-1:]:
        for values, sop_uid in zip(pmap.heatmap.values, pmap.heatmap.sop_instance_uids):
            frame = firsts.get(sop_uid)
            if frame is not None and values.shape == heat.shape[1:]:
                heat[frame] = np.clip(np.nan_to_num(values) * 255.0 + 0.5, 0, 255).astype(np.uint8)
                placed += 1
        if placed:
            sources.append(f"heatmap from the {_describe(pmap)}")
    if not findings and not placed:
        return None
    name = "stored " + ("review SR" if boxes_from and boxes_from[0].kind == KIND_REVIEW_SR else
                        "SR" if boxes_from and boxes_from[0].kind != KIND_GSPS else
                        "presentation state" if boxes_from else "parametric map")
    series = display_set.series
    result = InferenceResult(ModelRef(name, "", ""), "stored result", series.study.study_instance_uid,
                             series.series_instance_uid, findings, heat, 0.0, "")
    return ShownResults(result, states, "; ".join(sources), placed > 0)


def _written(found: ForeignFindings) -> str:
    """When the object says it was made (verification time for a review SR), digits only, for ordering."""
    return "".join(ch for ch in (found.verified_at or found.content_datetime) if ch.isdigit())[:14].ljust(14, "0")


def _gsps_boxes(gsps: ForeignFindings):
    """A GSPS's closed polylines as boxes (their bounding box), labelled with the text nearest to each."""
    from workstation.core.results import ForeignFinding

    texts = [g for g in gsps.graphics if g.text]
    boxes = []
    for graphic in gsps.graphics:
        points = graphic.points_px
        if len(points) < 3:
            continue
        cols, rows = [p[0] for p in points], [p[1] for p in points]
        box = (min(cols), min(rows), max(cols), max(rows))
        near = [t for t in texts if t.sop_instance_uid == graphic.sop_instance_uid and t.anchor_px is not None]
        label = min(near, key=lambda t: abs(t.anchor_px[0] - box[0]) + abs(t.anchor_px[1] - box[1])).text if near else ""
        boxes.append(ForeignFinding(graphic.tracking_uid, graphic.tracking_id, label or "graphic",
                                    graphic.sop_instance_uid, box, graphic.frame_number))
    return boxes


def _describe(found: ForeignFindings) -> str:
    """Short: 'review SR, verified by carol 2026-12-04 10:06' / 'SR: nodule-detector 1.1.0' / 'parametric map'."""
    if found.kind == KIND_PMAP:
        return "parametric map"
    if found.kind == KIND_REVIEW_SR:
        when = _when(found.verified_at)
        return f"review SR, verified by {found.verified_by or 'unknown'}" + (f" {when}" if when else "")
    kind = "presentation state" if found.kind == KIND_GSPS else "SR"
    return f"{kind}: {found.source}"


def _when(dicom_datetime: str) -> str:
    """'20261204100600' -> '2026-12-04 10:06' (as written; no time zone is assumed)."""
    digits = "".join(ch for ch in dicom_datetime if ch.isdigit())
    if len(digits) < 12:
        return dicom_datetime[:16]
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]} {digits[8:10]}:{digits[10:12]}"
