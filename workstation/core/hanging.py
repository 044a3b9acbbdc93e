"""Hanging protocols (light): per modality and body part, the layout, and per viewport a series and a window.

In the site file, e.g. a chest CT with the lung window left and the mediastinum right:

    [[hanging]]
    modality = "CT"
    body_part = "CHEST"          # optional: any body part when absent
    layout = "1x2"
    viewports = [{ window = "lung" }, { window = "mediastinum" }]
    # a viewport may name a series by text in its description: { series = "lung", window = "lung" }
    # and show the patient's previous study: { study = "prior", window = "lung" } (scrolled with the first viewport)

The first protocol that matches the opened series applies when a study is first shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workstation.core.study import DisplaySet
from workstation.core.windowing import CT_PRESETS, WindowLevel

LAYOUT_NAMES = ("1x1", "1x2", "2x2")
VIEWPORTS = {"1x1": 1, "1x2": 2, "2x2": 4}
WINDOW_NAMES = {p.name.lower(): p for p in CT_PRESETS}


@dataclass(frozen=True)
class HangingViewport:
    series: str = ""  # text in the series description, case-insensitive; "" = the series opened
    window: str = ""  # a CT preset name (lung, mediastinum, abdomen, bone, brain) or "" (the series' own)
    study: str = "current"  # or "prior": the patient's previous study (its matching series unless `series` names one)

    @property
    def window_level(self) -> WindowLevel | None:
        return WINDOW_NAMES.get(self.window.lower()) if self.window else None


@dataclass(frozen=True)
class HangingProtocol:
    modality: str
    layout: str
    body_part: str = ""
    viewports: tuple[HangingViewport, ...] = ()

    def matches(self, display_set: DisplaySet) -> bool:
        series = display_set.series
        return (series.modality.upper() == self.modality.upper()
                and (not self.body_part or series.body_part.strip().upper() == self.body_part.upper()))

    def series_for(self, viewport: HangingViewport, candidates: list[DisplaySet], opened: DisplaySet) -> DisplaySet:
        """The series of the study the viewport names, else the one opened."""
        if viewport.series:
            text = viewport.series.lower()
            for candidate in candidates:
                if text in candidate.series.description.lower():
                    return candidate
        return opened


def protocol_for(protocols: tuple[HangingProtocol, ...], display_set: DisplaySet) -> HangingProtocol | None:
    return next((p for p in protocols if p.matches(display_set)), None)


def parse_hanging(value: Any, error) -> tuple[HangingProtocol, ...]:
    """[[hanging]] tables -> protocols; `error(key, reason)` raises the site's ConfigError."""
    if not isinstance(value, list):
        error("hanging", "must be an array of tables ([[hanging]])")
    protocols = []
    for i, table in enumerate(value):
        key = f"hanging[{i}]"
        if not isinstance(table, dict):
            error(key, "must be a table")
        unknown = set(table) - {"modality", "body_part", "layout", "viewports"}
        if unknown:
            error(f"{key}.{sorted(unknown)[0]}", "unknown setting (expected one of: body_part, layout, modality, viewports)")
        modality = table.get("modality")
        if not isinstance(modality, str) or not modality.strip():
            error(f"{key}.modality", "must be a non-empty string (e.g. \"CT\")")
        layout = table.get("layout", "1x1")
        if layout not in LAYOUT_NAMES:
            error(f"{key}.layout", f"must be one of {', '.join(LAYOUT_NAMES)}")
        body_part = table.get("body_part", "")
        if not isinstance(body_part, str):
            error(f"{key}.body_part", "must be a string")
        viewports = table.get("viewports", [])
        if not isinstance(viewports, list) or len(viewports) > VIEWPORTS[layout]:
            error(f"{key}.viewports", f"must be a list of at most {VIEWPORTS[layout]} tables for layout {layout}")
        parsed = []
        for j, viewport in enumerate(viewports):
            vkey = f"{key}.viewports[{j}]"
            if not isinstance(viewport, dict) or set(viewport) - {"series", "window", "study"}:
                error(vkey, "must be a table with 'series', 'window' and/or 'study'")
            series, window, study = viewport.get("series", ""), viewport.get("window", ""), viewport.get("study", "current")
            if study not in ("current", "prior") or study == "prior" and j == 0:
                error(f"{vkey}.study", "must be \"current\" or \"prior\" (the first viewport shows the current study)")
            if not isinstance(series, str):
                error(f"{vkey}.series", "must be a string")
            if not isinstance(window, str) or window and window.lower() not in WINDOW_NAMES:
                error(f"{vkey}.window", f"must be one of {', '.join(WINDOW_NAMES)}")
            parsed.append(HangingViewport(series.strip(), window.strip(), study))
        protocols.append(HangingProtocol(modality.strip(), layout, body_part.strip(), tuple(parsed)))
    return tuple(protocols)
