"""The retrieval cache: workstation-made names, no duplicates, least-recently-opened eviction."""

from __future__ import annotations

import io
import time

import pydicom
import pytest
from pydicom.data import get_testdata_file

from workstation.dicom.cache import CacheError, StudyCache


def encoded(path, **changes) -> bytes:
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


CT = get_testdata_file("CT_small.dcm", download=False)


def test_names_are_hashes_never_uids(tmp_path):
    cache = StudyCache(tmp_path, 10**9)
    hostile = encoded(CT, StudyInstanceUID="../../../../etc", SOPInstanceUID="/tmp/evil.dcm")
    stored = cache.store(hostile)
    assert stored.new and stored.path.is_file()
    assert tmp_path in stored.path.parents and len(stored.path.relative_to(tmp_path).parts) == 3
    assert "etc" not in str(stored.path) and "evil" not in str(stored.path)
    assert pydicom.dcmread(stored.path).SOPInstanceUID == "/tmp/evil.dcm"


def test_the_same_instance_is_stored_once(tmp_path):
    cache = StudyCache(tmp_path, 10**9)
    first, again = cache.store(encoded(CT)), cache.store(encoded(CT))
    assert first.new and not again.new and first.path == again.path
    assert len(list(cache.study_dir(first.study_instance_uid).glob("*.dcm"))) == 1


def test_not_dicom_is_refused(tmp_path):
    cache = StudyCache(tmp_path, 10**9)
    with pytest.raises(CacheError, match="not a DICOM"):
        cache.store(b"hello")
    with pytest.raises(CacheError, match="no Study or SOP Instance UID"):
        cache.store(encoded(CT, StudyInstanceUID=""))


def test_least_recently_opened_studies_are_evicted_first(tmp_path):
    size = len(encoded(CT))
    cache = StudyCache(tmp_path, max_bytes=int(size * 2.5))
    studies = [f"1.2.3.{i}" for i in range(4)]
    for i, uid in enumerate(studies):
        cache.store(encoded(CT, StudyInstanceUID=uid, SOPInstanceUID=f"1.2.3.{i}.1"))
        time.sleep(0.01)
    cache.touch(studies[0])  # opened again: now the most recent
    evicted = cache.evict(keep={studies[1]})
    assert evicted == [studies[2], studies[3]]  # 1 is protected (being retrieved), 0 was opened recently
    assert {uid for uid, *_ in cache.studies()} == {studies[0], studies[1]}
    assert cache.size() <= cache.max_bytes
    cache.max_bytes = int(size * 1.5)
    assert cache.evict() == [studies[1]]
    assert {uid for uid, *_ in cache.studies()} == {studies[0]}
