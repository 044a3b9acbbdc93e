"""AI findings and the record of an inference run (plain values, shared by engine, UI, store)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    sha256: str

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class Finding:
    """One detection: where (frame, pixel box, patient mm) and how sure the model is."""

    finding_id: str
    label: str
    score: float
    frame_index: int  # display-order frame where the finding is strongest
    box_px: tuple[float, float, float, float]  # (column0, row0, column1, row1) on that frame, pixel edges
    box_mm: tuple[tuple[float, float, float], tuple[float, float, float]]  # patient mm of the box's two corners
    center_mm: tuple[float, float, float]
    frames: tuple[int, int]  # first and last frame the finding spans
    sop_instance_uid: str = ""


@dataclass(frozen=True)
class Acquisition:
    """How the series was made (DICOM Manufacturer, ManufacturerModelName, ConvolutionKernel, SliceThickness)."""

    manufacturer: str = ""
    manufacturer_model: str = ""
    convolution_kernel: str = ""
    slice_thickness_mm: float | None = None

    def to_dict(self) -> dict:
        return {"manufacturer": self.manufacturer, "manufacturer_model_name": self.manufacturer_model,
                "convolution_kernel": self.convolution_kernel, "slice_thickness_mm": self.slice_thickness_mm}


@dataclass
class InferenceResult:
    model: ModelRef
    device: str
    study_instance_uid: str
    series_instance_uid: str
    findings: list[Finding]
    heatmap: np.ndarray  # (frames, rows, columns) uint8: probability x 255
    seconds: float
    started_utc: str
    # what post-market monitoring needs (no PHI): the series' scanner and reconstruction, the threshold in force
    acquisition: Acquisition | None = None
    threshold: float | None = None  # on the score scale
    calibrated: bool = False  # scores are calibrated probabilities (the manifest has a calibration)

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: -f.score)
