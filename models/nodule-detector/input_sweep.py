"""Measure the shipped detector outside its training protocol: the basis of its input requirements.

    .venv/bin/python models/nodule-detector/input_sweep.py z 0.625 1.0 2.5 5.0     # slice spacing, mm
    .venv/bin/python models/nodule-detector/input_sweep.py xy 0.35 0.5 0.7 1.0 1.4  # pixel spacing, mm

Three held-out randomised phantoms (seeds 7100-7102, 6 nodules each) per setting, run through the
workstation's pipeline at the uncalibrated threshold; prints sensitivity and false positives per scan.
A slice-spacing setting keeps the 300 mm scan length (more or fewer slices); a pixel-spacing one keeps
120 slices and the 358 mm field of view (a larger or smaller matrix). About 1-2 minutes per setting.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from workstation.core.volume import Volume, frame_affine  # noqa: E402
from workstation.demo import make_chest_phantom  # noqa: E402
from workstation.inference import evaluation  # noqa: E402
from workstation.inference.registry import parse_manifest  # noqa: E402

SEEDS = (7100, 7101, 7102)
FOV_MM, LENGTH_MM = 358.4, 300.0


def phantom(axis: str, value: float, seed: int):
    if axis == "z":
        return make_chest_phantom(seed=seed, randomise=True, nodule_count=6, slices=int(round(LENGTH_MM / value)),
                                  size=512, slice_thickness_mm=value)
    return make_chest_phantom(seed=seed, randomise=True, nodule_count=6, slices=120,
                              size=int(round(FOV_MM / value)), pixel_spacing_mm=value)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("axis", choices=("z", "xy"))
    ap.add_argument("values", type=float, nargs="+")
    ap.add_argument("--model-dir", type=Path, default=HERE / "1.1.0")
    opts = ap.parse_args(argv)
    import torch

    from workstation.inference.engine import detect

    torch.set_num_threads(2)
    manifest = parse_manifest(json.loads((opts.model_dir / "manifest.json").read_text()), opts.model_dir.resolve())
    for value in opts.values:
        started, scans = time.time(), []
        for seed in SEEDS:
            ph = phantom(opts.axis, value, seed)
            spacing = (ph.pixel_spacing_mm, ph.pixel_spacing_mm)
            volume = Volume(ph.hu, frame_affine(ph.slice_position_mm(0), (1, 0, 0, 0, 1, 0), spacing,
                                                np.array([0.0, 0.0, ph.slice_thickness_mm])), spacing)
            volume.loaded[:] = True
            found = detect(manifest, volume, "cpu", manifest.raw_threshold)
            scans.append(evaluation.scan_from_phantom(found.candidates, ph, name=str(seed)))
        m = evaluation.evaluate(scans)
        print(f"{opts.axis} {value:g} mm: sensitivity >= 6 mm {m.sensitivity_ge_6mm:.2f}, all {m.sensitivity_all:.2f}, "
              f"false positives per scan {m.false_positives_per_scan:.2f} ({m.nodules} nodules, "
              f"{time.time() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
