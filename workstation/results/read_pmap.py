"""Read a Parametric Map as real-world values per frame, each frame tied to its source image and position.

Frames are aligned by the source image each one was derived from (or, failing
that, by plane position), never by frame order: highdicom, like other writers,
sorts frames by position, which need not be the viewer's order.
"""

from __future__ import annotations

import numpy as np
import pydicom

from workstation.core.results import KIND_PMAP, ForeignFindings, ForeignHeatmap


def read_pmap(ds: pydicom.Dataset) -> ForeignFindings:
    stored = np.asarray(ds.pixel_array)
    if stored.ndim == 2:
        stored = stored[np.newaxis]
    shared = ds.get("SharedFunctionalGroupsSequence", [pydicom.Dataset()])[0]
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence", [])) or [pydicom.Dataset()] * len(stored)
    if len(per_frame) != len(stored):
        raise ValueError(f"{len(per_frame)} per-frame groups for {len(stored)} frames")
    mappings = [_item(group, shared, "RealWorldValueMappingSequence") for group in per_frame]
    if any(m is None for m in mappings):
        raise ValueError("no real-world value mapping: the values have no stated meaning")
    values = np.empty(stored.shape, np.float32)
    if all(m is mappings[0] for m in mappings):  # one mapping for every frame (the usual case): one pass
        values[:] = _apply(stored, mappings[0])
    else:
        for index, mapping in enumerate(mappings):
            values[index] = _apply(stored[index], mapping)
    sources = tuple(_source(group) for group in per_frame)
    positions = tuple(_position(group, shared) for group in per_frame)
    first = mappings[0]
    units = first.get("MeasurementUnitsCodeSequence", [])
    heatmap = ForeignHeatmap(values, sources, positions,
                             label=str(first.get("LUTExplanation", "") or first.get("LUTLabel", "")),
                             unit=str(units[0].CodeMeaning) if units else "")
    notes = () if all(sources) else ("some frames name no source image: align them by position",)
    return ForeignFindings(
        kind=KIND_PMAP, source=str(ds.get("ContentDescription", "") or ds.get("SeriesDescription", "") or "Parametric Map"),
        sop_instance_uid=str(ds.SOPInstanceUID), study_instance_uid=str(ds.get("StudyInstanceUID", "")),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        referenced_series_uids=tuple(str(s.SeriesInstanceUID) for s in ds.get("ReferencedSeriesSequence", [])),
        content_datetime=f"{ds.get('ContentDate', '')}{ds.get('ContentTime', '')}", heatmap=heatmap, notes=notes)


def _item(group: pydicom.Dataset, shared: pydicom.Dataset, keyword: str) -> pydicom.Dataset | None:
    for place in (group, shared):
        items = place.get(keyword)
        if items:
            return items[0]
    return None


def _apply(stored: np.ndarray, mapping: pydicom.Dataset) -> np.ndarray:
    if "RealWorldValueLUTData" in mapping:
        table = np.asarray(mapping.RealWorldValueLUTData, dtype=np.float64)
        first = int(mapping.get("RealWorldValueFirstValueMapped", 0))
        return table[np.clip(stored.astype(np.int64) - first, 0, len(table) - 1)]
    slope = float(mapping.get("RealWorldValueSlope", 1.0))
    intercept = float(mapping.get("RealWorldValueIntercept", 0.0))
    return stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def _source(group: pydicom.Dataset) -> str:
    for derivation in group.get("DerivationImageSequence", []):
        for source in derivation.get("SourceImageSequence", []):
            return str(source.ReferencedSOPInstanceUID)
    return ""


def _position(group: pydicom.Dataset, shared: pydicom.Dataset) -> tuple[float, float, float] | None:
    item = _item(group, shared, "PlanePositionSequence")
    if item is None or "ImagePositionPatient" not in item:
        return None
    return tuple(float(v) for v in item.ImagePositionPatient)
