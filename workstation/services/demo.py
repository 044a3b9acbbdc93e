"""The bundled demo study: generated once, deterministically, into the user's cache directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from platformdirs import user_cache_dir

from workstation.demo import write_demo_study
from workstation.demo.writer import GROUND_TRUTH_NAME, IMAGE_FOLDER

DEMO_SEED = 7
DEMO_VERSION = 2


def demo_dir() -> Path:
    base = os.environ.get("WORKSTATION_CACHE_DIR") or user_cache_dir("workstation", appauthor=False)
    return Path(base) / f"demo-ct-seed{DEMO_SEED}-v{DEMO_VERSION}"


def ensure_demo_study() -> Path:
    """The demo study's image folder, writing it first if missing (atomic: a half-written study is never used)."""
    target = demo_dir()
    images = target / IMAGE_FOLDER
    if (target / GROUND_TRUTH_NAME).is_file():
        return images
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".demo-", dir=target.parent))
    try:
        write_demo_study(staging, seed=DEMO_SEED)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return images
