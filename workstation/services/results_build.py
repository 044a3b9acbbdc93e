"""Use case "build the DICOM result objects of a series": its newest stored run, heatmap and sign-off, on its images.

Everything comes from the encrypted store (run, findings, heatmap, the sign-off
entry with every finding's final state) and from the source files' headers, read
in the display set's order, which is the order the heatmap was computed in. The
objects themselves are made by `workstation.results`; this module only gathers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pydicom

from workstation.core.study import Catalog, DisplaySet
from workstation.dicom.scan import scan_paths
from workstation.dicom.sources import open_location
from workstation.results import BuiltObject, ContextError, ReviewContext, RunContext, build_results
from workstation.services.review import run_signoff
from workstation.store.database import Store, StoredRun


class NothingToBuild(LookupError):
    """No stored run for the series, or its images are not among the sources (the message says which)."""


def build_for_series(store: Store, series_instance_uid: str,
                     sources: Catalog | Sequence[str | os.PathLike]) -> list[BuiltObject]:
    """The objects for the series' newest stored run (the review SR only once it is signed off)."""
    run, review = contexts_for_series(store, series_instance_uid, sources)
    return build_results(run, review)


def contexts_for_series(store: Store, series_instance_uid: str,
                        sources: Catalog | Sequence[str | os.PathLike]) -> tuple[RunContext, ReviewContext | None]:
    runs = store.inference_runs(series_instance_uid)
    if not runs:
        raise NothingToBuild(f"no AI run stored for series {series_instance_uid}")
    stored = runs[0]
    catalog = sources if isinstance(sources, Catalog) else scan_paths(list(sources))
    heatmap = store.heatmap(stored.run_id)
    display_set = display_set_for_run(catalog, stored, None if heatmap is None else heatmap.shape[0])
    run = RunContext(sources=[_header(frame.instance.location) for frame in display_set.frames], model=stored.model,
                     device=stored.device, started_utc=stored.started_utc, run_id=stored.run_id,
                     findings=list(stored.findings), heatmap=heatmap, workstation_id=store.identity.workstation_id)
    return run, review_context(store, stored)


def review_context(store: Store, run: StoredRun) -> ReviewContext | None:
    """The sign-off in force for the run (a reopen ends it), with the final states its entry recorded."""
    signoff = run_signoff(store, run)
    if signoff is None:
        return None
    entry = next(e for e in store.feedback(run.series_instance_uid) if e.entry_id == signoff.entry_id)
    return ReviewContext(signed_by=signoff.by, role=signoff.role, signed_at_utc=signoff.at_utc,
                         signoff_entry_id=signoff.entry_id, final_states=list((entry.details or {})["findings"]))


def write_objects(objects: list[BuiltObject], out_dir: str | os.PathLike) -> list[Path]:
    """Each object as OUT/<kind>-<SOP Instance UID>.dcm: names we made (our own new UIDs), never data values."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for built in objects:
        uid = str(built.dataset.SOPInstanceUID)
        if not uid.replace(".", "").isdigit():  # ours are always digits and dots; anything else is a bug
            raise ValueError(f"unexpected SOP Instance UID {uid!r}")
        path = out / f"{built.kind}-{uid}.dcm"
        built.dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def display_set_for_run(catalog: Catalog, run: StoredRun, heat_frames: int | None) -> DisplaySet:
    """The series' display set the run was made on: the one holding its findings' images (and heatmap's frames)."""
    candidates = [d for d in catalog.display_sets if d.series.series_instance_uid == run.series_instance_uid]
    if not candidates:
        raise NothingToBuild(f"the images of series {run.series_instance_uid} are not among the given files")
    wanted = {f.sop_instance_uid for f in run.findings if f.sop_instance_uid}
    for display_set in candidates:
        uids = {frame.instance.sop_instance_uid for frame in display_set.frames}
        if wanted <= uids and heat_frames in (None, len(display_set.frames)):
            return display_set
    raise ContextError(f"no display set of series {run.series_instance_uid} matches the stored run "
                       "(its images or frame count differ)")


def _header(location) -> pydicom.Dataset:
    with open_location(location) as stream:
        return pydicom.dcmread(stream, stop_before_pixels=True)
