"""Study browser: patient > study > series, with a thumbnail, description, modality and image count."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from workstation.core.names import format_person_name
from workstation.core.priors import patient_groups
from workstation.core.study import Catalog, DisplaySet
from workstation.ui.images import to_pixmap

THUMB = 72
KEY_ROLE = Qt.ItemDataRole.UserRole
TEXT_ROLE = Qt.ItemDataRole.UserRole + 1
SERIES_MIME = "application/x-workstation-display-set"  # a series dragged onto a viewport: its DisplaySet key


class StudyBrowser(QTreeWidget):
    displaySetActivated = Signal(str)  # DisplaySet.key

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderHidden(True)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setUniformRowHeights(False)
        self.setIndentation(14)
        self.setMinimumWidth(280)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._marks: dict[str, str] = {}  # DisplaySet.key -> "✔ reviewed by ... at ..." (kept across rebuilds)
        self.setDragEnabled(True)  # a series can be dropped onto any viewport of the layout
        self.setDragDropMode(QTreeWidget.DragDropMode.DragOnly)
        self.itemActivated.connect(self._activated)
        self.itemClicked.connect(self._activated)

    def show_catalog(self, catalog: Catalog) -> None:
        current = self.current_key()
        self.clear()
        self._items.clear()
        bold = QFont(self.font())
        bold.setBold(True)
        for group in patient_groups(catalog):  # one patient ID + issuer: the priors under the current study
            patient = group.patient
            count = f"   ({len(group.studies)} studies)" if len(group.studies) > 1 else ""
            p_item = QTreeWidgetItem(self, [f"{format_person_name(patient.name) or '(no name)'}   ID {patient.patient_id or '-'}{count}"])
            p_item.setFont(0, bold)
            for n, study in enumerate(group.studies):
                prior = "   (prior)" if n else ""
                s_item = QTreeWidgetItem(p_item, [f"{_date(study.date)}  {study.description or '(no study description)'}{prior}"])
                for display_set in catalog.display_sets_of(study):
                    item = QTreeWidgetItem(s_item, [series_text(display_set)])
                    item.setData(0, KEY_ROLE, display_set.key)
                    item.setData(0, TEXT_ROLE, series_text(display_set))
                    item.setSizeHint(0, QSize(THUMB, THUMB + 6))
                    if display_set.warnings:
                        item.setToolTip(0, "\n".join(display_set.warnings))
                    self._items[display_set.key] = item
                    self._show_mark(display_set.key)
        self.expandAll()
        if current in self._items:
            self.setCurrentItem(self._items[current])

    def mimeData(self, items) -> QMimeData:  # noqa: N802 - Qt naming
        """A dragged series carries its key; patients and studies carry nothing."""
        data = QMimeData()
        keys = [item.data(0, KEY_ROLE) for item in items if item.data(0, KEY_ROLE)]
        if keys:
            data.setData(SERIES_MIME, keys[0].encode("utf-8"))
        return data

    def set_thumbnail(self, key: str, image) -> None:
        item = self._items.get(key)
        if item is not None and image is not None:
            item.setIcon(0, QIcon(to_pixmap(image)))

    def set_review_mark(self, key: str, text: str) -> None:
        """'✔ reviewed by X at T' under the series (empty: not signed off)."""
        self._marks[key] = text
        self._show_mark(key)

    def review_mark(self, key: str) -> str:
        return self._marks.get(key, "")

    def _show_mark(self, key: str) -> None:
        item = self._items.get(key)
        if item is not None:
            mark = self._marks.get(key, "")
            item.setText(0, item.data(0, TEXT_ROLE) + (f"\n{mark}" if mark else ""))
            item.setForeground(0, QBrush(QColor(27, 110, 32)) if mark else QBrush())
            item.setSizeHint(0, QSize(THUMB, THUMB + (30 if mark else 6)))

    def select(self, key: str) -> None:
        if key in self._items:
            self.setCurrentItem(self._items[key])

    def current_key(self) -> str | None:
        item = self.currentItem()
        return item.data(0, KEY_ROLE) if item is not None else None

    def _activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        key = item.data(0, KEY_ROLE)
        if key:
            self.displaySetActivated.emit(key)


def series_text(display_set: DisplaySet) -> str:
    series = display_set.series
    number = f"{series.number}  " if series.number is not None else ""
    part = f"  (part {display_set.label})" if display_set.label else ""
    count = len(display_set.instances)
    frames = len(display_set.frames)
    images = f"{count} image{'s' if count != 1 else ''}" + (f", {frames} frames" if frames != count else "")
    warn = "  ⚠" if display_set.warnings else ""
    return f"{number}{series.description or '(no description)'}{part}\n{series.modality} · {images}{warn}"


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else (value or "(no date)")
