"""What the result objects are built from: a stored run (and its sign-off), as plain values.

The builders never touch the store or files: the service gathers the run, the
heatmap, the sign-off and the source headers, and everything here is a pure
function of those, so building twice gives the same content.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import numpy as np
import pydicom

from workstation import __version__
from workstation.core.findings import Finding, ModelRef
from workstation.core.review import derive_states
from workstation.results.tracking import tracking_id, tracking_uid

MANUFACTURER = "Radiology AI Workstation"
MODEL_NAME = "workstation"
SOFTWARE_VERSION = __version__
KINDS = ("ai-sr", "review-sr", "gsps", "pmap")
SERIES_NUMBERS = {"ai-sr": 9101, "review-sr": 9102, "gsps": 9103, "pmap": 9104}


@dataclass(frozen=True)
class RunContext:
    sources: list[pydicom.Dataset]  # the series' instances in display-frame order (headers are enough)
    model: ModelRef
    device: str
    started_utc: str  # ISO 8601
    run_id: str
    findings: list[Finding]
    heatmap: np.ndarray | None  # (frames, rows, columns) uint8 = probability x 255, same order as sources
    workstation_id: str

    @cached_property
    def source_index(self) -> dict[str, int]:
        """SOP Instance UID -> position in `sources` (the first, should a UID repeat), looked up once per run
        (every finding, box and frame names its image; scanning 500 headers each time adds up)."""
        index: dict[str, int] = {}
        for position, ds in enumerate(self.sources):
            index.setdefault(str(ds.SOPInstanceUID), position)
        return index


@dataclass(frozen=True)
class ReviewContext:
    """The sign-off feedback entry: who signed, when, and every finding's final state (`details["findings"]`)."""

    signed_by: str
    role: str
    signed_at_utc: str
    signoff_entry_id: str
    final_states: list[dict]


@dataclass(frozen=True)
class BuiltObject:
    kind: str  # "ai-sr" | "review-sr" | "gsps" | "pmap"
    dataset: pydicom.Dataset
    content_key: str  # sha256 over the content inputs: the same for the same run and state


@dataclass(frozen=True)
class Item:
    """One finding as an object shows it: the AI's, or the reader's final version."""

    finding_id: str
    number: int
    label: str
    score: float | None
    frame_index: int
    box_px: tuple[float, float, float, float]
    sop_instance_uid: str
    tracking_uid: str
    state: str = ""  # review only
    box_edited: bool = False
    relabelled: bool = False

    @property
    def tracking_id(self) -> str:
        return tracking_id(self.number)

    def content(self) -> dict:
        """What the objects say about the finding, for content keys (rounded as written)."""
        return {"id": self.finding_id, "number": self.number, "label": self.label,
                "score": None if self.score is None else round(float(self.score), 6), "frame": self.frame_index,
                "box": [round(float(v), 3) for v in self.box_px], "sop": self.sop_instance_uid,
                "state": self.state, "box_edited": self.box_edited, "relabelled": self.relabelled}


class ContextError(ValueError):
    """The run and its source images do not fit together (the message says how)."""


def check(run: RunContext) -> None:
    if not run.sources:
        raise ContextError("no source images")
    if any(int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 for ds in run.sources):
        raise ContextError("multi-frame source images are not supported yet")
    if len({str(ds.SeriesInstanceUID) for ds in run.sources}) != 1:
        raise ContextError("the source images belong to more than one series")
    uids = [str(ds.SOPInstanceUID) for ds in run.sources]
    if len(set(uids)) != len(uids):  # two different images under one UID: a reference could not say which
        raise ContextError("two source images share one SOP Instance UID; results cannot refer to them unambiguously")
    if run.heatmap is not None:
        shape = (len(run.sources), int(run.sources[0].Rows), int(run.sources[0].Columns))
        if run.heatmap.ndim != 3 or tuple(run.heatmap.shape) != shape:
            raise ContextError(f"heatmap shape {tuple(run.heatmap.shape)} does not match the series {shape}")


def series_uid_of(run: RunContext) -> str:
    return str(run.sources[0].SeriesInstanceUID)


def source_of(run: RunContext, frame_index: int, sop_instance_uid: str = "") -> pydicom.Dataset:
    """The source image a finding lies on: by SOP Instance UID when known, else by display frame."""
    if sop_instance_uid:
        position = run.source_index.get(str(sop_instance_uid))
        if position is not None:
            return run.sources[position]
        raise ContextError(f"image {sop_instance_uid} is not among the source images")
    if not 0 <= frame_index < len(run.sources):
        raise ContextError(f"frame {frame_index} is outside the series (0-{len(run.sources) - 1})")
    return run.sources[frame_index]


def ai_items(run: RunContext) -> list[Item]:
    """The model's findings with their fixed review numbers (strongest first, as the review numbers them)."""
    states = derive_states(run.findings, [])
    series, items = series_uid_of(run), []
    for finding in run.findings:
        source = source_of(run, finding.frame_index, finding.sop_instance_uid)
        items.append(Item(finding.finding_id, states[finding.finding_id].number, finding.label, float(finding.score),
                          finding.frame_index, tuple(float(v) for v in finding.box_px), str(source.SOPInstanceUID),
                          tracking_uid(series, run.model.name, finding.finding_id)))
    return sorted(items, key=lambda item: item.number)


def review_items(run: RunContext, review: ReviewContext) -> list[Item]:
    """Every finding of the sign-off (rejected and deleted ones too) with its final region and verdict."""
    series, items = series_uid_of(run), []
    for state in review.final_states:
        geometry = state["geometry"]
        source = source_of(run, int(geometry["frame_index"]), geometry.get("sop_instance_uid", ""))
        score = state.get("score")
        items.append(Item(state["finding_id"], int(state["number"]), state["label"],
                          None if score is None else float(score), int(geometry["frame_index"]),
                          tuple(float(v) for v in geometry["box_px"]), str(source.SOPInstanceUID),
                          tracking_uid(series, run.model.name, state["finding_id"]), state["state"],
                          bool(state.get("box_edited")), bool(state.get("relabelled"))))
    return sorted(items, key=lambda item: item.number)


def local_time(iso_utc: str) -> datetime:
    """A stored UTC time as this workstation's local wall-clock time (DICOM dates and times are local)."""
    moment = datetime.fromisoformat(iso_utc.replace("Z", "+00:00"))
    return moment.astimezone().replace(tzinfo=None) if moment.tzinfo else moment


def dicom_date_time(iso_utc: str) -> tuple[str, str]:
    moment = local_time(iso_utc)
    return moment.strftime("%Y%m%d"), moment.strftime("%H%M%S")


def model_text(run: RunContext) -> str:
    return f"{run.model.name} {run.model.version}"


def copy_source_details(target: pydicom.Dataset, source: pydicom.Dataset, image_series: bool) -> None:
    """What highdicom leaves out but the IODs want: de-identification method (when identity was removed),
    and for image-like series (GSPS, Parametric Map) body part and laterality (Type 2C: absent for an
    unpaired body part, empty when the body part is unknown)."""
    copied = False
    for keyword in ("DeidentificationMethod", "DeidentificationMethodCodeSequence"):
        if keyword in source:
            target[keyword] = copy.deepcopy(source[keyword])
            copied = True
    if str(target.get("PatientIdentityRemoved", "")).upper() == "YES" and not copied:
        target.DeidentificationMethod = "not stated in the source images"
    if image_series:
        if "BodyPartExamined" in source:
            target.BodyPartExamined = source.BodyPartExamined
        if "Laterality" in source:
            target.Laterality = source.Laterality
        elif "BodyPartExamined" not in source:
            target.Laterality = ""  # unknown whether the body part is paired
