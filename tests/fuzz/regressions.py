"""Fuzz cases that once failed, kept small: each file as the bytes where it differs from its seed.

A case is one JSON file in tests/data/fuzz-regressions/ (named by the generator's generation and the
case id, which name different bytes in different generations): the case id, mutator, the class and
first line of what went wrong when it was found, and per file either the whole file
(xz, base64) or its seed's name and sha256 with the differing middle part (xz, base64).
Seeds are pydicom's test files and the generated demo series (deterministic), so a
case is rebuilt byte for byte; a changed seed fails loudly rather than testing something else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import lzma
from pathlib import Path

from fuzz_cases import GENERATION, Case, Seeds

FOLDER = Path(__file__).resolve().parent.parent / "data" / "fuzz-regressions"


def _pack(data: bytes) -> str:
    return base64.b64encode(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)).decode("ascii")


def _unpack(text: str) -> bytes:
    return lzma.decompress(base64.b64decode(text))


def _references(seeds: Seeds, case: Case) -> dict[str, bytes]:
    found = {f"demo:{k}": data for k, data in enumerate(seeds.demo)}
    if case.seed_name in seeds.files:
        found[case.seed_name] = seeds.files[case.seed_name]
    return found


def _delta(data: bytes, reference: bytes) -> tuple[int, int]:
    prefix = 0
    limit = min(len(data), len(reference))
    while prefix < limit and data[prefix] == reference[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and data[-1 - suffix] == reference[-1 - suffix]:
        suffix += 1
    return prefix, suffix


def save(case: Case, kind: str, detail: str, seeds: Seeds, folder: Path = FOLDER) -> Path:
    """Write `case` as a regression (the smallest description of each file)."""
    files = {}
    for name, data in case.files.items():
        best = {"xz": _pack(data)}
        for ref_name, reference in _references(seeds, case).items():
            prefix, suffix = _delta(data, reference)
            entry = {"seed": ref_name, "sha256": hashlib.sha256(reference).hexdigest(), "prefix": prefix,
                     "suffix": suffix, "middle_xz": _pack(data[prefix:len(data) - suffix])}
            if len(entry["middle_xz"]) < len(best.get("xz", best.get("middle_xz", ""))):
                best = entry
        files[name] = best
    first = detail.strip().splitlines()[0][:200] if detail.strip() else ""
    record = {"case": case.case_id, "mutator": case.mutator, "seed": case.seed_name, "class": kind,
              "detail": first, "files": files}
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"g{GENERATION}-{case.case_id}.json"  # ids name other cases in another generation
    target.write_text(json.dumps(record, indent=1) + "\n")
    return target


def load(seeds: Seeds, folder: Path = FOLDER) -> list[tuple[Case, dict]]:
    """Every kept case, rebuilt: (case, its record)."""
    out = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        case = Case(path.stem, record["mutator"], record["seed"])
        references = _references(seeds, case)
        for name, entry in record["files"].items():
            if "xz" in entry:
                case.files[name] = _unpack(entry["xz"])
                continue
            reference = references.get(entry["seed"])
            if reference is None or hashlib.sha256(reference).hexdigest() != entry["sha256"]:
                raise RuntimeError(f"{path.name}: seed {entry['seed']} is missing or changed; regenerate this case")
            tail = reference[len(reference) - entry["suffix"]:] if entry["suffix"] else b""
            case.files[name] = reference[:entry["prefix"]] + _unpack(entry["middle_xz"]) + tail
        out.append((case, record))
    return out
