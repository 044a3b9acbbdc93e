"""Window/level values and the standard presets radiologists expect."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowLevel:
    """A VOI window: `center` and `width` in modality units (HU for CT)."""

    center: float
    width: float
    name: str = ""
    function: str = "LINEAR"  # VOI LUT Function: LINEAR, LINEAR_EXACT or SIGMOID

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ValueError(f"window width must be positive, got {self.width}")

    def dragged(self, d_center: float, d_width: float, minimum_width: float = 1.0) -> WindowLevel:
        """The window after a mouse drag; width never collapses below `minimum_width`."""
        return WindowLevel(self.center + d_center, max(minimum_width, self.width + d_width), "", self.function)

    @property
    def bounds(self) -> tuple[float, float]:
        return self.center - self.width / 2, self.center + self.width / 2


# Keys 1-5 in the viewer, in this order.
CT_PRESETS: tuple[WindowLevel, ...] = (
    WindowLevel(-600, 1500, "Lung"),
    WindowLevel(40, 400, "Mediastinum"),
    WindowLevel(50, 350, "Abdomen"),
    WindowLevel(500, 2000, "Bone"),
    WindowLevel(40, 80, "Brain"),
)


def dicom_windows(
    centers: tuple[float, ...], widths: tuple[float, ...], explanations: tuple[str, ...], function: str = "LINEAR"
) -> list[WindowLevel]:
    """The windows an instance itself recommends (WindowCenter/Width pairs), skipping invalid ones."""
    windows = []
    for i, (center, width) in enumerate(zip(centers, widths)):
        if width > 0:
            name = explanations[i] if i < len(explanations) and explanations[i] else f"DICOM {i + 1}"
            windows.append(WindowLevel(center, width, name, function if function in ("LINEAR", "LINEAR_EXACT", "SIGMOID") else "LINEAR"))
    return windows
