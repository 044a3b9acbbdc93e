"""The faster highdicom look-ups used while building (workstation/results/speedups.py) change nothing: the objects
are the same element for element as with highdicom's own functions, and those are back in place afterwards."""

from __future__ import annotations

import highdicom._standard_utils as standard_utils
import highdicom.sr.sop as sr_sop
import pytest
from highdicom.sr.enum import ValueTypeValues
from highdicom.sr.utils import collect_evidence, find_content_items
from test_results_roundtrip import normalised

from workstation.results import build_results, speedups


@pytest.fixture
def plain_highdicom():
    speedups.ENABLED = False
    try:
        yield
    finally:
        speedups.ENABLED = True


def test_objects_are_the_same_with_and_without_the_faster_look_ups(contexts, built, plain_highdicom):
    plain = build_results(*contexts)
    assert [(b.kind, b.content_key) for b in plain] == [(b.kind, b.content_key) for b in built]
    for fast, slow in zip(built, plain):
        assert normalised(fast.dataset) == normalised(slow.dataset), fast.kind


def test_highdicom_functions_are_restored_after_a_build(contexts):
    before = (standard_utils.is_attribute_in_iod, sr_sop.collect_evidence)
    with speedups.faster_highdicom():
        assert sr_sop.collect_evidence is not before[1]
        with speedups.faster_highdicom():  # nested builds share the swap
            pass
        assert standard_utils.is_attribute_in_iod is not before[0]
    build_results(*contexts)
    assert (standard_utils.is_attribute_in_iod, sr_sop.collect_evidence) == before


def test_the_direct_walk_finds_what_highdicom_finds_and_the_evidence_is_the_same(built, sources):
    for b in built:
        if b.kind not in ("ai-sr", "review-sr"):
            continue
        content = b.dataset
        slow = [*find_content_items(content, value_type=ValueTypeValues.IMAGE, recursive=True),
                *find_content_items(content, value_type=ValueTypeValues.COMPOSITE, recursive=True)]
        fast = speedups.referenced_items(content)
        assert sorted(map(id, fast)) == sorted(map(id, slow)) and fast
        with speedups.faster_highdicom():
            quick = sr_sop.collect_evidence(sources, content, study_instance_uid=content.StudyInstanceUID)
        assert quick == collect_evidence(sources, content, study_instance_uid=content.StudyInstanceUID)


def test_a_cached_answer_is_highdicom_s_answer():
    ct, sr = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.88.34"
    original = standard_utils.is_attribute_in_iod
    with speedups.faster_highdicom():
        for attribute, sop_class in (("NumberOfFrames", ct), ("PixelData", ct), ("ContentDate", sr),
                                     ("NumberOfFrames", sr)):
            for _ in range(2):
                assert standard_utils.is_attribute_in_iod(attribute, sop_class) == original(attribute, sop_class)
        assert standard_utils.is_attribute_in_iod("PixelData", ct, ["IconImageSequence"]) == original(
            "PixelData", ct, exclude_path_elements=["IconImageSequence"])


def test_garbage_collection_waits_during_a_build_and_is_as_it_was_after(contexts, monkeypatch):
    import gc

    seen = []
    real = speedups.faster_highdicom

    def watching():
        seen.append(gc.isenabled())
        return real()

    monkeypatch.setattr(speedups, "faster_highdicom", watching)
    assert gc.isenabled()
    build_results(*contexts)
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        with speedups.paused_gc():
            with speedups.paused_gc():
                pass
        assert not gc.isenabled()  # a caller that had switched it off keeps it off
    finally:
        gc.enable()
