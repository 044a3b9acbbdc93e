"""Study browser > right-click > "Export de-identified...": choose a folder, a zip or a research node, then the
export runs off the UI thread with a progress dialog and Cancel; the result (written, left out with the reason)
is shown at the end. The work itself is services.export; this module only asks and shows."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QPoint, Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QRadioButton,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workstation.core.tasks import CancelToken
from workstation.services import executor
from workstation.ui.browser import KEY_ROLE

# services.export (pydicom, pynetdicom, the keyring) loads on the first export, not with the window: cold start.

ACTION_TEXT = "Export de-identified…"


class ExportDialog(QDialog):
    """Where to: a new folder, a new zip file or a configured research node; the site's options are listed."""

    def __init__(self, studies: int, nodes: list[str], options: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export de-identified")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{studies} stud{'y' if studies == 1 else 'ies'}, de-identified by the DICOM PS3.15 "
                                "Annex E Basic Profile\nwith keyed pseudonyms and UIDs (same for every export)."))
        self.kind = QButtonGroup(self)
        form = QFormLayout()
        self.folder, self.zip, self.node = QRadioButton("Folder"), QRadioButton("Zip file"), QRadioButton("Research node")
        self.folder.setChecked(True)
        self.path = QLineEdit()
        self.path.setPlaceholderText("a new or empty folder / a new .zip file")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path)
        row.addWidget(browse)
        self.nodes = QComboBox()
        self.nodes.addItems(nodes)
        self.node.setEnabled(bool(nodes))
        for n, button in enumerate((self.folder, self.zip, self.node)):
            self.kind.addButton(button, n)
        form.addRow(self.folder)
        form.addRow(self.zip)
        form.addRow("Path", row)
        form.addRow(self.node, self.nodes)
        layout.addLayout(form)
        layout.addWidget(QLabel("Site options: " + (", ".join(options) or "none")))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        if self.zip.isChecked():
            path, _ = QFileDialog.getSaveFileName(self, "Export to zip", "", "Zip (*.zip)")
        else:
            path = QFileDialog.getExistingDirectory(self, "Export to folder")
        if path:
            self.path.setText(path)

    def destination(self):
        from workstation.services.export import Destination

        if self.node.isChecked():
            return Destination("node", self.nodes.currentText()) if self.nodes.currentText() else None
        path = self.path.text().strip()
        return Destination("zip" if self.zip.isChecked() else "folder", path) if path else None


class ExportController(QObject):
    progress = Signal(int, int)
    finished = Signal(object)  # ExportReport, or an error message (str)

    def __init__(self, window, secret: Callable[[], bytes] | None = None) -> None:
        super().__init__(window)
        self.window, self.secret = window, secret  # None: the site secret from the OS keyring
        self.cancel_token: CancelToken | None = None
        self.dialog: QProgressDialog | None = None
        self.last = None  # the last ExportReport, or the message why nothing was exported
        browser = window.browser
        browser.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        browser.customContextMenuRequested.connect(self._context_menu)
        self.progress.connect(self._progress)
        self.finished.connect(self._finished)

    # ----- asking
    def menu_for(self, item: QTreeWidgetItem | None) -> QMenu:
        menu = QMenu(self.window.browser)
        action = menu.addAction(ACTION_TEXT)
        studies = self.studies_of(item)
        action.setEnabled(bool(studies) and self.window.work is not None and self.cancel_token is None)
        if self.window.work is None:
            action.setToolTip("Export needs the encrypted store (its audit trail)")
        action.triggered.connect(lambda: self.ask(studies))
        return menu

    def _context_menu(self, pos: QPoint) -> None:
        browser = self.window.browser
        self.menu_for(browser.itemAt(pos)).exec(browser.viewport().mapToGlobal(pos))

    def studies_of(self, item: QTreeWidgetItem | None) -> list[str]:
        """The Study Instance UIDs under a browser row (a series, a study or a patient)."""
        if item is None:
            return []
        keys, stack = [], [item]
        while stack:
            node = stack.pop()
            if node.data(0, KEY_ROLE):
                keys.append(node.data(0, KEY_ROLE))
            stack += [node.child(i) for i in range(node.childCount())]
        found = []
        for display_set in self.window.catalog.display_sets:
            uid = display_set.series.study.study_instance_uid
            if display_set.key in keys and uid not in found:
                found.append(uid)
        return found

    def ask(self, studies: list[str]) -> None:
        from workstation.services.export import site_options

        dialog = ExportDialog(len(studies), sorted(self.window.config.nodes), site_options(self.window.config),
                              self.window)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.destination() is not None:
            self.start(studies, dialog.destination())

    # ----- running
    def start(self, studies: list[str], destination) -> None:
        """Export the studies in the background: every object of theirs in the folders (or zips) their images
        came from, SRs and presentation states included (other studies there are filtered out by UID)."""
        import os

        paths = sorted({inst.location.path if inst.location.member else os.path.dirname(inst.location.path)
                        for ds in self.window.catalog.display_sets
                        if ds.series.study.study_instance_uid in studies for inst in ds.instances})
        from workstation.services.export import ExportRequest

        request = ExportRequest(destination, tuple(paths), tuple(studies))
        self.cancel_token = CancelToken()
        self.dialog = QProgressDialog("De-identifying and exporting…", "Cancel", 0, max(1, len(paths)), self.window)
        self.dialog.setWindowTitle("Export de-identified")
        self.dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.dialog.setMinimumDuration(0)
        self.dialog.canceled.connect(self.cancel_token.cancel)
        self.dialog.show()
        token, work, config = self.cancel_token, self.window.work, self.window.config
        executor.background().submit(self._run, request, config, work, token)

    def _run(self, request, config, work, token) -> None:
        from workstation.services.export import ExportError, ExportRefused, export_deidentified, site_secret

        try:
            secret = self.secret() if self.secret is not None else site_secret()
            report = export_deidentified(request, config, work, secret, progress=self.progress.emit, cancel=token)
        except (ExportRefused, ExportError) as exc:
            self.finished.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - shown, never a crash of the viewer
            self.finished.emit(f"export failed: {type(exc).__name__}: {exc}")
        else:
            self.finished.emit(report)

    def _progress(self, done: int, total: int) -> None:
        if self.dialog is not None:
            self.dialog.setMaximum(total)
            self.dialog.setValue(done)

    def _finished(self, outcome) -> None:
        self.last, self.cancel_token = outcome, None
        if self.dialog is not None:
            self.dialog.reset()
            self.dialog.hide()
            self.dialog = None
        self.message = summary(outcome)
        notify = getattr(self.window, "_notify", None)
        if notify is not None:
            notify(self.message.splitlines()[0])
        self.box = QMessageBox(QMessageBox.Icon.Information, "Export de-identified", self.message,
                               QMessageBox.StandardButton.Ok, self.window)
        self.box.open()  # not modal to the application: the viewer stays usable


def summary(outcome) -> str:
    if isinstance(outcome, str):
        return f"Not exported: {outcome}"
    if outcome.cancelled:
        return "Export cancelled: nothing was written"
    lines = [f"Exported {outcome.written} object(s) de-identified to {outcome.destination.describe()} "
             f"(export {outcome.export_id})"]
    lines += [f"left out: {lo.source}: {lo.reason}" for lo in outcome.left_out]
    return "\n".join(lines)

