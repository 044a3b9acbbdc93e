"""The Parametric Map holds only the frames where the heatmap is non-zero, each naming its source image and
position; a reader aligning by source image gets the whole heatmap back (zero where no frame is). An all-zero
heatmap gives one zero frame on the first image. Both pass dciodvfy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pydicom
from results_helpers import run_tool, tool

from workstation.results import build_results, read_results
from workstation.services.results_build import write_objects


def _pmap(run, **kwargs):
    (pmap,) = [b for b in build_results(run, **kwargs) if b.kind == "pmap"]
    return pmap


def _aligned(pmap_dataset, run) -> np.ndarray:
    """The heatmap as a reader rebuilds it: frames placed by their source image, zero elsewhere."""
    (back,), problems = read_results([pmap_dataset])
    assert problems == []
    heat = np.zeros(run.heatmap.shape, np.uint8)
    order = {str(ds.SOPInstanceUID): k for k, ds in enumerate(run.sources)}
    for values, sop, position in zip(back.heatmap.values, back.heatmap.sop_instance_uids, back.heatmap.positions_mm):
        k = order[sop]
        assert position == tuple(float(v) for v in run.sources[k].ImagePositionPatient)
        heat[k] = np.rint(values * 255).astype(np.uint8)
    return heat


def _dciodvfy_errors(built, folder) -> list[str]:
    (path,) = write_objects([built], folder)
    output = run_tool([tool("dciodvfy"), str(path)])
    return [line for line in output.splitlines() if line.startswith("Error")]


def test_only_frames_with_heat_are_written_and_read_back_in_place(contexts, tmp_path):
    run, _ = contexts
    heat = np.zeros_like(run.heatmap)
    heat[3, 10:20, 30:40] = 200
    heat[4:6, 50:60, 60:70] = 90
    heat[12, 0, 0] = 1
    sparse = replace(run, heatmap=heat)
    pmap = _pmap(sparse)
    ds = pmap.dataset
    assert int(ds.NumberOfFrames) == 4
    sources = [str(run.sources[k].SOPInstanceUID) for k in (3, 4, 5, 12)]
    named = [str(g.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
             for g in ds.PerFrameFunctionalGroupsSequence]
    assert sorted(named) == sorted(sources)
    spacing = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].get("SpacingBetweenSlices")
    expected = run.sources[0].get("SpacingBetweenSlices")
    assert spacing is not None and (expected is None or float(spacing) == float(expected))  # the series', not 1-7 mm
    np.testing.assert_array_equal(_aligned(ds, run), heat)
    assert _dciodvfy_errors(pmap, tmp_path) == []
    # the key hashes the whole heatmap as before: the same for the same run, another for another heatmap
    assert pmap.content_key == _pmap(sparse).content_key != _pmap(run).content_key


def test_an_all_zero_heatmap_gives_one_zero_frame_on_the_first_image(contexts, tmp_path):
    run, _ = contexts
    empty = replace(run, heatmap=np.zeros_like(run.heatmap))
    pmap = _pmap(empty)
    ds = pmap.dataset
    assert int(ds.NumberOfFrames) == 1 and not ds.pixel_array.any()
    source = ds.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert source.ReferencedSOPInstanceUID == run.sources[0].SOPInstanceUID
    assert not _aligned(ds, run).any()
    assert _dciodvfy_errors(pmap, tmp_path) == []


def test_the_sparse_map_in_jpeg_ls_and_uncompressed_holds_the_same_values(contexts, tmp_path):
    run, _ = contexts
    heat = np.zeros_like(run.heatmap)
    heat[7:10, 30:50, 40:60] = 237
    sparse = replace(run, heatmap=heat)
    plain, small = _pmap(sparse, compress_pmap=False), _pmap(sparse)
    assert small.content_key == plain.content_key and int(small.dataset.NumberOfFrames) == 3
    assert small.dataset.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"
    for built in (small, plain):
        (path,) = write_objects([built], tmp_path / built.dataset.file_meta.TransferSyntaxUID)
        np.testing.assert_array_equal(_aligned(pydicom.dcmread(path), run), heat)
