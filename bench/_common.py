"""Shared helpers for the benchmarks: data, timing, the offscreen viewer, the table.

Not a benchmark itself. Each bench/*.py script puts its own folder on sys.path
(Python does that for the script's directory), so `import _common` works when a
script is run as `python bench/NAME.py` from anywhere.
"""

from __future__ import annotations

import gc
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout even if the package is not installed
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


# ----------------------------------------------------------------- data

class DemoData:
    """A demo CT series on disk: in `--data DIR` (kept, reused) or in a temp dir (removed at exit)."""

    def __init__(self, data: str | None, slices: int, size: int, seed: int) -> None:
        self._tmp: str | None = None
        if data:
            root = Path(data)
        else:
            self._tmp = tempfile.mkdtemp(prefix="ws-bench-")
            root = Path(self._tmp)
        self.root = root
        self.folder = root / "DICOM"
        self.generated_seconds: float | None = None
        existing = sorted(self.folder.glob("*.dcm")) if self.folder.is_dir() else []
        if len(existing) == slices and _stamp(root) == (seed, slices, size):
            self.files = existing
            return
        if existing or (self.folder.exists() and any(self.folder.iterdir())):
            if _stamp(root) is None:  # not ours: never delete someone's files
                raise SystemExit(f"{self.folder} holds files this benchmark did not write; choose another --data")
            shutil.rmtree(self.folder)  # our own study with other parameters: start again, never mix two series
        from workstation.demo import write_demo_study

        start = time.perf_counter()
        study = write_demo_study(root, seed=seed, slices=slices, size=size)
        self.generated_seconds = time.perf_counter() - start
        (root / ".bench-stamp").write_text(f"{seed} {slices} {size}\n")
        self.files = list(study.files)

    def describe(self) -> str:
        size = sum(f.stat().st_size for f in self.files)
        how = (f"generated in {self.generated_seconds:.1f} s" if self.generated_seconds is not None
               else "reused")
        return f"{len(self.files)} files, {size / 1e6:.0f} MB in {self.folder} ({how})"

    def cleanup(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)


def _stamp(root: Path) -> tuple[int, int, int] | None:
    try:
        seed, slices, size = (root / ".bench-stamp").read_text().split()
        return int(seed), int(slices), int(size)
    except (OSError, ValueError):
        return None


def warm_page_cache(files: list[Path]) -> None:
    """Read every file once so both sides start from the same (warm) cache state."""
    for f in files:
        with open(f, "rb") as fp:
            while fp.read(1 << 20):
                pass


# ----------------------------------------------------------------- timing

class Timings:
    """Seconds per repeat for one measurement."""

    def __init__(self) -> None:
        self.values: list[float] = []

    @property
    def best(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)


class Timed:
    """What a case returns when it measured itself."""

    def __init__(self, result: Any, seconds: float) -> None:
        self.result, self.seconds = result, seconds


def interleaved(cases: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> tuple[dict[str, Timings], dict[str, Any]]:
    """Run every case `warmup` + `repeats` times, interleaved (A B, B A, A B ...) so drift hits all sides alike.

    A case returns its result, or Timed(result, seconds) when it times itself
    (e.g. to exclude set-up); the last result of each case is returned.
    """
    names = list(cases)
    timings = {name: Timings() for name in names}
    results: dict[str, Any] = {}
    for round_ in range(warmup + repeats):
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            results.pop(name, None)
            gc.collect()
            start = time.perf_counter()
            out = cases[name]()
            elapsed = time.perf_counter() - start
            if isinstance(out, Timed):
                out, elapsed = out.result, out.seconds
            if round_ >= warmup:
                timings[name].values.append(elapsed)
            results[name] = out
    return timings, results


# ----------------------------------------------------------------- offscreen viewer

PAINT_MODES = ("events", "repaint", "qimage", "grab")


class OffscreenViewer:
    """The viewer's image path without the rest of the UI: GraphicsView > ViewBox > ImageItem.

    Configured like workstation/ui/viewer.py (row-major images, no antialias,
    locked aspect, y down). `paint()` forces a real paint of the viewport and
    `paints` counts ImageItem.paint calls so a benchmark can prove it drew.
    """

    def __init__(self, width: int = 800, height: int = 800, paint_mode: str = "events") -> None:
        import pyqtgraph as pg
        from PySide6.QtGui import QImage, QPainter

        pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
        self.pg = pg
        self.app = pg.mkQApp("workstation-bench")
        self.paints = 0
        viewer = self

        class CountingImageItem(pg.ImageItem):
            def paint(self, p, *args):  # noqa: ANN001 - Qt signature
                viewer.paints += 1
                super().paint(p, *args)

        self.view = pg.GraphicsView(background="k")
        self.viewbox = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view.setCentralItem(self.viewbox)
        self.item = CountingImageItem()
        self.viewbox.addItem(self.item)
        self.view.resize(width, height)
        self.view.show()
        self.app.processEvents()
        self.paint_mode = paint_mode
        self._QPainter = QPainter
        self._target = QImage(width, height, QImage.Format.Format_ARGB32_Premultiplied)

    def paint(self) -> None:
        """Paint the view once, now. Each mode gives exactly one ImageItem.paint per call.

        events   app.processEvents(): the app's own path (setImage -> update() -> the event
                 loop paints); on the offscreen platform this paints synchronously.
        repaint  viewport().repaint(): a synchronous paintEvent, no event processing.
        qimage   QGraphicsView.render() into a QImage through a QPainter.
        grab     QWidget.grab() into a QPixmap.
        """
        if self.paint_mode == "events":
            self.app.processEvents()
        elif self.paint_mode == "repaint":
            self.view.viewport().repaint()
        elif self.paint_mode == "qimage":
            painter = self._QPainter(self._target)
            self.view.render(painter)
            painter.end()
        elif self.paint_mode == "grab":
            self.view.grab()
        else:
            raise ValueError(self.paint_mode)

    def clear(self) -> None:
        self.item.clear()
        self.app.processEvents()


# ----------------------------------------------------------------- reporting

def environment() -> str:
    """Versions that matter to the figures; a package missing (e.g. no Qt on a GPU box running only the inference
    bench) is said, not fatal."""
    import importlib

    versions = []
    for name in ("numpy", "pydicom", "SimpleITK", "PySide6", "pyqtgraph"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            versions.append(f"{name} absent")
            continue
        version = module.Version.VersionString() if name == "SimpleITK" else module.__version__
        if name == "SimpleITK":
            version += f" ({module.ProcessObject.GetGlobalDefaultNumberOfThreads()} threads)"
        versions.append(f"{name} {version}")
    return (f"python {platform.python_version()}, {', '.join(versions)}; {os.cpu_count()} CPUs, "
            f"Qt platform {os.environ.get('QT_QPA_PLATFORM')}")


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    out = [line, "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |", line]
    for r in rows:
        out.append("| " + " | ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                     for i, (c, w) in enumerate(zip(r, widths))) + " |")
    out.append(line)
    return "\n".join(out)


def seconds(t: float) -> str:
    return f"{t * 1000:.0f} ms" if t < 1 else f"{t:.2f} s"
