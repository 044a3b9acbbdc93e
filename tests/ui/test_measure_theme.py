"""The dark reading theme at 150% display scaling, in a fresh process (the scale factor is read when Qt starts):
the window fits the screen, panels are dark with light text, light-theme message colours are made legible,
measurements are drawn and the picture is rendered at the device pixel ratio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QImage

from workstation.ui.theme import dark_sheet, light_sheet

SCRIPT = Path(__file__).with_name("measure_screens.py")


def test_dark_theme_fits_a_1920x1080_screen_at_150_percent(tmp_path):
    screen = tmp_path / "screen.json"
    screen.write_text(json.dumps({"screens": [{"name": "s", "x": 0, "y": 0, "width": 1920, "height": 1080,
                                               "logicalDpi": 96, "dpr": 1}]}))
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(QT_QPA_PLATFORM=f"offscreen:configfile={screen}", QT_SCALE_FACTOR="1.5")
    shot = tmp_path / "dark.png"
    done = subprocess.run([sys.executable, str(SCRIPT), "theme", str(shot)], env=env, capture_output=True, text=True,
                          timeout=240, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["scale"] == 1.5 and report["screen"] == [1280, 720]  # 1920 x 1080 device pixels at 150%
    assert report["fits"], report
    assert report["minimum"][0] <= 1280 and report["minimum"][1] <= 720
    assert report["window_lightness"] < 60 and report["text_lightness"] > 180
    assert report["label_sheet"] == "color: #ff6b6b;"
    assert report["measurements"] == 2
    image = QImage(str(shot))
    assert (image.width(), image.height()) == tuple(report["device_image"])
    assert abs(image.width() - report["window"][2] * 1.5) <= 8  # the window drawn at the device pixel ratio


def test_light_theme_literals_are_mapped_and_nothing_else():
    assert dark_sheet("color: #b00020; font-weight: bold;") == "color: #ff6b6b; font-weight: bold;"
    assert dark_sheet("color: #444;") == "color: #c4c4c4;"
    assert dark_sheet("color: #4444ff;") == "color: #4444ff;"  # another colour that starts alike
    assert dark_sheet("font-weight: bold;") == "font-weight: bold;"
    assert light_sheet(dark_sheet("color: #b00020; font-weight: bold;")) == "color: #b00020; font-weight: bold;"


def test_view_menu_switches_the_theme_off_and_on(qtbot):
    from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

    from workstation.ui import theme

    app = QApplication.instance()
    before = app.palette().window().color().name()
    window = QMainWindow()
    qtbot.addWidget(window)
    window.menuBar().addMenu("&View")
    label = QLabel("refused", window)
    label.setStyleSheet("color: #b00020;")
    action = theme.install(window, app, dark=True)
    window.show()
    qtbot.waitExposed(window)
    try:
        assert theme.is_dark() and app.palette().window().color().lightness() < 60
        assert label.styleSheet() == "color: #ff6b6b;"
        label.setStyleSheet("color: #444;")  # set while dark: mapped as it is set
        assert label.styleSheet() == "color: #c4c4c4;"
        assert action in window.menuBar().actions()[0].menu().actions() and action.isChecked()
    finally:
        action.setChecked(False)
    assert not theme.is_dark() and app.palette().window().color().name() == before
    assert label.styleSheet() == "color: #444;"
