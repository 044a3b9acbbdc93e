"""AI results and reader decisions as standard DICOM objects (built with highdicom), and reading such objects back.

`build_results` makes, for one stored run: the AI result SR (TID 1500), the
reader review SR (after sign-off), a GSPS drawing the boxes and a Parametric
Map of the heatmap. `read_results` turns SR / GSPS / Parametric Map datasets
(ours or another vendor's) into plain `workstation.core.results` values.
"""

from __future__ import annotations

from workstation.core.results import ForeignFindings, Problem
from workstation.results.context import BuiltObject, ContextError, ReviewContext, RunContext, check
from workstation.results.read import read_results
from workstation.results.tracking import content_key, tracking_uid

__all__ = ["BuiltObject", "ContextError", "ForeignFindings", "Problem", "ReviewContext", "RunContext",
           "build_results", "read_results", "tracking_uid"]


def build_results(run: RunContext, review: ReviewContext | None = None, *,
                  compress_pmap: bool = True) -> list[BuiltObject]:
    """The objects for a run, in the order "ai-sr", "review-sr" (signed off only), "gsps", "pmap" (heatmap kept).
    `compress_pmap`: the Parametric Map in JPEG-LS lossless (default; same content and key either way); a PACS that
    takes Parametric Maps only uncompressed gets it decompressed when sent (workstation/net/store_scu.py)."""
    from workstation.results.gsps import build_gsps
    from workstation.results.pmap import build_pmap
    from workstation.results.sr_ai import build_ai_sr
    from workstation.results.speedups import faster_highdicom, paused_gc
    from workstation.results.sr_review import build_review_sr

    check(run)
    base = {"run": run.run_id, "model": [run.model.name, run.model.version, run.model.sha256],
            "device": run.device, "started": run.started_utc, "series": str(run.sources[0].SeriesInstanceUID),
            "workstation": run.workstation_id}
    with paused_gc(), faster_highdicom():
        built = [("ai-sr", *build_ai_sr(run))]
        if review is not None:
            built.append(("review-sr", *build_review_sr(run, review)))
        built.append(("gsps", *build_gsps(run, review)))
        if run.heatmap is not None:
            built.append(("pmap", *build_pmap(run, compressed=compress_pmap)))
    return [BuiltObject(kind, dataset, content_key(kind, {**base, **content})) for kind, dataset, content in built]
