#!/usr/bin/env python
"""Benchmark: open a CT series - time to first slice on screen, and time to the full volume.

OURS      scan_paths([folder]) -> SeriesLoad(display_set, start_frame=0)
          * first slice: SeriesLoad.run() on a thread; when frames_ready reports frame 0
            the main thread windows it (WindowRenderer), puts it in a pyqtgraph ImageItem
            of an offscreen view and paints it. The clock stops after that paint.
          * full volume: scan + SeriesLoad.run() on the calling thread.
BASELINE  SimpleITK: ImageSeriesReader.GetGDCMSeriesFileNames + Execute() + GetArrayFromImage;
          for the first slice, sitk.ReadImage of that one file (name already known), and the
          same preceded by GetGDCMSeriesFileNames (the series scan that a viewer would need).

Both sides read the same files, from a warm page cache (all files are read once before
timing and a warm-up round runs first). Each figure is the best of --repeats runs,
interleaved ours/baseline; the median is printed too. Volumes are checked equal.

    .venv/bin/python bench/load_series.py [--slices 500] [--repeats 5] [--data DIR] [--profile cprofile|pyinstrument]
"""

from __future__ import annotations

import argparse
import io
import threading
import time

import _common as C
import numpy as np
import SimpleITK as sitk

from workstation.core.volume import Volume
from workstation.dicom.scan import scan_paths
from workstation.render.windowing import WindowRenderer
from workstation.services.loading import SeriesLoad
from workstation.services.windows import initial_window


def pick(catalog):
    if not catalog.display_sets:
        raise SystemExit(f"no display set found ({len(catalog.problems)} problems)")
    return max(catalog.display_sets, key=lambda d: len(d.frames))


# ----------------------------------------------------------------- ours

def ours_full(folder: str, marks: list[dict]) -> Volume:
    t0 = time.perf_counter()
    display_set = pick(scan_paths([folder]))
    t1 = time.perf_counter()
    load = SeriesLoad(display_set, start_frame=0)
    volume = load.run()
    t2 = time.perf_counter()
    if load.problems:
        raise SystemExit(f"load problems: {load.problems[:3]}")
    marks.append({"scan": t1 - t0, "decode": t2 - t1})
    return volume


def ours_first_slice(folder: str, viewer: C.OffscreenViewer, marks: list[dict]) -> C.Timed:
    viewer.clear()
    paints_before = viewer.paints
    t0 = time.perf_counter()
    display_set = pick(scan_paths([folder]))
    t_scan = time.perf_counter()
    load = SeriesLoad(display_set, start_frame=0)
    first = threading.Event()
    stamp: dict[str, float] = {}

    def on_frames(indices: list[int]) -> None:
        if 0 in indices and not first.is_set():
            stamp["decoded"] = time.perf_counter()
            first.set()

    load.frames_ready.connect(on_frames)
    worker = threading.Thread(target=load.run, name="bench-load")
    worker.start()
    first.wait()  # the app gets a queued framesReady signal here; the GUI thread is idle till then
    frame = load.volume.array[0]
    renderer = WindowRenderer(load.volume.array.dtype, invert=display_set.first.pixel.inverted)
    image = renderer.render(frame, initial_window(display_set, frame))
    viewer.item.setImage(image, autoLevels=False, levels=(0, 255))
    viewer.viewbox.autoRange(padding=0)
    viewer.paint()
    t_shown = time.perf_counter()
    worker.join()
    t_full = time.perf_counter()
    if viewer.paints == paints_before:
        raise SystemExit("the first slice was never painted: the paint method does not paint")
    marks.append({
        "scan": t_scan - t0,
        "decode first": stamp["decoded"] - t_scan,
        "window + show + paint": t_shown - stamp["decoded"],
        "full (threaded)": t_full - t0,
    })
    return C.Timed(image.copy(), t_shown - t0)


# ----------------------------------------------------------------- baseline

def sitk_full(folder: str, marks: list[dict]) -> tuple[np.ndarray, sitk.Image]:
    t0 = time.perf_counter()
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(folder)
    t1 = time.perf_counter()
    reader.SetFileNames(names)
    image = reader.Execute()
    array = sitk.GetArrayFromImage(image)
    t2 = time.perf_counter()
    marks.append({"series names": t1 - t0, "read": t2 - t1})
    return array, image


def sitk_one_file(path: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(path))[0]


def sitk_names_then_one(folder: str) -> np.ndarray:
    names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder)
    return sitk.GetArrayFromImage(sitk.ReadImage(names[0]))[0]


# ----------------------------------------------------------------- checks

def same_volume(ours: Volume, theirs: np.ndarray, image: sitk.Image) -> str:
    """Compare values slice by slice, after matching SimpleITK's slice order to ours by patient position."""
    if theirs.shape != ours.array.shape:
        return f"DIFFERENT shapes: ours {ours.array.shape}, SimpleITK {theirs.shape}"
    n = theirs.shape[0]
    ours_first, ours_last = ours.affine[:3, 3], ours.affine[:3, :3] @ [0, 0, n - 1] + ours.affine[:3, 3]
    sitk_first = np.array(image.TransformIndexToPhysicalPoint((0, 0, 0)))
    sitk_last = np.array(image.TransformIndexToPhysicalPoint((0, 0, n - 1)))
    if np.allclose(ours_first, sitk_first, atol=1e-3) and np.allclose(ours_last, sitk_last, atol=1e-3):
        order, flipped = theirs, "same slice order"
    elif np.allclose(ours_first, sitk_last, atol=1e-3) and np.allclose(ours_last, sitk_first, atol=1e-3):
        order, flipped = theirs[::-1], "SimpleITK z reversed (flipped for the comparison)"
    else:
        return f"DIFFERENT geometry: ours first/last {ours_first}/{ours_last}, SimpleITK {sitk_first}/{sitk_last}"
    for k in range(n):
        a, b = ours.array[k], order[k]
        if not np.array_equal(a.astype(np.float64) if a.dtype != b.dtype else a, b.astype(np.float64) if a.dtype != b.dtype else b):
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            return f"DIFFERENT values at slice {k} (max |diff| {diff.max():g}); {flipped}"
    return f"equal ({ours.array.dtype} vs SimpleITK {theirs.dtype}; {flipped})"


# ----------------------------------------------------------------- profile

def profile(folder: str, how: str, out_path: str | None) -> str:
    buf = io.StringIO()
    if how == "pyinstrument":
        try:
            from pyinstrument import Profiler
        except ImportError:
            how = "cprofile"
            buf.write("(pyinstrument not installed: using cProfile)\n")
    if how == "pyinstrument":
        profiler = Profiler(interval=0.0005)
        profiler.start()
        ours_full(folder, [])
        profiler.stop()
        buf.write(profiler.output_text(unicode=False, color=False, show_all=False))
    else:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        ours_full(folder, [])
        prof.disable()
        for key in ("tottime", "cumulative"):
            buf.write(f"\n--- cProfile of ours full load, top 30 by {key} ---\n")
            pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(30)
    text = buf.getvalue()
    if out_path:
        with open(out_path, "w") as fp:
            fp.write(text)
    return text


# ----------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--size", type=int, default=512, help="rows = columns of each slice")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--data", help="folder to write the demo study into and reuse next time (default: a temp dir)")
    parser.add_argument("--paint", default="events", choices=C.PAINT_MODES,
                        help="how the first slice is painted (default: app.processEvents(), see _common.OffscreenViewer.paint)")
    parser.add_argument("--profile", choices=["cprofile", "pyinstrument"], help="also profile one full load (ours)")
    parser.add_argument("--profile-out", help="write the profile to this file instead of only printing it")
    args = parser.parse_args()

    print(f"load_series: {C.environment()}")
    data = C.DemoData(args.data, args.slices, args.size, args.seed)
    try:
        print(f"data: {data.describe()}")
        folder = str(data.folder)
        C.warm_page_cache(data.files)
        viewer = C.OffscreenViewer(paint_mode=args.paint)

        # the first file in display order, known in advance for the one-file baseline
        first_path = pick(scan_paths([folder])).frames[0].instance.location.path

        first_marks: list[dict] = []
        first_t, first_r = C.interleaved({
            "ours": lambda: ours_first_slice(folder, viewer, first_marks),
            "sitk one file": lambda: sitk_one_file(first_path),
            "sitk names + one file": lambda: sitk_names_then_one(folder),
        }, args.repeats, args.warmup)
        first_marks = first_marks[args.warmup:]

        full_marks: list[dict] = []
        sitk_marks: list[dict] = []
        full_t, full_r = C.interleaved({
            "ours": lambda: ours_full(folder, full_marks),
            "sitk": lambda: sitk_full(folder, sitk_marks),
        }, args.repeats, args.warmup)
        full_marks, sitk_marks = full_marks[args.warmup:], sitk_marks[args.warmup:]

        volume_check = same_volume(full_r["ours"], *full_r["sitk"])
        # the first slice on screen must be frame 0 windowed; its source equals SimpleITK's read of that file
        first_check = "equal" if np.array_equal(full_r["ours"].array[0], first_r["sitk one file"]) else "DIFFERENT"

        def median(marks: list[dict], key: str) -> str:
            return C.seconds(float(np.median([m[key] for m in marks])))

        rows = []
        ours, base = first_t["ours"], first_t["sitk one file"]
        rows.append(["first slice on screen: ours vs sitk one file", C.seconds(ours.best), C.seconds(ours.median),
                     C.seconds(base.best), C.seconds(base.median), f"{base.best / ours.best:.2f}",
                     f"{base.median / ours.median:.2f}"])
        base2 = first_t["sitk names + one file"]
        rows.append(["first slice: ours vs sitk series names + one file", C.seconds(ours.best), C.seconds(ours.median),
                     C.seconds(base2.best), C.seconds(base2.median), f"{base2.best / ours.best:.2f}",
                     f"{base2.median / ours.median:.2f}"])
        for key in ("scan", "decode first", "window + show + paint"):
            rows.append([f"  ours first slice: {key} (median)", median(first_marks, key), "", "", "", "", ""])
        rows.append(["  ours full volume, threaded, after the first slice (median)", median(first_marks, "full (threaded)"),
                     "", "", "", "", ""])
        ours, base = full_t["ours"], full_t["sitk"]
        rows.append(["FULL VOLUME: ours (scan + SeriesLoad.run) vs sitk", C.seconds(ours.best), C.seconds(ours.median),
                     C.seconds(base.best), C.seconds(base.median), f"{base.best / ours.best:.2f}",
                     f"{base.median / ours.median:.2f}"])
        rows.append(["  ours scan_paths vs sitk GetGDCMSeriesFileNames (median)", median(full_marks, "scan"), "",
                     median(sitk_marks, "series names"), "", "", ""])
        rows.append(["  ours SeriesLoad.run vs sitk Execute + GetArray (median)", median(full_marks, "decode"), "",
                     median(sitk_marks, "read"), "", "", ""])
        print()
        print(f"best and median of {args.repeats} runs after {args.warmup} warm-up; "
              f"ratio = baseline / ours, of the bests and of the medians (> 1: ours faster)")
        print(C.table(["measurement", "ours best", "ours median", "baseline best", "baseline median", "ratio best", "ratio median"], rows))
        ours_first = first_t["ours"].best
        print(f"first slice on screen: {C.seconds(ours_first)} "
              f"({'meets' if ours_first < 0.5 else 'MISSES'} the < 0.5 s target); painted with --paint {args.paint}")
        ratio = full_t["sitk"].best / full_t["ours"].best
        print(f"full volume ratio {ratio:.2f} of the bests, {full_t['sitk'].median / full_t['ours'].median:.2f} of the "
              f"medians ({'meets' if ratio >= 1.0 else 'MISSES'} the >= 1.0 target, judged on the bests)")
        print(f"volumes: {volume_check}; first slice source vs SimpleITK one-file read: {first_check}")
        del full_r, first_r

        if args.profile:
            print()
            text = profile(folder, args.profile, args.profile_out)
            print(text if len(text) < 25000 else text[:25000] + "\n... (cut; see --profile-out)")
    finally:
        data.cleanup()


if __name__ == "__main__":
    main()
