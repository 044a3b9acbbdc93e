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

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: -f.score)
