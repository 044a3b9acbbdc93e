"""Query/Retrieve window: search a PACS node, browse studies and series, retrieve by C-MOVE or C-GET.

Every network call runs on the network executor; results come back as queued
signals, so the window never waits on a PACS. Retrieved instances are handed to
the study library in batches, so the study opens in the viewer while it arrives.
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workstation.core.names import format_person_name
from workstation.core.pacs import RetrieveResult, SeriesMatch, StoredInstance, StudyMatch, StudyQuery
from workstation.core.tasks import CancelToken
from workstation.services.executor import network
from workstation.services.loading import StudyLibrary
from workstation.services.pacs import PacsService

STUDY_ROLE = Qt.ItemDataRole.UserRole
MODALITIES = ["", "CT", "MR", "CR", "DX", "US", "MG", "NM", "PT", "XA", "RF", "OT"]
COLUMNS = ["Patient", "Patient ID", "Date", "Description", "Modalities", "Accession", "Series", "Images"]


class _Results(QObject):
    """Background results delivered to the GUI thread."""

    studiesFound = Signal(object)  # list[StudyMatch]
    seriesFound = Signal(str, object)  # study uid, list[SeriesMatch]
    failed = Signal(str)
    echoed = Signal(str)
    retrieveProgress = Signal(object, int)  # RetrieveProgress, stored
    retrieveDone = Signal(object)  # RetrieveResult

    def deliver(self, signal: Any, *args: Any) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the window was closed meanwhile
            pass


class QueryRetrieveWindow(QWidget):
    retrieveFinished = Signal(object)  # RetrieveResult (tests, status)
    searchFinished = Signal()

    def __init__(self, pacs: PacsService, library: StudyLibrary, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Query / Retrieve")
        self.pacs, self.library = pacs, library
        self.results = _Results(self)
        self._cancel: CancelToken | None = None
        self._arrived: list[str] = []
        self._arrived_lock = threading.Lock()
        self._retrieving: str | None = None
        self._flush = QTimer(self, interval=400)
        self._flush.timeout.connect(self._hand_over_arrivals)
        self._build()
        self.results.studiesFound.connect(self._show_studies)
        self.results.seriesFound.connect(self._show_series)
        self.results.failed.connect(self._failed)
        self.results.echoed.connect(self._set_status)
        self.results.retrieveProgress.connect(self._retrieve_progress)
        self.results.retrieveDone.connect(self._retrieve_done)
        self.pacs.instance_stored.connect(self._instance_stored)
        self.destroyed.connect(lambda *_a, pacs=pacs, listener=self._instance_stored: pacs.instance_stored.disconnect(listener))

    # ----- layout
    def _build(self) -> None:
        self.node_box = QComboBox()
        self.node_box.addItems(sorted(self.pacs.config.nodes))
        echo = QPushButton("Verify (C-ECHO)")
        echo.clicked.connect(self.echo)
        self.fields = {name: QLineEdit() for name in ("patient_name", "patient_id", "accession_number", "date_from",
                                                     "date_to", "description")}
        self.fields["patient_name"].setPlaceholderText("e.g. DOE^J*  (wildcards * ?)")
        self.fields["date_from"].setPlaceholderText("YYYYMMDD")
        self.fields["date_to"].setPlaceholderText("YYYYMMDD")
        self.modality_box = QComboBox()
        self.modality_box.setEditable(True)
        self.modality_box.addItems(MODALITIES)
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        for field in self.fields.values():
            field.returnPressed.connect(self.search)

        grid = QHBoxLayout()
        grid.addWidget(QLabel("PACS node"))
        self.node_box.setMinimumWidth(220)
        grid.addWidget(self.node_box)
        grid.addWidget(echo)
        grid.addStretch(1)
        form_left, form_right = QFormLayout(), QFormLayout()
        form_left.addRow("Patient name", self.fields["patient_name"])
        form_left.addRow("Patient ID", self.fields["patient_id"])
        form_left.addRow("Accession", self.fields["accession_number"])
        dates = QHBoxLayout()
        dates.addWidget(self.fields["date_from"])
        dates.addWidget(QLabel("to"))
        dates.addWidget(self.fields["date_to"])
        form_right.addRow("Study date", dates)
        form_right.addRow("Modality", self.modality_box)
        form_right.addRow("Description", self.fields["description"])
        forms = QHBoxLayout()
        forms.addLayout(form_left, 1)
        forms.addLayout(form_right, 1)

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setSelectionMode(QTreeWidget.SelectionMode.ExtendedSelection)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemExpanded.connect(self._expanded)

        self.method_box = QComboBox()
        self.method_box.addItem("C-MOVE (to this workstation)", "move")
        self.method_box.addItem("C-GET (no inbound port)", "get")
        self.node_box.currentTextChanged.connect(self._node_changed)
        self._node_changed(self.node_box.currentText())
        self.retrieve_button = QPushButton("Retrieve")
        self.retrieve_button.setToolTip("Retrieve the selected series, or the whole selected study")
        self.retrieve_button.clicked.connect(self.retrieve_selected)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m instances")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.status = QLabel("Choose a node and search.")
        self.status.setWordWrap(True)
        bottom = QHBoxLayout()
        bottom.addWidget(QLabel("Method"))
        bottom.addWidget(self.method_box)
        bottom.addWidget(self.retrieve_button)
        bottom.addWidget(self.progress, 1)
        bottom.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addLayout(forms)
        layout.addWidget(self.search_button, 0, Qt.AlignmentFlag.AlignRight)
        layout.addWidget(self.tree, 1)
        layout.addLayout(bottom)
        layout.addWidget(self.status)
        self.resize(1100, 650)

    def _node_changed(self, name: str) -> None:
        if name in self.pacs.config.nodes:
            index = self.method_box.findData(self.pacs.config.nodes[name].retrieve)
            self.method_box.setCurrentIndex(max(0, index))

    @property
    def node(self) -> str:
        return self.node_box.currentText()

    # ----- search
    def query(self) -> StudyQuery:
        text = {name: field.text().strip() for name, field in self.fields.items()}
        return StudyQuery(modality=self.modality_box.currentText().strip(), **text)

    def search(self) -> None:
        try:
            study_query = self.query()
        except ValueError as exc:
            self._failed(f"Search not sent: {exc}")
            return
        node = self.node
        self._set_status(f"Searching {node}…")
        self.search_button.setEnabled(False)
        self._run(lambda: self.results.deliver(self.results.studiesFound, self.pacs.find_studies(node, study_query)))

    def echo(self) -> None:
        node = self.node
        self._set_status(f"C-ECHO {node}…")
        self._run(lambda: self.results.deliver(
            self.results.echoed, f"{node} answered C-ECHO in {self.pacs.echo(node) * 1000:.0f} ms"))

    def _run(self, work) -> None:
        def guarded() -> None:
            try:
                work()
            except Exception as exc:  # noqa: BLE001 - shown to the user, never a traceback
                self.results.deliver(self.results.failed, str(exc))
        network().submit(guarded)

    def _show_studies(self, studies: list[StudyMatch]) -> None:
        self.search_button.setEnabled(True)
        self.tree.clear()
        for study in studies:
            item = QTreeWidgetItem(self.tree, [
                format_person_name(study.patient_name), study.patient_id, _date(study.study_date), study.description,
                "/".join(study.modalities), study.accession_number, _count(study.series_count), _count(study.instance_count),
            ])
            item.setData(0, STUDY_ROLE, study)
            item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
        self._set_status(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'} found on {self.node}."
                         + (" Expand a study to see its series." if studies else ""))
        self.searchFinished.emit()

    def _expanded(self, item: QTreeWidgetItem) -> None:
        study = item.data(0, STUDY_ROLE)
        if isinstance(study, StudyMatch) and item.childCount() == 0:
            node, uid = self.node, study.study_instance_uid
            self._run(lambda: self.results.deliver(self.results.seriesFound, uid, self.pacs.find_series(node, uid)))

    def _show_series(self, study_uid: str, series: list[SeriesMatch]) -> None:
        parent = self.study_item(study_uid)
        if parent is None:
            return
        parent.takeChildren()
        for match in sorted(series, key=lambda s: (s.number is None, s.number or 0)):
            child = QTreeWidgetItem(parent, [
                f"Series {match.number if match.number is not None else '-'}", "", "", match.description,
                match.modality, "", "", _count(match.instance_count)])
            child.setData(0, STUDY_ROLE, match)
        parent.setExpanded(True)

    def study_item(self, study_uid: str) -> QTreeWidgetItem | None:
        for index in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(index)
            if item.data(0, STUDY_ROLE).study_instance_uid == study_uid:
                return item
        return None

    # ----- retrieve
    def retrieve_selected(self) -> None:
        chosen = self.tree.selectedItems() or ([self.tree.currentItem()] if self.tree.currentItem() else [])
        if not chosen:
            self._failed("Select a study or some of its series first.")
            return
        data = [item.data(0, STUDY_ROLE) for item in chosen]
        series = [d for d in data if isinstance(d, SeriesMatch)]
        study_uid = series[0].study_instance_uid if series else data[0].study_instance_uid
        series_uids = [s.series_instance_uid for s in series if s.study_instance_uid == study_uid]
        self.retrieve(study_uid, series_uids)

    def retrieve(self, study_uid: str, series_uids: list[str] | None = None) -> None:
        if self._retrieving is not None:
            self._failed("A retrieval is already running; cancel it first.")
            return
        node, method = self.node, self.method_box.currentData()
        token = self._cancel = CancelToken()
        self._retrieving = study_uid
        expected = self._expected(study_uid, series_uids or [])
        self.progress.setRange(0, expected or 0)
        self.progress.setValue(0)
        self.retrieve_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._flush.start()
        self._set_status(f"Retrieving from {node} by C-{method.upper()}…")

        def work() -> None:
            try:
                result = self.pacs.retrieve(node, study_uid, series_uids or [], method=method, cancel=token,
                                            progress=lambda p, n: self.results.deliver(self.results.retrieveProgress, p, n))
            except Exception as exc:  # noqa: BLE001 - a retrieval always ends with a result the user sees
                result = RetrieveResult(study_uid, failures=[str(exc)], status="failed")
            self.results.deliver(self.results.retrieveDone, result)
        network().submit(work)

    def _expected(self, study_uid: str, series_uids: list[str]) -> int | None:
        item = self.study_item(study_uid)
        if item is None:
            return None
        if series_uids:
            counts = [item.child(i).data(0, STUDY_ROLE).instance_count for i in range(item.childCount())
                      if item.child(i).data(0, STUDY_ROLE).series_instance_uid in series_uids]
            return sum(counts) if counts and None not in counts else None
        return item.data(0, STUDY_ROLE).instance_count

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()
            self._set_status("Cancelling (C-CANCEL sent)…")

    def _retrieve_progress(self, progress, stored: int) -> None:
        expected = progress.expected
        if expected:
            self.progress.setRange(0, expected)
        self.progress.setValue(min(stored, self.progress.maximum()) if self.progress.maximum() else stored)
        self._set_status(f"Retrieving: {stored} received" + (f" of {expected}" if expected else "")
                         + (f", {progress.failed} failed" if progress.failed else ""))

    def _retrieve_done(self, result: RetrieveResult) -> None:
        self._retrieving = None
        self._cancel = None
        self._flush.stop()
        self._hand_over_arrivals()
        self.retrieve_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, max(result.received, 1))
        self.progress.setValue(min(result.received, self.progress.maximum()))
        text = (f"Retrieval {result.status}: {result.received} instance(s) received ({result.new} new)"
                + (f", {result.failed} failed" if result.failed else ""))
        if result.failures:
            text += "\n" + "\n".join(result.failures)
        self._set_status(text, error=not result.ok and not result.cancelled)
        self.retrieveFinished.emit(result)

    # ----- arrivals -> viewer
    def _instance_stored(self, instance: StoredInstance) -> None:
        """Receiver/network thread: queue the file for the library."""
        if instance.study_instance_uid == self._retrieving:
            with self._arrived_lock:
                self._arrived.append(str(instance.path))

    def _hand_over_arrivals(self) -> None:
        with self._arrived_lock:
            batch, self._arrived = self._arrived, []
        if batch:
            self.library.add_files(batch)

    def _failed(self, message: str) -> None:
        self.search_button.setEnabled(True)
        self._set_status(message, error=True)
        self.searchFinished.emit()

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #b00020;" if error else "")
        self.status.setText(text)


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def _count(value: int | None) -> str:
    return "" if value is None else str(value)
