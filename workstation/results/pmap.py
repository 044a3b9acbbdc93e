"""The Parametric Map: the model's heatmap on the source series' grid, for viewers that fuse it over the images.

Stored as the values the store keeps (probability x 255, in 16 bits: the IOD
allows no 8-bit maps) with a real-world value map (slope 1/255) giving the
probability, so nothing is resampled or re-quantised and a reader gets back
exactly the stored heatmap. One frame per source image, each naming it.
Uncompressed by default, because every PACS takes that; `compressed=True` writes
JPEG-LS lossless instead (a heatmap is mostly zeros: a 500-slice map shrinks from
260 MB to kilobytes, and CharLS encodes it faster than the plain copy) for peers
known to accept it.
"""

from __future__ import annotations

import hashlib

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


def build_pmap(run: RunContext, compressed: bool = False) -> tuple[hd.pm.ParametricMap, dict]:
    stored = np.ascontiguousarray(run.heatmap, dtype=np.uint8)
    heat = stored.astype(np.uint16)  # the IOD allows 16 bits, not 8
    label = run.findings[0].label if run.findings else "finding"
    date, time = dicom_date_time(run.started_utc)
    pmap = hd.pm.ParametricMap(
        source_images=run.sources, pixel_array=heat,
        series_instance_uid=series_uid(series_uid_of(run), run.model.name, run.model.version, "pmap"),
        series_number=SERIES_NUMBERS["pmap"], sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name=MODEL_NAME, software_versions=SOFTWARE_VERSION,
        device_serial_number=run.workstation_id[:64], contains_recognizable_visual_features=False,
        real_world_value_mappings=[probability_mapping(label)],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=SCALE / 2, window_width=SCALE)],
        content_label="HEATMAP", content_description=f"AI {model_text(run)} heatmap"[:64],
        series_description=f"AI {model_text(run)} heatmap"[:64],
        content_date=date, content_time=time, series_date=date, series_time=time,
        transfer_syntax_uid=JPEGLSLossless if compressed else ExplicitVRLittleEndian)
    copy_source_details(pmap, run.sources[0], image_series=True)
    content = {"shape": list(heat.shape), "heatmap_sha256": hashlib.sha256(stored).hexdigest(),
               "label": label, "sources": [str(ds.SOPInstanceUID) for ds in run.sources]}
    return pmap, content
