"""Read result objects back: SR (TID 1500), GSPS and Parametric Map datasets -> plain values, never an exception.

Any dataset may come in (a whole study): images and other objects are passed
over silently, result objects that cannot be used become a Problem naming the
object and the reason, because a damaged object from another vendor must never
stop a study from opening.
"""

from __future__ import annotations

import logging

import pydicom
from pydicom.uid import UID

from workstation.core.results import ForeignFindings, Problem
from workstation.results.read_gsps import read_gsps
from workstation.results.read_pmap import read_pmap
from workstation.results.read_sr import OTHER_DOCUMENTS, SR_CLASSES, Unusable, read_sr
from workstation.results.spatial import planes_of

log = logging.getLogger(__name__)

GSPS = UID("1.2.840.10008.5.1.4.1.1.11.1")
PARAMETRIC_MAP = UID("1.2.840.10008.5.1.4.1.1.30")
_WHAT = {GSPS: "presentation state", PARAMETRIC_MAP: "parametric map"}


def read_results(datasets: list[pydicom.Dataset]) -> tuple[list[ForeignFindings], list[Problem]]:
    results: list[ForeignFindings] = []
    problems: list[Problem] = []
    planes = None
    for ds in datasets:
        sop_class = UID(str(ds.get("SOPClassUID", "")))
        sop_uid = str(ds.get("SOPInstanceUID", "") or "")
        try:
            if sop_class in SR_CLASSES or sop_class in OTHER_DOCUMENTS:
                if planes is None:
                    planes = planes_of(datasets)  # only needed to place 3-D regions
                results.append(read_sr(ds, planes))
            elif sop_class == GSPS:
                results.append(read_gsps(ds))
            elif sop_class == PARAMETRIC_MAP:
                results.append(read_pmap(ds))
        except Unusable as exc:
            problems.append(Problem(f"structured report not shown: {exc}", sop_uid))
        except Exception as exc:  # noqa: BLE001 - damaged data raises anything; it must become a Problem
            log.info("result object %s unusable", sop_uid, exc_info=True)
            what = _WHAT.get(sop_class, "structured report")
            problems.append(Problem(f"{what} not shown: {_one_line(exc)}", sop_uid))
    return results, problems


def _one_line(exc: BaseException) -> str:
    """The exception's first line, short (highdicom appends whole dataset dumps to some messages)."""
    lines = str(exc).strip().splitlines()
    text = lines[0].rstrip(":") if lines else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__
