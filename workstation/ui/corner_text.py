"""Text over the image: the four corners, a centred message and the orientation markers.

Every label is painted as a light glyph with a dark outline, so it stays
readable on bone, contrast or a bright radiograph as well as on air.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QWidget

from workstation.core.names import format_person_name
from workstation.core.orientation import EdgeLabels
from workstation.core.study import DisplaySet, InstanceHeader, PatientRef
from workstation.core.volume import slice_normal
from workstation.core.windowing import WindowLevel

TEXT = QColor(240, 240, 200)
OUTLINE = QColor(0, 0, 0, 235)
OUTLINE_WIDTH = 2.5  # pen width: about 1.25 px of dark around each glyph
PAD = 2


class OutlinedText(QWidget):
    """A multi-line label drawn as text paths: dark stroke first, light fill on top."""

    def __init__(self, parent: QWidget, alignment: Qt.AlignmentFlag, point_size: float = 10.0, bold: bool = False) -> None:
        super().__init__(parent)
        self._text = ""
        self._pixmap: QPixmap | None = None
        self._pixmap_key: tuple | None = None
        self._alignment = alignment
        font = QFont("DejaVu Sans")
        font.setPointSizeF(point_size)
        font.setBold(bold)
        self.setFont(font)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:  # noqa: N802 - QLabel's name, kept for callers
        if text != self._text:
            self._text = text
            self.updateGeometry()
            self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt naming
        metrics = QFontMetricsF(self.font())
        lines = self._text.split("\n") if self._text else []
        width = max((metrics.horizontalAdvance(line) for line in lines), default=0.0)
        return QSize(int(np.ceil(width)) + 2 * PAD + 2, int(np.ceil(metrics.lineSpacing() * len(lines))) + 2 * PAD)

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt naming
        """The outlined text is drawn once into a pixmap: the image under it repaints every frame, the text rarely changes."""
        if not self._text:
            return
        ratio = self.devicePixelRatioF()
        key = (self._text, self.width(), self.height(), self.font().key(), ratio)
        if self._pixmap_key != key:
            pixmap = QPixmap(max(1, round(self.width() * ratio)), max(1, round(self.height() * ratio)))
            pixmap.setDevicePixelRatio(ratio)
            pixmap.fill(Qt.GlobalColor.transparent)
            self._paint_text(pixmap)
            self._pixmap, self._pixmap_key = pixmap, key
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._pixmap)
        painter.end()

    def _paint_text(self, device) -> None:
        metrics = QFontMetricsF(self.font())
        path = QPainterPath()
        for i, line in enumerate(self._text.split("\n")):
            advance = metrics.horizontalAdvance(line)
            if self._alignment & Qt.AlignmentFlag.AlignRight:
                x = self.width() - PAD - 1 - advance
            elif self._alignment & Qt.AlignmentFlag.AlignHCenter:
                x = (self.width() - advance) / 2
            else:
                x = PAD + 1
            path.addText(QPointF(x, PAD + metrics.ascent() + i * metrics.lineSpacing()), self.font(), line)
        painter = QPainter(device)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.strokePath(path, QPen(OUTLINE, OUTLINE_WIDTH, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                                      Qt.PenJoinStyle.RoundJoin))
        painter.fillPath(path, TEXT)
        painter.end()


class ImageAnnotations:
    """The labels on top of the view, kept at their corners and edge middles as it resizes."""

    MARGIN = 6

    def __init__(self, view: QWidget) -> None:
        self.view = view
        left, right = Qt.AlignmentFlag.AlignLeft, Qt.AlignmentFlag.AlignRight
        top, bottom, centre = Qt.AlignmentFlag.AlignTop, Qt.AlignmentFlag.AlignBottom, Qt.AlignmentFlag.AlignCenter
        self.corners = {
            "tl": OutlinedText(view, left | top), "tr": OutlinedText(view, right | top),
            "bl": OutlinedText(view, left | bottom), "br": OutlinedText(view, right | bottom),
        }
        self.message = OutlinedText(view, centre, 11.0)
        self.markers = {edge: OutlinedText(view, centre, 12.0, bold=True) for edge in ("left", "right", "top", "bottom")}

    def set_markers(self, labels: EdgeLabels | None) -> None:
        for edge, label in self.markers.items():
            label.setText(getattr(labels, edge) if labels is not None else "")

    def place(self) -> None:
        w, h, margin = self.view.width(), self.view.height(), self.MARGIN
        for key, label in self.corners.items():
            label.adjustSize()
            x = margin if key[1] == "l" else w - label.width() - margin
            y = margin if key[0] == "t" else h - label.height() - margin
            label.move(max(0, x), max(0, y))
        corners = [c.geometry() for c in self.corners.values() if c.text()]
        for edge, label in self.markers.items():
            label.adjustSize()
            x = {"left": margin, "right": w - label.width() - margin}.get(edge, (w - label.width()) // 2)
            y = {"top": margin, "bottom": h - label.height() - margin}.get(edge, (h - label.height()) // 2)
            label.move(max(0, x), max(0, y))
            for corner in corners:  # a long corner line would hide the letter: move it inwards, clear of the text
                if label.geometry().intersects(corner):
                    shift = {"top": (0, corner.bottom() + 1 - label.y()), "bottom": (0, corner.top() - 1 - label.geometry().bottom()),
                             "left": (corner.right() + 1 - label.x(), 0), "right": (corner.left() - 1 - label.geometry().right(), 0)}
                    label.move(label.pos() + QPoint(*shift[edge]))
        self.message.adjustSize()
        self.message.move((w - self.message.width()) // 2, (h - self.message.height()) // 2)


# ----- what the corners say (no Qt)

def patient_text(patient: PatientRef) -> str:
    return "\n".join(filter(None, [
        format_person_name(patient.name) or "(no name)",
        f"ID {patient.patient_id}" if patient.patient_id else "",
        " ".join(filter(None, [date_text(patient.birth_date), patient.sex])),
    ]))


def study_text(display_set: DisplaySet) -> str:
    series = display_set.series
    study = series.study
    return "\n".join(filter(None, [
        study.description, date_text(study.date),
        f"Se {series.number if series.number is not None else '-'}: {series.description}".rstrip(": "),
        series.modality + (f"  part {display_set.label}" if display_set.label else ""),
    ]))


def window_text(window: WindowLevel | None, colour: bool) -> str:
    if window is None or colour:
        return ""
    return f"W {window.width:.0f}  L {window.center:.0f}" + (f"  {window.name}" if window.name else "")


def spacing_text(first: InstanceHeader) -> str:
    if first.pixel_spacing is None:
        return "pixel spacing unknown"
    row_mm, col_mm = first.pixel_spacing
    where = " (at detector)" if first.spacing_source == "ImagerPixelSpacing" else ""
    return f"{col_mm:.3g} x {row_mm:.3g} mm/px{where}"


def position_text(display_set: DisplaySet, k: int) -> str:
    geometry = display_set.frames[k].geometry
    if geometry.position is None:
        return ""
    distance = float(np.dot(slice_normal(geometry.orientation), geometry.position)) if geometry.orientation else None
    thickness = display_set.frames[k].instance.slice_thickness
    text = f"Pos {distance:.2f} mm" if distance is not None else ""
    return text + (f"   Thk {thickness:g} mm" if thickness else "")


def date_text(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value
