#!/usr/bin/env python
"""Benchmark: MPR of a 500-slice 512x512 CT: the first reformat shown, then coronal + sagittal redrawn while
the crosshair moves (offscreen).

FIRST     MprView.show_volume(volume) after SeriesLoad.run() -> the three planes painted (MprGeometry,
          three reformats, windowing, setImage, paint), best of --repeats.
OURS      the crosshair moves --moves times along a diagonal of the axial view: each move reformats the
          coronal and sagittal planes (render/mpr.py: linear interpolation through the affine onto the grid
          the view shows: the isotropic grid, coarser in 1.25x steps while a screen pixel covers more than
          one sample, full detail when zoomed in), windows them, sets them on their ImageItems with the
          boxes and lines, and paints (app.processEvents()). This is what the MPR view does on a click or drag.
OURS (no Qt)  the same two reformats + windowing without display, on the view's grid and on the full grid.
NUMPY     baseline: volume[:, row, :] and volume[:, :, column] + the same windowing: plain slicing, no
          resampling (the slices would show stretched by slice/pixel spacing; not isotropic).
SITK      baseline: SimpleITK Resample of the same two planes onto the same grids (linear, the volume's
          direction and spacing), + the same windowing.

Figures: frames per second (one frame = both planes), best of --repeats after a warm-up, interleaved.

    .venv/bin/python bench/mpr.py [--slices 500] [--size 512] [--moves 60] [--repeats 3] [--data DIR]
"""

from __future__ import annotations

import argparse
import time

import _common as C
import numpy as np

from workstation.core.windowing import CT_PRESETS
from workstation.dicom.scan import scan_paths
from workstation.render.mpr import MprGeometry
from workstation.render.windowing import WindowRenderer
from workstation.services.loading import SeriesLoad

WINDOW = CT_PRESETS[0]  # lung


def load(folder) -> tuple:
    display_set = max(scan_paths([folder]).display_sets, key=lambda d: len(d.frames))
    start = time.perf_counter()
    volume = SeriesLoad(display_set).run()
    return display_set, volume, time.perf_counter() - start


def path_points(volume, moves: int) -> list[np.ndarray]:
    """Crosshair positions along the axial view's diagonal, on the middle slice."""
    frames, rows, cols = volume.array.shape
    t = np.linspace(0.15, 0.85, moves)
    return [volume.index_to_patient(cols * x, rows * x, frames // 2) for x in t]


def sitk_planes(volume, geometry, points):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(volume.array)
    col = volume.affine[:3, 0] / np.linalg.norm(volume.affine[:3, 0])
    row = volume.affine[:3, 1] / np.linalg.norm(volume.affine[:3, 1])
    normal = np.cross(col, row)
    slice_mm = float(np.median(np.abs(np.diff(volume.frame_origins @ normal))))
    image.SetSpacing((volume.pixel_spacing[1], volume.pixel_spacing[0], slice_mm))
    image.SetOrigin(tuple(volume.frame_origins[0]))
    image.SetDirection(tuple(np.column_stack([col, row, normal]).ravel()))
    fill = float(volume.array.min())

    def resample(plane):
        out_size = (plane.shape[1], plane.shape[0], 1)
        direction = np.column_stack([plane.u, plane.v, plane.normal]).ravel()
        result = sitk.Resample(image, out_size, sitk.Transform(), sitk.sitkLinear, tuple(plane.origin),
                               (plane.spacing,) * 3, tuple(direction), fill, image.GetPixelID())
        return sitk.GetArrayViewFromImage(result)[0]

    return resample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--moves", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--data", help="generate the study here once and reuse it")
    args, _ = parser.parse_known_args()  # run_all.sh passes every script the same options

    data = C.DemoData(args.data, args.slices, args.size, seed=11)
    C.warm_page_cache(data.files)
    display_set, volume, load_s = load(str(data.folder))
    print(C.environment())
    print(f"series: {volume.frame_count} x {volume.array.shape[1]}x{volume.array.shape[2]} {volume.array.dtype}, "
          f"loaded in {C.seconds(load_s)}")

    from PySide6.QtWidgets import QApplication

    from workstation.ui.mpr_view import MprView

    app = QApplication.instance() or QApplication([])
    view = MprView()
    view.resize(1400, 900)
    view.show()
    app.processEvents()
    paints = {"n": 0}
    for pane in view.panes.values():
        original = pane.image_item.paint

        def counting(*a, _original=original, **k):
            paints["n"] += 1
            return _original(*a, **k)
        pane.image_item.paint = counting

    geometry = MprGeometry(volume)
    points = path_points(volume, args.moves)
    renderer = WindowRenderer(volume.array.dtype)
    resample = sitk_planes(volume, geometry, points)
    centre = geometry.center
    frames, rows, cols = volume.array.shape

    def first():
        start = time.perf_counter()
        problem = view.show_volume(display_set, volume, WINDOW, centre)
        assert not problem, problem
        app.processEvents()
        return C.Timed(None, time.perf_counter() - start)

    def ours():
        view.show_volume(display_set, volume, WINDOW, centre)
        app.processEvents()
        before = paints["n"]
        start = time.perf_counter()
        for p in points:
            view.set_point(p)
            app.processEvents()
        elapsed = time.perf_counter() - start
        assert paints["n"] - before >= 2 * len(points), "the planes were not painted on every move"
        return C.Timed(None, elapsed)

    view.show_volume(display_set, volume, WINDOW, centre)
    app.processEvents()
    shown = view.panes["coronal"].sampling  # the grid the view samples at its size (None: full)

    def ours_no_qt(sampling=None):
        for p in points:
            for name in ("coronal", "sagittal"):
                renderer.render_rgba(geometry.reformat(geometry.plane(name, p, sampling)), WINDOW)

    def numpy_slicing():
        for p in points:
            f, r, c = geometry.to_index(p)
            renderer.render_rgba(np.ascontiguousarray(volume.array[:, int(round(r)), :]), WINDOW)
            renderer.render_rgba(np.ascontiguousarray(volume.array[:, :, int(round(c))]), WINDOW)

    def sitk_resample(sampling=None):
        for p in points:
            for name in ("coronal", "sagittal"):
                renderer.render_rgba(np.ascontiguousarray(resample(geometry.plane(name, p, sampling))), WINDOW)

    # the same planes both ways: our reformat against SimpleITK's (linear both)
    plane = geometry.plane("coronal", points[len(points) // 2])
    ours_img, sitk_img = geometry.reformat(plane).astype(float), resample(plane).astype(float)
    agree = float(np.mean(np.abs(ours_img - sitk_img) <= 1.0))

    timings, _ = C.interleaved({"first": first}, args.repeats, args.warmup)
    first_s = timings["first"]
    timings, _ = C.interleaved({"ours": ours, "ours_no_qt": ours_no_qt, "numpy": numpy_slicing, "sitk": sitk_resample,
                                "ours_no_qt_shown": lambda: ours_no_qt(shown), "sitk_shown": lambda: sitk_resample(shown)},
                               args.repeats, args.warmup)
    fps = {name: args.moves / t.best for name, t in timings.items()}
    fps_median = {name: args.moves / t.median for name, t in timings.items()}
    small = geometry.plane("coronal", centre, shown)
    print(f"coronal / sagittal planes: {plane.shape[1]}x{plane.shape[0]} at {plane.spacing:.2f} mm, in the "
          f"{view.panes['coronal'].view.width()}x{view.panes['coronal'].view.height()} px view sampled "
          f"{small.shape[1]}x{small.shape[0]} at {small.spacing:.2f} mm "
          f"(native {volume.pixel_spacing[1]:.2f} x {geometry.native[0]:.2f} mm); {args.moves} crosshair moves; "
          f"our coronal equals SimpleITK's within 1 HU at {agree * 100:.1f}% of pixels")
    rows_out = [
        ["first reformat shown (3 planes)", C.seconds(first_s.best), C.seconds(first_s.median), "target <= 300 ms"],
        ["OURS: crosshair move, coronal + sagittal drawn", f"{fps['ours']:.1f} fps", f"{fps_median['ours']:.1f} fps",
         f"target >= 30 fps; x{fps['ours'] / fps['sitk_shown']:.2f} SimpleITK (view grid, no drawing)"],
        ["OURS: two reformats + window, view grid (no Qt)", f"{fps['ours_no_qt_shown']:.1f} fps",
         f"{fps_median['ours_no_qt_shown']:.1f} fps", f"x{fps['ours_no_qt_shown'] / fps['sitk_shown']:.2f} SimpleITK"],
        ["SimpleITK Resample, view grid + window", f"{fps['sitk_shown']:.1f} fps", f"{fps_median['sitk_shown']:.1f} fps", "baseline"],
        ["OURS: two reformats + window, full grid (no Qt)", f"{fps['ours_no_qt']:.1f} fps", f"{fps_median['ours_no_qt']:.1f} fps",
         f"x{fps['ours_no_qt'] / fps['sitk']:.2f} SimpleITK"],
        ["SimpleITK Resample, full grid + window", f"{fps['sitk']:.1f} fps", f"{fps_median['sitk']:.1f} fps", "baseline"],
        ["numpy slicing (not isotropic) + window", f"{fps['numpy']:.1f} fps", f"{fps_median['numpy']:.1f} fps", "baseline"],
    ]
    print(C.table(["case", "best", "median", "note"], rows_out))
    data.cleanup()


if __name__ == "__main__":
    main()
