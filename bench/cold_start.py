#!/usr/bin/env python
"""Benchmark: cold start - a fresh process from its start to the first slice of a 300-slice CT on screen.

OURS      `python -m workstation FOLDER --first-paint`: the real application (offscreen), which prints
          the wall-clock time once the viewer has painted a decoded slice, then exits.
SIMPLEITK a fresh process that only reads the series: GetGDCMSeriesFileNames + ImageSeriesReader.Execute
          + GetArrayFromImage (no window at all).
BARE      a fresh process with the toolkits we build on and nothing of ours: PySide6 + pyqtgraph +
          pydicom read one slice, window it, show it in a GraphicsView and save a PNG (grab()).

Every figure is from spawning the process to the time it prints (time.time() on both sides), so
interpreter start-up counts for all three. Runs are interleaved, after a warm-up round, from a warm
page cache; best and median of --repeats. Target: ours / SimpleITK <= 2.0. Then one more run of ours
lists which of the modules meant to load only after the first picture (networking, HTTP, keyring,
the store, torch, highdicom) were imported before it.

    .venv/bin/python bench/cold_start.py [--slices 300] [--size 512] [--repeats 5] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C

DEFERRED = ("pynetdicom", "httpx", "keyring", "sqlcipher3", "workstation.store.database", "workstation.services.session",
            "workstation.services.sync", "workstation.services.pacs", "torch", "highdicom", "fastapi", "sqlalchemy")

SIMPLEITK = """
import sys, time
import SimpleITK as sitk
reader = sitk.ImageSeriesReader()
reader.SetFileNames(reader.GetGDCMSeriesFileNames(sys.argv[1]))
array = sitk.GetArrayFromImage(reader.Execute())
assert array.shape[0] > 1
print(f"done {time.time():.6f}", flush=True)
"""

BARE = """
import sys, time
from pathlib import Path
import numpy as np
import pydicom
import pyqtgraph as pg
from PySide6.QtWidgets import QApplication
files = sorted(Path(sys.argv[1]).glob("*.dcm"))
ds = pydicom.dcmread(files[len(files) // 2])
hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
grey = (np.clip((hu - (-600 - 750)) / 1500, 0, 1) * 255).astype(np.uint8)
pg.setConfigOptions(imageAxisOrder="row-major")
app = QApplication([])
view = pg.GraphicsView(background="k")
box = pg.ViewBox(lockAspect=True, invertY=True)
view.setCentralItem(box)
box.addItem(pg.ImageItem(grey))
view.resize(800, 800)
view.show()
app.processEvents()
assert view.grab().save(sys.argv[2])
print(f"done {time.time():.6f}", flush=True)
"""

PROBE = """
import builtins, sys
deferred = {deferred!r}
real_print = builtins.print
def watch(*args, **kwargs):
    if args and str(args[0]).startswith("first-paint"):
        loaded = [name for name in deferred if name in sys.modules]
        real_print("loaded-before-first-paint " + (",".join(loaded) or "-"), flush=True)
    return real_print(*args, **kwargs)
builtins.print = watch
from workstation.cli import main
sys.exit(main([sys.argv[1], "--first-paint"]))
"""


def spawn(argv: list[str], env: dict[str, str], marker: str) -> tuple[float, str]:
    """Seconds from spawning `argv` to the wall-clock time it prints after `marker`, and its output."""
    start = time.time()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")
    for line in done.stdout.splitlines():
        if line.startswith(marker + " "):
            return float(line.split()[1]) - start, done.stdout
    raise SystemExit(f"{argv[:4]} printed no '{marker}' line:\n{done.stdout}\n{done.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--data", help="generate the series into DIR once and reuse it (default: a temp dir)")
    args = parser.parse_args()

    data = C.DemoData(args.data, args.slices, args.size, args.seed)
    scratch = Path(tempfile.mkdtemp(prefix="ws-cold-"))
    try:
        print(C.environment())
        print(f"data: {data.describe()}")
        C.warm_page_cache(data.files)
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", WORKSTATION_DATA_DIR=str(scratch / "data"),
                   PYTHONPATH=str(C.REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("PYTHON_KEYRING_BACKEND", None)
        env.pop("WORKSTATION_CONFIG", None)
        folder, python = str(data.folder), sys.executable
        cases = {
            "ours": lambda: C.Timed(None, spawn([python, "-m", "workstation", folder, "--first-paint"], env,
                                                "first-paint")[0]),
            "simpleitk": lambda: C.Timed(None, spawn([python, "-c", SIMPLEITK, folder], env, "done")[0]),
            "bare": lambda: C.Timed(None, spawn([python, "-c", BARE, folder, str(scratch / "bare.png")], env, "done")[0]),
        }
        timings, _ = C.interleaved(cases, args.repeats, args.warmup)
        ours, sitk, bare = timings["ours"], timings["simpleitk"], timings["bare"]
        rows = [
            ["ours: workstation FOLDER, start to first slice painted", C.seconds(ours.best), C.seconds(ours.median)],
            ["SimpleITK: fresh process reads the series", C.seconds(sitk.best), C.seconds(sitk.median)],
            ["bare PySide6 + pyqtgraph + pydicom: one slice to a PNG", C.seconds(bare.best), C.seconds(bare.median)],
            ["ratio ours / SimpleITK (target <= 2.0)", f"{ours.best / sitk.best:.2f}x", f"{ours.median / sitk.median:.2f}x"],
            ["ratio ours / bare toolkit", f"{ours.best / bare.best:.2f}x", f"{ours.median / bare.median:.2f}x"],
        ]
        print(f"\ncold start, {args.slices} slices of {args.size}x{args.size}, {args.repeats} runs each after "
              f"{args.warmup} warm-up, interleaved")
        print(C.table(["process", "best", "median"], rows))
        _, out = spawn([python, "-c", PROBE.format(deferred=DEFERRED), folder], env, "first-paint")
        loaded = next(line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("loaded-before-first-paint"))
        print(f"deferred modules imported before the first paint: {loaded if loaded != '-' else 'none'}")
        verdict = "met" if ours.median / sitk.median <= 2.0 else "NOT met"
        print(f"target ours / SimpleITK <= 2.0 (median): {verdict}")
    finally:
        data.cleanup()
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
