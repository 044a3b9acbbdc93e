"""The dark theme at a display scaling, checked in a fresh process (QT_SCALE_FACTOR must be set before Qt
starts), and the README screenshots of the measurement tools.

    python tests/ui/measure_screens.py theme OUT.png     # prints a JSON report; the test runs this at 150%
    python tests/ui/measure_screens.py nodule OUT.png    # a nodule measured with the diameter tool and ROI HU

`theme` expects QT_QPA_PLATFORM=offscreen:configfile=... naming a 1920x1080 screen and QT_SCALE_FACTOR.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _wait(app, condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out")
        app.processEvents()
        time.sleep(0.01)


def _open(app, window, directory) -> None:
    loaded: list = []
    window.seriesLoaded.connect(loaded.append)
    window.open_paths([str(directory)])
    _wait(app, lambda: loaded)


def theme(out: str) -> dict:
    from PySide6.QtCore import QPointF
    from PySide6.QtWidgets import QApplication, QLabel

    from workstation.demo import write_demo_study
    from workstation.ui import theme as dark
    from workstation.ui.main_window import MainWindow

    app = QApplication([])
    study = write_demo_study(Path(tempfile.mkdtemp()), seed=3, slices=40, size=256)
    window = MainWindow()
    dark.install(window, app)
    window.resize(*dark.PREFERRED_SIZE)
    window.show()
    dark.fit_to_screen(window)
    _open(app, window, study.directory)
    label = QLabel("refused", window)
    label.setStyleSheet("color: #b00020;")  # a panel's light-theme literal, set while the theme is on
    measure, viewer = window.measure, window.viewer
    viewer.show_frame(20)
    row_mm, col_mm = viewer.volume.pixel_spacing
    measure._drawn("length", [QPointF(60 * col_mm, 120 * row_mm), QPointF(120 * col_mm, 150 * row_mm)])  # noqa: SLF001
    measure._drawn("ellipse", [QPointF(100 * col_mm, 60 * row_mm), QPointF(130 * col_mm, 85 * row_mm)])  # noqa: SLF001
    for _ in range(20):
        app.processEvents()
    screen = window.screen()
    area, frame = screen.availableGeometry(), window.frameGeometry()
    image = window.grab()
    image.save(out)
    report = {
        "scale": screen.devicePixelRatio(), "screen": [area.width(), area.height()],
        "window": [frame.x(), frame.y(), frame.width(), frame.height()],
        "fits": area.contains(frame), "minimum": [window.minimumSizeHint().width(), window.minimumSizeHint().height()],
        "viewer_width": viewer.width(), "window_lightness": app.palette().window().color().lightness(),
        "text_lightness": app.palette().windowText().color().lightness(), "label_sheet": label.styleSheet(),
        "image": [image.width(), image.height()], "device_image": [image.toImage().width(), image.toImage().height()],
        "point_size": viewer.corners["tl"].font().pointSizeF(), "measurements": len(measure.session.measurements()),
    }
    window.close()
    return report


def _session(folder: Path):
    """A work session on a store of its own (file keyring) for a radiologist, as the app opens one."""
    from keyrings.alt.file import PlaintextKeyring

    from workstation.core.site import SiteConfig, UserSettings
    from workstation.ui.app import open_work_session

    os.environ["WORKSTATION_DATA_DIR"] = str(folder / "data")
    os.environ["WS_SHOT_LOGIN"] = "dr.reader"
    keyring = PlaintextKeyring()
    keyring.file_path = str(folder / "keyring.cfg")
    config = SiteConfig(users=UserSettings(roles={"dr.reader": "radiologist"}, login_variable="WS_SHOT_LOGIN"),
                        workstation_id="ws-demo")
    session, problem = open_work_session(config, keyring)
    if session is None:
        raise RuntimeError(problem)
    return session


def nodule(out: str) -> dict:
    """The shipped model on a 512 x 512 demo chest, its strongest finding measured ("Measure") and an ellipse
    ROI on the nodule, zoomed in, dark theme."""
    from PySide6.QtCore import QPointF
    from PySide6.QtWidgets import QApplication

    from workstation.demo import write_demo_study
    from workstation.ui import theme as dark
    from workstation.ui.main_window import MainWindow

    app = QApplication([])
    folder = Path(tempfile.mkdtemp())
    study = write_demo_study(folder, seed=7, slices=60, size=512)
    window = MainWindow(session=_session(folder))
    dark.install(window, app)
    window.resize(*dark.PREFERRED_SIZE)
    window.show()
    _open(app, window, study.directory)
    display_set = window.active.load.display_set
    models = [m for m, reason in window.inference.models_for(display_set) if reason is None]
    done: list = []
    window.inferenceFinished.connect(done.append)
    window.run_model(models[0].ref)
    _wait(app, lambda: done, 600)
    result = done[0]
    finding = result.sorted_findings()[0]
    window.review.select(finding.finding_id, jump=True)
    window.measure.measure_finding(finding.finding_id)
    diameter = window.measure.session.measurements()[0].measurement
    xs, ys = [p[0] for p in diameter.points], [p[1] for p in diameter.points]
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    half = 0.3 * min(max(xs) - min(xs), max(ys) - min(ys))
    row_mm, col_mm = window.viewer.volume.pixel_spacing
    window.measure._drawn("ellipse", [QPointF((cx - half) * col_mm, (cy - half) * row_mm),  # noqa: SLF001
                                      QPointF((cx + half) * col_mm, (cy + half) * row_mm)])
    window.viewer.show_heatmap(False)  # the measured nodule itself, not the colour map over it
    window.viewer.focus_box(finding.frame_index, finding.box_px)
    window.viewer.zoom_by(8.0)
    window.viewer.focus_box(finding.frame_index, finding.box_px)
    for _ in range(20):
        app.processEvents()
    window.grab().save(out)
    shown = [s.measurement for s in window.measure.session.measurements()]
    window.close()
    return {"finding": finding.finding_id, "measurements": [(m.kind, m.text) for m in shown]}


if __name__ == "__main__":
    kind, target = sys.argv[1], sys.argv[2]
    print(json.dumps({"theme": theme, "nodule": nodule}[kind](target)))
