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


# ----- instances streamed in as they arrive from the network (StudyCache.incoming)

def split_part10(encoded: bytes) -> tuple[pydicom.dataset.FileMetaDataset, bytes]:
    """The file meta of a Part 10 encoding, and its data set bytes as they travel in a C-STORE."""
    meta = pydicom.dcmread(io.BytesIO(encoded), stop_before_pixels=True).file_meta
    end = 132 + 12 + meta.FileMetaInformationGroupLength
    return meta, encoded[end:]


def streamed(cache: StudyCache, encoded: bytes, fragment: int = 1000):
    meta, data_set = split_part10(encoded)
    incoming = cache.incoming(meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID)
    for start in range(0, len(data_set), fragment):
        incoming.write(memoryview(data_set)[start:start + fragment])
    return incoming.commit()


def leftovers(cache: StudyCache) -> list:
    return list((cache.root / "incoming").iterdir())


def as_pydicom_writes_it(ds: pydicom.Dataset) -> bytes:
    """The Part 10 encoding pydicom makes of `ds` from the three file meta elements a C-STORE tells."""
    meta = pydicom.dataset.FileMetaDataset()
    for keyword in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID"):
        setattr(meta, keyword, ds.file_meta[keyword].value)
    ds.file_meta, ds.preamble = meta, None  # pydicom adds the rest of the meta, and a preamble of zeros
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def with_sequences_before_the_uids(big_element: bool) -> pydicom.Dataset:
    """UIDs behind nested undefined-length sequences (and a private element of 100 KB)."""
    ds = pydicom.dcmread(CT)
    inner = pydicom.Dataset()
    inner.CodeValue = "X"
    item = pydicom.Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3"
    item.PurposeOfReferenceCodeSequence = [inner]
    item.PurposeOfReferenceCodeSequence[0].is_undefined_length_sequence_item = True
    ds.ReferencedImageSequence = [item]
    ds["ReferencedImageSequence"].is_undefined_length = True
    item["PurposeOfReferenceCodeSequence"].is_undefined_length = True
    item.is_undefined_length_sequence_item = True
    if big_element:
        ds.private_block(0x0009, "WS TEST", create=True).add_new(0x01, "OB", b"\x01" * 100_000)
    return ds


SAMPLES = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm",
           "image_dfl.dcm", "rtplan.dcm"]


def sample_dataset(sample: str) -> pydicom.Dataset:
    if sample in SAMPLES:
        return pydicom.dcmread(get_testdata_file(sample, download=False))
    return with_sequences_before_the_uids(big_element="100 KB" in sample)


@pytest.mark.parametrize("sample", [*SAMPLES, "sequences before the UIDs", "sequences and 100 KB before the UIDs"])
@pytest.mark.parametrize("fragment", [1, 1000, 1 << 20])
def test_a_streamed_instance_is_the_file_store_writes(tmp_path, sample, fragment):
    """Same name, same bytes: the file meta we write is the one pydicom writes for the same instance."""
    encoded = as_pydicom_writes_it(sample_dataset(sample))
    if fragment == 1 and len(encoded) > 50_000:
        fragment = 7
    stored = StudyCache(tmp_path / "stored", 10**9).store(encoded)
    cache = StudyCache(tmp_path / "streamed", 10**9)
    arrived = streamed(cache, encoded, fragment)
    assert arrived.new and arrived.path.relative_to(cache.root) == stored.path.relative_to(tmp_path / "stored")
    assert (arrived.study_instance_uid, arrived.series_instance_uid, arrived.sop_instance_uid) == (
        stored.study_instance_uid, stored.series_instance_uid, stored.sop_instance_uid)
    assert arrived.path.read_bytes() == stored.path.read_bytes() == encoded
    assert leftovers(cache) == []


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s != "image_dfl.dcm"] + ["sequences before the UIDs"])
def test_the_uids_are_found_without_reading_the_whole_file(tmp_path, monkeypatch, sample):
    """Only the start of the data set is read, unless the UIDs lie beyond it (or it is deflated)."""
    from workstation.dicom import cache as cache_module

    def whole_file_read(encoded):
        raise AssertionError("read the whole file")

    monkeypatch.setattr(cache_module, "_uids", whole_file_read)
    assert streamed(StudyCache(tmp_path, 10**9), as_pydicom_writes_it(sample_dataset(sample))).new


def test_streamed_hostile_uids_never_reach_a_path(tmp_path):
    cache = StudyCache(tmp_path, 10**9)
    stored = streamed(cache, encoded(CT, StudyInstanceUID="../../../../etc", SOPInstanceUID="/tmp/evil.dcm",
                                     SeriesInstanceUID="..\\..\\x"))
    assert stored.new and tmp_path in stored.path.parents and len(stored.path.relative_to(tmp_path).parts) == 3
    assert "etc" not in str(stored.path) and "evil" not in str(stored.path)
    assert stored.study_instance_uid == "../../../../etc" and pydicom.dcmread(stored.path).SOPInstanceUID == "/tmp/evil.dcm"


def test_a_streamed_instance_already_cached_is_not_rewritten(tmp_path):
    cache = StudyCache(tmp_path, 10**9)
    first = cache.store(encoded(CT))
    again = streamed(cache, encoded(CT))
    assert not again.new and again.path == first.path and leftovers(cache) == []


def test_streamed_data_that_is_not_dicom_is_refused(tmp_path):
    cache = StudyCache(tmp_path, 10**9)
    incoming = cache.incoming("1.2.840.10008.5.1.4.1.1.2", "1.2.3", "1.2.840.10008.1.2.1")
    incoming.write(b"hello, this is not a data set")
    with pytest.raises(CacheError, match="not a DICOM|no Study or SOP Instance UID|does not parse"):
        incoming.commit()
    with pytest.raises(CacheError, match="no Study or SOP Instance UID"):
        streamed(cache, encoded(CT, StudyInstanceUID=""))
    assert leftovers(cache) == [] and list((tmp_path / "studies").iterdir()) == []


def test_a_full_disk_is_reported_by_commit(tmp_path, monkeypatch):
    import errno
    import os

    from workstation.dicom import cache as cache_module

    cache = StudyCache(tmp_path, 10**9)
    meta, data_set = split_part10(encoded(CT))
    incoming = cache.incoming(meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID)

    def disk_full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_module.os, "write", disk_full)
    incoming.write(data_set)  # no exception here: the receiver goes on reading the instance
    with pytest.raises(CacheError, match="cannot write to the cache: No space left on device"):
        incoming.commit()
    assert leftovers(cache) == []


def test_discard_leaves_nothing(tmp_path):
    cache = StudyCache(tmp_path, 10**9)
    meta, data_set = split_part10(encoded(CT))
    incoming = cache.incoming(meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID)
    incoming.write(data_set[:1000])
    assert len(leftovers(cache)) == 1
    incoming.discard()
    assert leftovers(cache) == [] and list((tmp_path / "studies").iterdir()) == []


def test_files_made_ready_for_coming_instances_are_used_then_removed(tmp_path, monkeypatch):
    """prepare_incoming() (called while no sender waits) creates the temporary files that incoming() then takes."""
    from workstation.dicom import cache as cache_module

    cache = StudyCache(tmp_path, 10**9)
    cache.store(encoded(CT, SOPInstanceUID="1.2.3.4.9"))  # the study's folder exists: an arrival creates no file
    for _ in range(cache_module.SPARE_FILES + 3):
        cache.prepare_incoming()
    assert len(leftovers(cache)) == cache_module.SPARE_FILES
    with monkeypatch.context() as patch:
        patch.setattr(cache_module.tempfile, "mkstemp", lambda **kw: pytest.fail("created a file on arrival"))
        stored = streamed(cache, encoded(CT))
    assert stored.new and pydicom.dcmread(stored.path).SOPInstanceUID == pydicom.dcmread(CT).SOPInstanceUID
    assert len(leftovers(cache)) == cache_module.SPARE_FILES - 1
    cache.close()
    assert leftovers(cache) == []
    assert streamed(cache, encoded(CT, SOPInstanceUID="1.2.3.4.5")).new  # still usable: files are made on arrival
