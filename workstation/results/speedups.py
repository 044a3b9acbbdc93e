"""Two of highdicom's look-ups done faster while we build, with the same results; no cyclic GC meanwhile.

Profiling `build_results` for a 500-slice series with 20 findings (bench/results.py)
showed two pure functions of highdicom costing about a third of the time:

- `is_attribute_in_iod(attribute, sop_class_uid)` walks the standard's module tables
  on every call (~0.4 ms); highdicom asks it for each referenced image (is it
  multi-frame?) and each region: 500+ times per object for the same SOP class.
  Here its answers are remembered per (attribute, SOP class, excluded path).
- An SR's `collect_evidence(evidence, content)` finds the IMAGE and COMPOSITE items
  of the content tree by turning *every* content item into highdicom objects
  (~0.1 s for 20 findings). Here the tree is walked directly and highdicom's own
  `collect_evidence` runs on just those items, so the evidence it groups, and its
  check that every referenced image is in the evidence, are unchanged.

`faster_highdicom()` swaps them in for the duration of a build (nested and
concurrent builds share one swap) and restores highdicom's own functions after.
Where highdicom lacks these names (another version), nothing is swapped. The
tests build the objects with and without it and compare them element for element.

`paused_gc()`: a build makes some 10^6 small objects (pydicom elements, highdicom
content items), which sets off Python's cyclic garbage collector again and again,
and each full pass walks every object alive in the process (the source headers,
highdicom's tables of the standard, the app's own): 20-30 % of the build time.
Nothing a build makes needs collecting before it ends (reference counting frees
what is dropped), so collection waits until the build returns.
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pydicom.dataset import Dataset

_lock = threading.Lock()
_users = 0
_gc_users = 0
_gc_was_enabled = False
_saved: list[tuple[object, str, object]] = []
ENABLED = True  # tests switch it off to compare with highdicom's own functions


@functools.lru_cache(maxsize=1)
def _targets() -> list[tuple[object, str, object]]:
    """(module, name, replacement) for each swap this highdicom allows (made once: the cache lives on)."""
    try:
        import highdicom._standard_utils as standard_utils
        import highdicom.base as base
        import highdicom.sr.content as sr_content
        import highdicom.sr.sop as sr_sop
    except ImportError:
        return []
    targets: list[tuple[object, str, object]] = []
    original_iod = getattr(standard_utils, "is_attribute_in_iod", None)
    if callable(original_iod):
        cached = _cached_is_attribute_in_iod(original_iod)
        targets += [(module, "is_attribute_in_iod", cached) for module in (standard_utils, base, sr_content)
                    if getattr(module, "is_attribute_in_iod", None) is original_iod]
    original_evidence = getattr(sr_sop, "collect_evidence", None)
    if callable(original_evidence):
        targets.append((sr_sop, "collect_evidence", _direct_collect_evidence(original_evidence)))
    return targets


def _cached_is_attribute_in_iod(original):
    @functools.lru_cache(maxsize=4096)
    def answer(attribute: str, sop_class_uid: str, exclude: tuple[str, ...] | None) -> bool:
        return original(attribute, sop_class_uid, None if exclude is None else list(exclude))

    @functools.wraps(original)
    def is_attribute_in_iod(attribute, sop_class_uid, exclude_path_elements=None):
        exclude = None if exclude_path_elements is None else tuple(exclude_path_elements)
        return answer(str(attribute), str(sop_class_uid), exclude)

    return is_attribute_in_iod


def referenced_items(content: Dataset) -> list[Dataset]:
    """The IMAGE and COMPOSITE content items anywhere below `content` (what highdicom's recursive search finds)."""
    found: list[Dataset] = []
    stack = [content]
    while stack:
        node = stack.pop()
        for item in node.get("ContentSequence", None) or []:
            if item.get("ValueType", None) in ("IMAGE", "COMPOSITE"):
                found.append(item)
            if "ContentSequence" in item:
                stack.append(item)
    return found


def _direct_collect_evidence(original):
    @functools.wraps(original)
    def collect_evidence(evidence, content, study_instance_uid=None):
        if not hasattr(content, "ContentSequence"):
            return original(evidence, content, study_instance_uid=study_instance_uid)
        references = Dataset()
        references.ContentSequence = referenced_items(content)  # the same items, read only
        return original(evidence, references, study_instance_uid=study_instance_uid)

    return collect_evidence


@contextmanager
def faster_highdicom() -> Iterator[None]:
    global _users
    with _lock:
        if _users == 0 and ENABLED:
            for module, name, replacement in _targets():
                _saved.append((module, name, getattr(module, name)))
                setattr(module, name, replacement)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                while _saved:
                    module, name, original = _saved.pop()
                    setattr(module, name, original)


@contextmanager
def paused_gc() -> Iterator[None]:
    """No automatic cyclic garbage collection inside (nested and concurrent builds share one pause); Python's
    setting as it was afterwards."""
    global _gc_users, _gc_was_enabled
    with _lock:
        if _gc_users == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_users += 1
    try:
        yield
    finally:
        with _lock:
            _gc_users -= 1
            if _gc_users == 0 and _gc_was_enabled:
                gc.enable()
