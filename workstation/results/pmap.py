"""The Parametric Map: the model's heatmap on the source series' grid, for viewers that fuse it over the images.

Stored as the values the store keeps (probability x 255, in 16 bits: the IOD
allows no 8-bit maps) with a real-world value map (slope 1/255) giving the
probability, so nothing is resampled or re-quantised and a reader gets back
exactly the stored heatmap.

Only the frames where the heatmap is non-zero are written (a heatmap is mostly
zero: 20 findings on a 500-slice series touch ~100 slices), each naming its
source image (Derivation Image Sequence) and carrying that image's plane
position, so a reader places it by source image or position, never by frame
order; a source image without a frame has probability 0 everywhere. Pixel
Measures keep the source series' Spacing Between Slices, as highdicom does for a
segmentation whose empty frames it omits. An all-zero heatmap still gets a map:
one zero frame on the first source image (the model looked and saw nothing).

`build_results` writes it in JPEG-LS lossless by default (`compress_pmap`): a
mostly-zero frame shrinks to a few hundred bytes (100 frames of 512x512: 0.12 MB
instead of 52 MB to queue, encrypt and send) and CharLS costs no more than
copying the 16-bit frames. A PACS that takes Parametric Maps only uncompressed
gets the map decompressed (same values, same UID) by the C-STORE
(workstation/net/store_scu.py); `compress_pmap=False` writes it uncompressed.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import highdicom as hd
import numpy as np
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless

from workstation.results import codes
from workstation.results.context import (
    MANUFACTURER, MODEL_NAME, SERIES_NUMBERS, SOFTWARE_VERSION, RunContext, copy_source_details, dicom_date_time,
    model_text,
    series_uid_of,
)
from workstation.results.tracking import series_uid

LUT_LABEL = "PROBABILITY"
SCALE = 255


def probability_mapping(label: str) -> hd.pm.RealWorldValueMapping:
    return hd.pm.RealWorldValueMapping(
        lut_label=LUT_LABEL, lut_explanation=f"{label} probability (AI heatmap)"[:64], unit=codes.UNITLESS,
        value_range=(0, SCALE), slope=1.0 / SCALE, intercept=0.0)


def heatmap_frames(heatmap: np.ndarray) -> np.ndarray:
    """The display frames the map holds: those with a non-zero value, or the first one when all are zero."""
    flat = heatmap.reshape(len(heatmap), -1)
    frames = np.flatnonzero(flat.max(axis=1)) if flat.size else np.zeros(0, np.intp)
    return frames if len(frames) else np.zeros(1, np.intp)


def heatmap_digest(heatmap: np.ndarray) -> str:
    """sha256 of the stored heatmap bytes (the content key's; hashlib releases the GIL on big buffers)."""
    return hashlib.sha256(np.ascontiguousarray(heatmap, dtype=np.uint8)).hexdigest()


def build_pmap(run: RunContext, compressed: bool = False) -> tuple[hd.pm.ParametricMap, dict]:
    stored = np.ascontiguousarray(run.heatmap, dtype=np.uint8)
    with ThreadPoolExecutor(1) as pool:  # hash the whole heatmap on the other core while highdicom works
        digest = pool.submit(heatmap_digest, stored)
        pmap = _parametric_map(run, stored, compressed)
        content = {"shape": list(stored.shape), "heatmap_sha256": digest.result(), "label": _label(run),
                   "sources": [str(ds.SOPInstanceUID) for ds in run.sources]}
    return pmap, content


def _label(run: RunContext) -> str:
    return run.findings[0].label if run.findings else "finding"


def _parametric_map(run: RunContext, stored: np.ndarray, compressed: bool) -> hd.pm.ParametricMap:
    frames = heatmap_frames(stored)
    sources = [run.sources[int(k)] for k in frames]
    heat = stored[frames].astype(np.uint16)  # the IOD allows 16 bits, not 8
    label = _label(run)
    date, time = dicom_date_time(run.started_utc)
    pmap = hd.pm.ParametricMap(
        source_images=sources, pixel_array=heat,
        series_instance_uid=series_uid(series_uid_of(run), run.model.name, run.model.version, "pmap"),
        series_number=SERIES_NUMBERS["pmap"], sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name=MODEL_NAME, software_versions=SOFTWARE_VERSION,
        device_serial_number=run.workstation_id[:64], contains_recognizable_visual_features=False,
        real_world_value_mappings=[probability_mapping(label)],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=SCALE / 2, window_width=SCALE)],
        content_label="HEATMAP", content_description=f"AI {model_text(run)} heatmap"[:64],
        series_description=f"AI {model_text(run)} heatmap"[:64],
        content_date=date, content_time=time, series_date=date, series_time=time,
        pixel_measures=_pixel_measures(run, len(frames)),
        transfer_syntax_uid=JPEGLSLossless if compressed else ExplicitVRLittleEndian)
    copy_source_details(pmap, run.sources[0], image_series=True)
    return pmap


def _pixel_measures(run: RunContext, kept: int) -> hd.PixelMeasuresSequence | None:
    """The source images' pixel spacing and slice thickness, with the spacing between slices of the whole source
    series (which highdicom would otherwise work out from the kept frames alone); None (highdicom's own) when every
    frame is kept or the images lack the geometry."""
    first = run.sources[0]
    if kept == len(run.sources) or not all(hasattr(first, k) for k in ("PixelSpacing", "SliceThickness",
                                                                        "ImagePositionPatient",
                                                                        "ImageOrientationPatient")):
        return None
    spacing = first.get("SpacingBetweenSlices")
    if spacing is None and len(run.sources) > 1:
        try:
            spacing, _ = hd.spatial.get_volume_positions(
                image_positions=[[float(v) for v in ds.ImagePositionPatient] for ds in run.sources],
                image_orientation=[float(v) for v in first.ImageOrientationPatient])
        except (AttributeError, ValueError):
            spacing = None
    return hd.PixelMeasuresSequence(pixel_spacing=[float(v) for v in first.PixelSpacing],
                                    slice_thickness=float(first.SliceThickness),
                                    spacing_between_slices=None if spacing is None else float(spacing))
