"""Calibrate the nodule detector's finding scores on held-out phantoms (weights untouched).

    .venv/bin/python models/nodule-detector/calibrate.py              # writes the manifest of 1.1.0/
    .venv/bin/python models/nodule-detector/calibrate.py --quick      # smoke run, prints, writes nothing

The raw score of a candidate (its peak heatmap probability) reads 1.00 almost
always. This script runs the workstation's own pipeline (``engine.detect``) on
phantoms from seeds used neither in training [1000, 1140) nor in validation
[5000, 5020), labels every candidate (a hit on a nodule, or not), fits
sigmoid(peak_logit / T + b) by maximum likelihood, measures the expected
calibration error before and after on the validation phantoms (never used for
the fit), and writes the calibration, the threshold re-expressed on the
calibrated scale (the same findings as before) and the figures into the
manifest. Deterministic: no random numbers beyond the phantoms' seeds; about
10 minutes on two CPU cores (630 s measured).
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
from workstation.inference import calibration as cal  # noqa: E402
from workstation.inference import evaluation  # noqa: E402
from workstation.inference.registry import parse_manifest  # noqa: E402

VERSION = "1.1.0"
PHANTOM = dict(slices=120, size=512, slice_thickness_mm=2.5)  # as in training and validation
FIT_SEEDS = {"randomise": (6000, 6010), "default_anatomy": (6010, 6020)}  # [first, end)
EVAL_SEEDS = {"randomise": (5000, 5010), "default_anatomy": (5010, 5020)}  # the validation phantoms
TRAIN_SEEDS = (1000, 1140)
METHOD = "platt"
BINNING = (f"{cal.ECE_BINS} equal-width bins on [0, 1] (the last closed); ECE = sum over bins of "
           "(share of findings in the bin) x |fraction that are real nodules - mean score|")
LABEL_RULE = ("a candidate is a real nodule when its centre lies within max(radius, 5 mm) of a nodule not "
              "already found by a higher-scoring candidate (evaluation.match_scan); duplicates count as false")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def seeds_of(groups: dict[str, tuple[int, int]]) -> list[tuple[int, bool]]:
    return [(s, name == "randomise") for name, (a, b) in groups.items() for s in range(a, b)]


def candidates_of(manifest, seed: int, randomise: bool, floor: float) -> list[dict]:
    """Every candidate the shipped pipeline finds down to ``floor``, with its peak logit and label."""
    from workstation.inference.engine import detect

    ph = make_chest_phantom(seed=seed, randomise=randomise, **PHANTOM)
    spacing = (ph.pixel_spacing_mm, ph.pixel_spacing_mm)
    affine = frame_affine(ph.slice_position_mm(0), (1, 0, 0, 0, 1, 0), spacing,
                          np.array([0.0, 0.0, ph.slice_thickness_mm]))
    volume = Volume(ph.hu, affine, spacing)
    volume.loaded[:] = True
    found = detect(manifest, volume, "cpu", floor)
    scan = evaluation.scan_from_phantom(found.candidates, ph, name=str(seed))
    kinds = evaluation.match_scan(scan.detections, scan.truths).kinds
    return [{"seed": seed, "raw_score": float(c.score), "logit": float(logit), "real": kind == "hit"}
            for c, logit, kind in zip(found.candidates, found.peak_logits, kinds)]


def collect(manifest, groups: dict, floor: float, what: str) -> list[dict]:
    rows = []
    for seed, randomise in seeds_of(groups):
        part = candidates_of(manifest, seed, randomise, floor)
        rows.extend(part)
        log(f"  {what} seed {seed}: " + ", ".join(f"{r['logit']:.1f}{'+' if r['real'] else '-'}" for r in part))
    return rows


def figures(rows: list[dict], calibration: cal.Calibration, raw_threshold: float) -> dict:
    """ECE (and log loss, Brier score) before (raw peak probability, 1.0.0's score) and after, over the
    reported findings and over every candidate."""
    out = {}
    for name, keep in (("reported_findings", lambda r: r["raw_score"] >= raw_threshold),
                       ("all_candidates", lambda r: True)):
        sel = [r for r in rows if keep(r)]
        real = np.array([r["real"] for r in sel], bool)
        before = np.array([r["raw_score"] for r in sel])
        after = calibration.apply(np.array([r["logit"] for r in sel]))
        out[name] = {"count": len(sel), "real": int(real.sum())}
        for label, scores in (("before", before), ("after", after)):
            out[name][f"ece_{label}"] = round(cal.expected_calibration_error(scores, real), 4)
            out[name][f"log_loss_{label}"] = round(_log_loss(scores, real), 4)
            out[name][f"brier_{label}"] = round(float(np.mean((scores - real) ** 2)), 4)
        out[name]["reliability_before"] = _table(before, real)
        out[name]["reliability_after"] = _table(after, real)
    return out


def _log_loss(scores: np.ndarray, real: np.ndarray) -> float:
    p = np.clip(scores, 1e-7, 1 - 1e-7)  # a raw score of exactly 1.0 on a false finding: bounded, not infinite
    return float(-np.mean(np.where(real, np.log(p), np.log1p(-p))))


def _table(scores: np.ndarray, real: np.ndarray) -> list[dict]:
    return [{**row, "mean_score": round(row["mean_score"], 4), "fraction_true": round(row["fraction_true"], 4)}
            for row in cal.reliability(scores, real)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=HERE / VERSION)
    ap.add_argument("--quick", action="store_true", help="two phantoms per set; prints, writes nothing")
    ap.add_argument("--candidates", type=Path, help="JSON file caching the labelled candidates (reused if present)")
    opts = ap.parse_args(argv)
    started = time.time()
    import torch

    torch.set_num_threads(2)
    path = opts.model_dir / "manifest.json"
    data = json.loads(path.read_text())
    manifest = parse_manifest(data, opts.model_dir.resolve())
    raw_threshold = (data.get("calibration") or {}).get("uncalibrated_threshold", data["threshold"])
    floor = float(data["postprocessing"]["region_threshold"])  # every component post-processing can report
    fit_groups = {k: (a, a + 1) for k, (a, _) in FIT_SEEDS.items()} if opts.quick else FIT_SEEDS
    eval_groups = {k: (a, a + 1) for k, (a, _) in EVAL_SEEDS.items()} if opts.quick else EVAL_SEEDS
    fit_seeds = {s for s, _ in seeds_of(fit_groups)}
    assert not fit_seeds & set(range(*TRAIN_SEEDS)), "calibration seeds overlap the training seeds"
    assert not fit_seeds & {s for s, _ in seeds_of(EVAL_SEEDS)}, "calibration seeds overlap the validation seeds"

    if opts.candidates and opts.candidates.is_file():
        cached = json.loads(opts.candidates.read_text())
        fit_rows, eval_rows, seconds = cached["fit"], cached["eval"], cached["seconds"]
    else:
        log(f"{manifest.ref}: candidates down to {floor} on {len(fit_seeds)} calibration phantoms")
        fit_rows = collect(manifest, fit_groups, floor, "fit")
        log(f"and on {len(seeds_of(eval_groups))} validation phantoms")
        eval_rows = collect(manifest, eval_groups, floor, "validation")
        seconds = time.time() - started
        if opts.candidates:
            opts.candidates.write_text(json.dumps({"fit": fit_rows, "eval": eval_rows, "seconds": seconds}))

    logits = np.array([r["logit"] for r in fit_rows])
    real = np.array([r["real"] for r in fit_rows], bool)
    calibration = cal.fit(logits, real, METHOD)
    threshold = calibration.apply(cal.logit(raw_threshold))
    held_out = figures(eval_rows, calibration, raw_threshold)
    in_sample = figures(fit_rows, calibration, raw_threshold)
    other = "temperature" if METHOD == "platt" else "platt"
    alternative = figures(eval_rows, cal.fit(logits, real, other), raw_threshold)["reported_findings"]
    log(f"fitted {calibration}; threshold {raw_threshold} -> {threshold:.4f}")
    for name, block in (("validation (held out)", held_out), ("calibration set", in_sample)):
        for population, f in block.items():
            log(f"  {name}, {population}: {f['count']} ({f['real']} real) ECE {f['ece_before']} -> "
                f"{f['ece_after']}, log loss {f['log_loss_before']} -> {f['log_loss_after']}, "
                f"Brier {f['brier_before']} -> {f['brier_after']}")
    log(f"  {other} scaling instead, held out, reported: ECE {alternative['ece_after']}, "
        f"log loss {alternative['log_loss_after']}, Brier {alternative['brier_after']}")
    if opts.quick:
        return 0

    data["threshold"] = threshold
    data["calibration"] = {
        **calibration.to_dict(),
        "applies_to": "finding scores: score = sigmoid(peak_logit / temperature + bias), peak_logit = the logit of "
                      "the heatmap at the candidate's peak voxel; the heatmap itself stays uncalibrated",
        "meaning": "probability that a finding is a real nodule, on phantoms like the calibration set",
        "uncalibrated_threshold": raw_threshold,
        "label": LABEL_RULE,
        "fitted_on": {"generator": "workstation.demo.make_chest_phantom", "parameters": PHANTOM,
                      "seeds": {k: list(v) for k, v in FIT_SEEDS.items()}, "seeds_note": "[first, end)",
                      "phantoms": len(fit_seeds), "candidates": len(fit_rows), "real": int(real.sum()),
                      "candidate_floor": floor},
        "script": "models/nodule-detector/calibrate.py",
        "seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
    }
    validation = data["validation"]
    validation["threshold"] = threshold
    validation["threshold_uncalibrated"] = raw_threshold
    validation["calibration"] = {
        "ece_binning": BINNING,
        "scores_before": "raw peak probability of the heatmap (1.0.0's scores)",
        "held_out": {"seeds": validation["seeds"], **held_out},
        "calibration_set_in_sample": {k: {kk: vv for kk, vv in v.items() if not kk.startswith("reliability")}
                                      for k, v in in_sample.items()},
        f"{other}_scaling_instead_held_out": {k: v for k, v in alternative.items()
                                              if k.endswith("_after") and not k.startswith("reliability")},
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    log(f"wrote {path} in {seconds:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
