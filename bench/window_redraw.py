#!/usr/bin/env python
"""Benchmark: change the window/level of a 512x512 CT slice and redraw it, N times, offscreen.

OURS      renderer.render_rgba(frame, window)  (WindowRenderer: 64 Ki-entry LUT of opaque 32-bit
          grey pixels, rebuilt when the window changes, then np.take) ->
          image_item.setImage(rgba uint8, autoLevels=False, levels=None) -> paint. This is what
          the viewer does.
BASELINE  pyqtgraph's own path: image_item.setImage(int16 frame, autoLevels=False,
          levels=window.bounds) -> paint (pyqtgraph rescales and converts when it paints).

The window changes on every frame (cycling the 5 CT presets), so our LUT is rebuilt every
frame: the worst case, as during a window drag. Both sides use the same view, the same
frames and the same paint method (--paint, default: app.processEvents(), which paints
once per frame on the offscreen platform; every run checks that ImageItem.paint ran once
per frame). Figures are frames per second, best of --repeats runs after a warm-up,
interleaved ours/baseline.

Extra rows: our 8-bit grey variant (render() + setImage(uint8, levels=(0, 255)), the first
design: pyqtgraph builds an Indexed8 colour table each frame and Qt paints that slowly), our
WindowRenderer alone, and the floor (setImage of one ready uint8 image + paint).

    .venv/bin/python bench/window_redraw.py [--frames 300] [--repeats 5] [--slices 16] [--data DIR]
"""

from __future__ import annotations

import argparse
import time

import _common as C
import numpy as np

from workstation.core.windowing import CT_PRESETS
from workstation.dicom.scan import scan_paths
from workstation.render.windowing import WindowRenderer
from workstation.services.loading import SeriesLoad


def load_frame(folder: str) -> tuple[np.ndarray, bool]:
    display_set = max(scan_paths([folder]).display_sets, key=lambda d: len(d.frames))
    k = len(display_set.frames) // 2
    load = SeriesLoad(display_set, start_frame=k)
    volume = load.run()
    return np.ascontiguousarray(volume.array[k]), display_set.first.pixel.inverted


def run_ours(viewer: C.OffscreenViewer, frame: np.ndarray, inverted: bool, frames: int,
             levels: tuple[int, int] | None = None, rgba: bool = True) -> C.Timed:
    """What the viewer does: 32-bit RGBA from the LUT, shown with levels=None. rgba=False: 8-bit grey."""
    renderer = WindowRenderer(frame.dtype, invert=inverted)
    render = renderer.render_rgba if rgba else renderer.render
    viewer.item.setImage(render(frame, CT_PRESETS[-1]), autoLevels=False, levels=levels)
    viewer.app.processEvents()
    before = viewer.paints
    start = time.perf_counter()
    for i in range(frames):
        window = CT_PRESETS[i % len(CT_PRESETS)]
        image = render(frame, window)
        viewer.item.setImage(image, autoLevels=False, levels=levels)
        viewer.paint()
    elapsed = time.perf_counter() - start
    return C.Timed(viewer.paints - before, elapsed)


def run_baseline(viewer: C.OffscreenViewer, frame: np.ndarray, frames: int) -> C.Timed:
    viewer.item.setImage(frame, autoLevels=False, levels=CT_PRESETS[-1].bounds)
    viewer.app.processEvents()
    before = viewer.paints
    start = time.perf_counter()
    for i in range(frames):
        window = CT_PRESETS[i % len(CT_PRESETS)]
        viewer.item.setImage(frame, autoLevels=False, levels=window.bounds)
        viewer.paint()
    elapsed = time.perf_counter() - start
    return C.Timed(viewer.paints - before, elapsed)


def run_render_only(frame: np.ndarray, inverted: bool, frames: int) -> C.Timed:
    renderer = WindowRenderer(frame.dtype, invert=inverted)
    start = time.perf_counter()
    for i in range(frames):
        renderer.render(frame, CT_PRESETS[i % len(CT_PRESETS)])
    return C.Timed(frames, time.perf_counter() - start)


def run_paint_only(viewer: C.OffscreenViewer, image: np.ndarray, frames: int) -> C.Timed:
    """The floor: setImage of the same ready uint8 image + paint, no windowing at all."""
    viewer.item.setImage(image, autoLevels=False, levels=(0, 255))
    viewer.app.processEvents()
    before = viewer.paints
    start = time.perf_counter()
    for _ in range(frames):
        viewer.item.setImage(image, autoLevels=False, levels=(0, 255))
        viewer.paint()
    return C.Timed(viewer.paints - before, time.perf_counter() - start)


def shown_image(viewer: C.OffscreenViewer) -> np.ndarray:
    """The grey values pyqtgraph put on screen for the item's current image and levels."""
    import pyqtgraph.functions as fn

    viewer.item.render()
    return np.array(fn.ndarray_from_qimage(viewer.item.qimage)).reshape(viewer.item.image.shape[:2] + (-1,))[..., 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="redraws per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--slices", type=int, default=16, help="slices in the generated series (the middle one is used)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--data", help="folder to write the demo study into and reuse next time (default: a temp dir)")
    parser.add_argument("--paint", default="events", choices=C.PAINT_MODES, help="how each frame is painted")
    args = parser.parse_args()

    print(f"window_redraw: {C.environment()}")
    data = C.DemoData(args.data, args.slices, args.size, args.seed)
    try:
        print(f"data: {data.describe()}")
        frame, inverted = load_frame(str(data.folder))
        viewer = C.OffscreenViewer(paint_mode=args.paint)
        viewer.item.setImage(np.zeros(frame.shape, np.uint8), autoLevels=False, levels=(0, 255))
        viewer.viewbox.autoRange(padding=0)
        viewer.app.processEvents()
        fixed = WindowRenderer(frame.dtype, invert=inverted).render(frame, CT_PRESETS[0])

        n = args.frames
        timings, painted = C.interleaved({
            "ours": lambda: run_ours(viewer, frame, inverted, n),
            "baseline": lambda: run_baseline(viewer, frame, n),
            "ours levels=None": lambda: run_ours(viewer, frame, inverted, n, levels=(0, 255), rgba=False),
            "render only": lambda: run_render_only(frame, inverted, n),
            "paint only": lambda: run_paint_only(viewer, fixed, n),
        }, args.repeats, args.warmup)
        for name in ("ours", "baseline", "ours levels=None", "paint only"):
            if painted[name] < n:
                raise SystemExit(f"{name}: only {painted[name]} paints for {n} frames - the paint method does not paint")

        # the same window on screen both ways: how far apart are the grey values?
        window = CT_PRESETS[1]
        viewer.item.setImage(WindowRenderer(frame.dtype, invert=inverted).render(frame, window),
                             autoLevels=False, levels=(0, 255))
        ours_shown = shown_image(viewer)
        viewer.item.setImage(frame, autoLevels=False, levels=window.bounds)
        base_shown = shown_image(viewer)
        diff = np.abs(ours_shown.astype(int) - base_shown.astype(int))

        def fps(name: str, which: str = "best") -> float:
            t = timings[name].best if which == "best" else timings[name].median
            return n / t

        rows = [
            ["OURS: LUT render_rgba + setImage(rgba, levels=None) + paint", f"{fps('ours'):.0f}", f"{fps('ours', 'median'):.0f}",
             f"{1000 / fps('ours'):.2f}"],
            ["BASELINE: setImage(int16, levels) + paint", f"{fps('baseline'):.0f}", f"{fps('baseline', 'median'):.0f}",
             f"{1000 / fps('baseline'):.2f}"],
            ["  variant: 8-bit grey render + setImage(uint8, levels=(0, 255))", f"{fps('ours levels=None'):.0f}",
             f"{fps('ours levels=None', 'median'):.0f}", f"{1000 / fps('ours levels=None'):.2f}"],
            ["  ours: render only (LUT rebuilt every frame)", f"{fps('render only'):.0f}",
             f"{fps('render only', 'median'):.0f}", f"{1000 / fps('render only'):.2f}"],
            ["  floor: setImage(same uint8) + paint", f"{fps('paint only'):.0f}", f"{fps('paint only', 'median'):.0f}",
             f"{1000 / fps('paint only'):.2f}"],
        ]
        print()
        print(f"{n} redraws of a {frame.shape[1]}x{frame.shape[0]} {frame.dtype} slice per run, window changing every "
              f"frame; best and median of {args.repeats} runs after {args.warmup} warm-up; paint: --paint {args.paint} "
              f"(ImageItem.paint ran {painted['ours']}/{n} times for ours, {painted['baseline']}/{n} for baseline)")
        print(C.table(["measurement", "fps best", "fps median", "ms/frame best"], rows))
        ratio = fps("ours") / fps("baseline")
        print(f"ratio ours/baseline (fps, best): {ratio:.2f}; ours {fps('ours'):.0f} fps "
              f"({'meets' if fps('ours') >= 200 else 'MISSES'} the >= 200 fps target)")
        print(f"same window shown both ways ({window.name}): max grey-level difference {diff.max()}, "
              f"{(diff > 0).mean() * 100:.1f}% of pixels differ (DICOM LINEAR window vs pyqtgraph's linear levels)")
    finally:
        data.cleanup()


if __name__ == "__main__":
    main()
