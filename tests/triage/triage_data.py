"""Small chest CT series the shipped model accepts (12 slices of 272 x 272 at 0.95 mm: a 258 mm field of view,
2.5 mm apart), with or without planted nodules; written once per session."""

from __future__ import annotations

from pathlib import Path

from workstation.demo.phantom import make_chest_phantom
from workstation.demo.writer import write_ct_series

SLICES, SIZE, SPACING_MM = 12, 272, 0.95


def write_ct(out_dir: Path, seed: int, nodules: int) -> Path:
    """One study with one series; returns its folder. Different seeds give different study UIDs."""
    phantom = make_chest_phantom(seed=seed, slices=SLICES, size=SIZE, nodule_count=nodules, pixel_spacing_mm=SPACING_MM)
    folder = Path(out_dir) / f"ct-{seed}"
    write_ct_series(phantom, folder, seed)
    return folder


def site(port: int, quiet_s: float = 1.0, **extra) -> dict:
    """A site document: STORESCU and ORTHANC may push, chest CTs go to the nodule detector."""
    return {
        "workstation": {"ae_title": "WSTEST", "store_port": port, "bind_address": "127.0.0.1", "id": "ws-triage"},
        "users": {"default_role": "reviewer"},
        "pacs": {"SENDER": {"ae_title": "STORESCU", "host": "127.0.0.1", "port": 104}},
        "routing": {"quiet_s": quiet_s, "rules": [{
            "name": "chest-ct", "modality": "CT", "body_part": "CHEST", "slices": [10, 1000],
            "models": ["nodule-detector"], "priority": 7}]},
        "alerts": {"nodule-detector": 0.6},
        **extra,
    }
