"""AI overlays: boxes and heatmap sit on the right pixels and follow scroll, zoom and pan."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from workstation.core.findings import Finding, InferenceResult, ModelRef

pytestmark = pytest.mark.ui


def make_result(viewer, box=(100, 60, 120, 84), frame=20, frames=(18, 22)):
    shape = viewer.volume.array.shape
    heat = np.zeros(shape, np.uint8)
    c0, r0, c1, r1 = box
    heat[frames[0]:frames[1] + 1, r0:r1, c0:c1] = 230
    finding = Finding("f-1", "nodule", 0.91, frame, tuple(float(v) for v in box),
                      ((0.0, 0.0, 0.0), (1.0, 1.0, 0.0)), (0.5, 0.5, 0.0), frames)
    weaker = Finding("f-2", "nodule", 0.55, 5, (10.0, 10.0, 20.0, 20.0), ((0.0, 0.0, 0.0), (1.0, 1.0, 0.0)),
                     (0.5, 0.5, 0.0), (5, 5))
    return InferenceResult(ModelRef("test-model", "1.0.0", "0" * 64), "cpu", "1.2", "1.2.3", [weaker, finding],
                           heat, 0.5, "2026-11-23T00:00:00+00:00")


def test_boxes_are_drawn_in_mm_on_the_frames_they_span(window):
    viewer = window.viewer
    result = make_result(viewer)
    viewer.show_frame(20)
    viewer.set_result(result)
    row_mm, col_mm = viewer.volume.pixel_spacing
    (box,) = viewer.box_items()
    rect = box.rect()
    assert (rect.x(), rect.y()) == pytest.approx((100 * col_mm, 60 * row_mm))
    assert (rect.width(), rect.height()) == pytest.approx((20 * col_mm, 24 * row_mm))
    assert box.pen().style() == Qt.PenStyle.SolidLine  # the peak slice
    viewer.show_frame(22)
    (box,) = viewer.box_items()
    assert box.pen().style() == Qt.PenStyle.DotLine  # within its span, not the peak (dashed means rejected)
    viewer.show_frame(23)
    assert viewer.box_items() == []  # beyond its span
    viewer.show_frame(5)
    assert len(viewer.box_items()) == 1
    assert "AI test-model:1.0.0: 2 finding(s), 1 on this slice" in viewer.corners["bl"].text()


def test_heatmap_overlays_the_image_and_can_be_hidden_or_faded(window):
    viewer = window.viewer
    viewer.show_frame(20)
    viewer.set_result(make_result(viewer))
    heat = viewer.heat_item.image
    assert viewer.heat_item.isVisible() and heat.shape == viewer.volume.array.shape[1:] + (4,)
    assert heat[70, 110, 3] > 0 and heat[5, 5, 3] == 0  # opaque where the probability is, clear elsewhere
    assert viewer.heat_item.mapRectToParent(viewer.heat_item.boundingRect()) == \
        viewer.image_item.mapRectToParent(viewer.image_item.boundingRect())
    alpha = heat[70, 110, 3]
    viewer.set_heatmap_opacity(0.2)
    assert 0 < viewer.heat_item.image[70, 110, 3] < alpha
    viewer.show_heatmap(False)
    assert not viewer.heat_item.isVisible() and len(viewer.box_items()) == 1  # boxes stay


def test_boxes_follow_zoom_and_pan(window):
    viewer = window.viewer
    viewer.show_frame(20)
    viewer.set_result(make_result(viewer))
    (box,) = viewer.box_items()
    before = viewer.viewbox.mapViewToScene(box.rect().center())
    viewer.zoom_by(2.0)
    after = viewer.viewbox.mapViewToScene(box.rect().center())
    assert box.rect() == viewer.box_items()[0].rect()  # same place on the image...
    assert before != after  # ...which moved on screen with the zoom


def test_findings_panel_lists_by_score_and_jumps_to_a_finding(window, qtbot):
    viewer = window.viewer
    result = make_result(viewer)
    viewer.set_result(result)
    window.review.begin(viewer.display_set, result.model, result.findings)
    panel = window.ai_panel.findings
    assert [s.finding_id for s in panel.states()] == ["f-1", "f-2"]
    assert panel.topLevelItem(0).text(2) == "0.91" and panel.topLevelItem(0).text(3) == "21"
    viewer.show_frame(0)
    viewer.zoom_by(3.0)
    panel.itemClicked.emit(panel.topLevelItem(0), 0)
    assert viewer.frame_index == 20
    row_mm, col_mm = viewer.volume.pixel_spacing
    (x0, x1), (y0, y1) = viewer.viewbox.viewRange()
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((110 * col_mm, 72 * row_mm), abs=0.5)


def test_another_series_clears_the_overlays(window):
    viewer = window.viewer
    viewer.set_result(make_result(viewer))
    viewer.set_volume(viewer.display_set, viewer.volume, 0)
    assert viewer.result is None and viewer.box_items() == [] and not viewer.heat_item.isVisible()
