#!/usr/bin/env python
"""Benchmark: AI inference per 512x512 slice and per 120-slice series, against a bare forward pass.

OURS      the engine the viewer and `workstation infer` use: `engine.run_model` = preprocessing
          (window, resample, 2.5-D stacking) + batched forward passes + heatmap back to the image
          grid + 3-D connected components -> candidates.
BASELINE  a plain torch forward pass of the same network on an input tensor of the same shape,
          already on the device (no preprocessing, no post-processing), same batch size.

The ratio ours/baseline is the pipeline's overhead (target <= 1.2). CPU always; CUDA as well when present.

    .venv/bin/python bench/inference.py [--slices 120] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import _common as C
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--model", default="nodule-detector")
    args = parser.parse_args()

    import torch

    from workstation.core.volume import Volume, frame_affine
    from workstation.demo import make_chest_phantom
    from workstation.inference import engine
    from workstation.inference.preprocess import Preprocessing, prepare_volume
    from workstation.inference.registry import find_model, load_manifests, verify_weights

    torch.set_num_threads(torch.get_num_threads())
    manifests, _ = load_manifests()
    manifest = find_model(manifests, args.model)
    verify_weights(manifest)
    phantom = make_chest_phantom(seed=4242, slices=args.slices, size=512)
    spacing = (phantom.pixel_spacing_mm, phantom.pixel_spacing_mm)
    affine = frame_affine(phantom.origin_mm, (1, 0, 0, 0, 1, 0), spacing, np.array([0, 0, phantom.slice_thickness_mm]))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"inference: {C.environment()}; torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"model {manifest.ref}; phantom {args.slices} x 512 x 512; best and median of {args.repeats} after {args.warmup} warm-up")
    rows = []
    for device in devices:
        network = engine.network_for(manifest, device)
        pre = Preprocessing.from_dict(manifest.preprocessing)
        for frames in (1, args.slices):
            volume = Volume(phantom.hu[:frames].copy(), affine, spacing)
            volume.loaded[:] = True
            shape = prepare_volume(volume.array[:1], spacing, pre, phantom.slice_thickness_mm).shape[1:]
            bare_input = torch.rand((frames, *shape), device=device)

            def ours():
                return engine.run_model(manifest, volume, device)

            def bare():
                with torch.inference_mode():
                    for start in range(0, frames, 16):
                        out = torch.sigmoid(network(bare_input[start:start + 16]))
                    if device == "cuda":
                        torch.cuda.synchronize()
                return out

            timings, results = C.interleaved({"ours": ours, "bare": bare}, args.repeats, args.warmup)
            label = "one 512x512 slice" if frames == 1 else f"{frames}-slice series"
            ratio_best = timings["ours"].best / timings["bare"].best
            ratio_median = timings["ours"].median / timings["bare"].median
            rows.append([f"{device}: {label}", C.seconds(timings["ours"].best), C.seconds(timings["ours"].median),
                         C.seconds(timings["bare"].best), C.seconds(timings["bare"].median),
                         f"{ratio_best:.2f}", f"{ratio_median:.2f}"])
            if frames == args.slices:
                rows.append([f"{device}: per slice in the series", C.seconds(timings["ours"].best / frames), "",
                             C.seconds(timings["bare"].best / frames), "", "", ""])
    print(C.table(["measurement", "ours best", "ours median", "bare forward best", "bare median",
                   "overhead best", "overhead median"], rows))
    print("overhead = ours / bare forward pass (target <= 1.2)")


if __name__ == "__main__":
    main()
