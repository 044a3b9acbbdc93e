"""Versioned models under `models/<name>/<version>/`: declarative manifests, checked weights.

A manifest is data (JSON) and only data: it names an architecture from a fixed
table in the package, never code to import or run. Weights are used only if
their sha256 matches the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workstation.inference.calibration import Calibration, parse_calibration
from workstation.inference.requirements import InputRequirements, SeriesGeometry, parse_requirements

FORMAT = "workstation.model-manifest/1"
ENV_VAR = "WORKSTATION_MODELS"
VERSION = re.compile(r"^\d+\.\d+\.\d+$")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
KNOWN_ARCHITECTURES = {"heatmap-unet/1"}


class ModelError(Exception):
    """A model that cannot be used, and why, in words for the user."""


@dataclass(frozen=True)
class ModelManifest:
    name: str
    version: str
    task: str
    architecture: str
    architecture_params: dict[str, Any]
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    preprocessing: dict[str, Any]
    labels: tuple[str, ...]
    threshold: float  # on the score scale: the calibrated one when the manifest has a calibration
    weights_file: str
    weights_sha256: str
    intended_use: str
    directory: Path
    input_requirements: InputRequirements | None = None  # None: the manifest predates them, nothing checked
    calibration: Calibration | None = None  # None: scores are the raw peak probabilities
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def weights_path(self) -> Path:
        return self.directory / self.weights_file

    def accepts(self, modality: str, body_part: str) -> str | None:
        """None if the model accepts such a series, else the reason it does not."""
        if modality.upper() not in self.modalities:
            return f"{self.ref} accepts {', '.join(self.modalities)} images, not {modality or 'unknown modality'}"
        if self.body_parts and body_part and body_part.upper() not in self.body_parts:
            return f"{self.ref} accepts {', '.join(self.body_parts)}, not {body_part}"
        return None

    def refusal(self, modality: str, body_part: str, geometry: SeriesGeometry | None) -> str | None:
        """None if the model may read such a series, else every reason it may not."""
        reason = self.accepts(modality, body_part)
        if reason or geometry is None or self.input_requirements is None:
            return reason
        problems = self.input_requirements.check(geometry)
        return f"{self.ref} {'; '.join(problems)}" if problems else None

    @property
    def raw_threshold(self) -> float:
        """The threshold as a peak probability of the heatmap (what post-processing compares)."""
        return self.calibration.raw_threshold(self.threshold) if self.calibration else self.threshold


def default_root() -> Path:
    """$WORKSTATION_MODELS; else the checkout's models/ (run from source); else the installed copy
    (<sys.prefix>/share/workstation/models, where the offline installer puts them)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "models").is_dir():
        return checkout / "models"
    return Path(sys.prefix) / "share" / "workstation" / "models"


def load_manifests(root: Path | None = None) -> tuple[list[ModelManifest], list[str]]:
    """Every valid manifest under `root`, newest version first per name; and the problems with the others."""
    root = root or default_root()
    manifests, problems = [], []
    for path in sorted(root.glob("*/*/manifest.json")) if root.is_dir() else []:
        try:
            manifests.append(parse_manifest(json.loads(path.read_text(encoding="utf-8")), path.parent))
        except (OSError, ValueError, ModelError) as exc:
            problems.append(f"{path}: {exc}")
    manifests.sort(key=lambda m: (m.name, [-int(p) for p in m.version.split(".")]))
    return manifests, problems


def parse_manifest(data: dict[str, Any], directory: Path) -> ModelManifest:
    if data.get("format") != FORMAT:
        raise ModelError(f"format must be {FORMAT!r}")
    name, version = _text(data, "name"), _text(data, "version")
    if not NAME.match(name):
        raise ModelError("name: lower-case letters, digits, '.', '_' and '-' only")
    if not VERSION.match(version):
        raise ModelError("version: must be MAJOR.MINOR.PATCH")
    if directory.name != version or directory.parent.name != name:
        raise ModelError(f"lives in {directory}, expected models/{name}/{version}/")
    architecture = _text(data, "architecture")
    if architecture not in KNOWN_ARCHITECTURES:
        raise ModelError(f"architecture {architecture!r} is not one this workstation provides")
    weights = data.get("weights") or {}
    weights_file, sha = str(weights.get("file", "")), str(weights.get("sha256", "")).lower()
    if not weights_file or "/" in weights_file or "\\" in weights_file or weights_file.startswith("."):
        raise ModelError("weights.file: a plain file name beside the manifest is required")
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ModelError("weights.sha256: 64 hex digits required")
    accepts = data.get("accepts") or {}
    threshold = data.get("threshold")
    if not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise ModelError("threshold: a number between 0 and 1 is required")
    try:
        requirements = parse_requirements(data.get("input_requirements"))
        calibration = parse_calibration(data.get("calibration"))
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    _check_uncalibrated_threshold(data, calibration, float(threshold))
    return ModelManifest(
        name=name, version=version, task=_text(data, "task"), architecture=architecture,
        architecture_params=dict(data.get("architecture_params") or {}),
        modalities=tuple(str(m).upper() for m in accepts.get("modalities") or ()),
        body_parts=tuple(str(b).upper() for b in accepts.get("body_parts") or ()),
        preprocessing=dict(data.get("preprocessing") or {}),
        labels=tuple(str(label) for label in data.get("labels") or ("finding",)),
        threshold=float(threshold), weights_file=weights_file, weights_sha256=sha,
        intended_use=_text(data, "intended_use"), directory=directory,
        input_requirements=requirements, calibration=calibration, raw=data,
    )


def _check_uncalibrated_threshold(data: dict[str, Any], calibration: Calibration | None, threshold: float) -> None:
    """A stated raw threshold must be what the calibrated one maps back to: a hand edit of one alone is caught."""
    stated = (data.get("calibration") or {}).get("uncalibrated_threshold")
    if calibration is None or stated is None:
        return
    if not isinstance(stated, (int, float)) or abs(calibration.raw_threshold(threshold) - stated) > 1e-6:
        raise ModelError(f"threshold {threshold} maps back to {calibration.raw_threshold(threshold):.6f} "
                         f"uncalibrated, not to calibration.uncalibrated_threshold {stated}")


def verify_weights(manifest: ModelManifest) -> Path:
    """The weights file, after checking it is the one the manifest describes."""
    path = manifest.weights_path
    if not path.is_file():
        raise ModelError(f"{manifest.ref}: weights file {path.name} is missing")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != manifest.weights_sha256:
        raise ModelError(f"{manifest.ref}: weights do not match their sha256 (expected {manifest.weights_sha256[:12]}…, "
                         f"found {digest.hexdigest()[:12]}…); refusing to run a modified or corrupt model")
    return path


def find_model(manifests: list[ModelManifest], spec: str) -> ModelManifest:
    """`name` (newest version) or `name:version`."""
    name, _, version = spec.partition(":")
    matching = [m for m in manifests if m.name == name and (not version or m.version == version)]
    if not matching:
        known = ", ".join(m.ref for m in manifests) or "none installed"
        raise ModelError(f"no model {spec!r} (available: {known})")
    return matching[0]


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ModelError(f"{key}: a non-empty string is required")
    return value.strip()
