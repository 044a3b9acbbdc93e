"""What a series must look like before a model may read it (manifest section ``input_requirements``).

A model that runs on a series it was never meant for still answers, and "0
findings" then looks like a clean scan. The requirements turn such a run into a
refusal with the reason. They are checked on header geometry only, so the AI
panel can name the reason before anything is decoded. No torch, no Qt here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

KEYS = {"min_slices", "min_field_of_view_mm", "slice_spacing_mm", "pixel_spacing_mm", "rationale"}


class RequirementsError(ValueError):
    """A malformed ``input_requirements`` section."""


@dataclass(frozen=True)
class SeriesGeometry:
    """What the headers say about a series' sampling; None where they do not say."""

    slices: int
    rows: int
    columns: int
    pixel_spacing_mm: tuple[float, float] | None  # (between rows, between columns)
    slice_spacing_mm: float | None  # between consecutive slices, when regular

    @property
    def field_of_view_mm(self) -> tuple[float, float] | None:
        """(height, width) of the image in mm."""
        if self.pixel_spacing_mm is None:
            return None
        return self.rows * self.pixel_spacing_mm[0], self.columns * self.pixel_spacing_mm[1]

    @classmethod
    def of(cls, display_set: Any) -> "SeriesGeometry":
        """From a core.study.DisplaySet (frames in display order, regular spacing if known)."""
        first = display_set.first
        spacing = first.pixel_spacing
        return cls(slices=len(display_set.frames), rows=int(first.pixel.rows), columns=int(first.pixel.columns),
                   pixel_spacing_mm=tuple(float(v) for v in spacing) if spacing else None,
                   slice_spacing_mm=float(display_set.slice_spacing) if display_set.slice_spacing else None)


@dataclass(frozen=True)
class InputRequirements:
    min_slices: int | None = None
    min_field_of_view_mm: float | None = None  # in-plane, the smaller of height and width
    slice_spacing_mm: tuple[float, float] | None = None  # [min, max], inclusive
    pixel_spacing_mm: tuple[float, float] | None = None  # [min, max] of the coarser in-plane spacing

    def check(self, geometry: SeriesGeometry) -> list[str]:
        """Every requirement the series misses, in words; empty when it meets them all."""
        problems = []
        if self.min_slices is not None and geometry.slices < self.min_slices:
            problems.append(f"needs at least {self.min_slices} slices, this series has {geometry.slices}")
        if self.slice_spacing_mm is not None and geometry.slices >= 2:
            lo, hi = self.slice_spacing_mm
            spacing = geometry.slice_spacing_mm
            if spacing is None:
                problems.append("needs a known, regular slice spacing (slice positions missing or all equal)")
            elif not lo - 1e-6 <= spacing <= hi + 1e-6:
                problems.append(f"needs slices {lo:g}-{hi:g} mm apart, this series has {spacing:.2f} mm")
        fov = geometry.field_of_view_mm
        needs_spacing = self.min_field_of_view_mm is not None or self.pixel_spacing_mm is not None
        if needs_spacing and fov is None:
            problems.append("needs the pixel spacing, which this series does not give")
        if self.min_field_of_view_mm is not None and fov is not None and min(fov) < self.min_field_of_view_mm - 1e-6:
            problems.append(f"needs an in-plane field of view of at least {self.min_field_of_view_mm:g} mm, "
                            f"this series covers {fov[1]:.0f} x {fov[0]:.0f} mm")
        if self.pixel_spacing_mm is not None and geometry.pixel_spacing_mm is not None:
            lo, hi = self.pixel_spacing_mm
            coarse = max(geometry.pixel_spacing_mm)
            if not lo - 1e-6 <= coarse <= hi + 1e-6:
                problems.append(f"needs pixels of {lo:g}-{hi:g} mm, this series has {coarse:.2f} mm")
        return problems


def parse_requirements(data: Any) -> InputRequirements | None:
    """The manifest's section; None (no checks) when the manifest has none, as older manifests do."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise RequirementsError("input_requirements: an object is required")
    unknown = set(data) - KEYS
    if unknown:
        raise RequirementsError(f"input_requirements: unknown keys {sorted(unknown)}")
    min_slices = data.get("min_slices")
    if min_slices is not None and (not isinstance(min_slices, int) or isinstance(min_slices, bool) or min_slices < 1):
        raise RequirementsError("input_requirements.min_slices: a positive integer is required")
    fov = data.get("min_field_of_view_mm")
    if fov is not None and not _positive(fov):
        raise RequirementsError("input_requirements.min_field_of_view_mm: a positive number is required")
    return InputRequirements(min_slices=min_slices, min_field_of_view_mm=None if fov is None else float(fov),
                             slice_spacing_mm=_range(data, "slice_spacing_mm"),
                             pixel_spacing_mm=_range(data, "pixel_spacing_mm"))


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _range(data: dict, key: str) -> tuple[float, float] | None:
    value = data.get(key)
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(_positive(v) for v in value) and value[0] <= value[1]):
        raise RequirementsError(f"input_requirements.{key}: [min, max] in mm, 0 < min <= max, is required")
    return float(value[0]), float(value[1])
