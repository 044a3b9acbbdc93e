"""The GSPS: the boxes drawn on the images, for the many viewers that show presentation states but not SR.

It applies to every image of the series (so a viewer offers it on all of them)
and draws, on each finding's image, a closed polyline and a short text "#N
nodule". Without a review it draws every AI box with its score; after sign-off
only what the reader kept (accepted, edited, added), one coloured layer per
verdict like the review panel. Graphics carry the finding's tracking UID.
"""

from __future__ import annotations

from collections import defaultdict

import highdicom as hd

from workstation.results.context import (
    MANUFACTURER, MODEL_NAME, SERIES_NUMBERS, SOFTWARE_VERSION, ContextError, Item, ReviewContext, RunContext,
    ai_items, copy_source_details, dicom_date_time, model_text, review_items, series_uid_of, source_of,
)
from workstation.results.regions import box_outline
from workstation.results.sr_review import person_name
from workstation.results.tracking import series_uid

SHOWN_AFTER_REVIEW = ("accepted", "edited", "added")
# layer name, order, description, colour (as the review panel draws them)
_LAYERS = {
    "": ("AI", 1, "AI findings (not reviewed)", "cyan"),
    "accepted": ("ACCEPTED", 1, "AI findings accepted by the reader", "green"),
    "edited": ("EDITED", 2, "AI findings edited by the reader", "yellow"),
    "added": ("ADDED", 3, "Findings added by the reader", "orange"),
}


def caption(item: Item, reviewed: bool) -> str:
    text = f"#{item.number} {item.label}"
    return text if reviewed or item.score is None else f"{text} {item.score:.2f}"


def _layer(state: str) -> hd.pr.GraphicLayer:
    name, order, description, colour = _LAYERS[state]
    return hd.pr.GraphicLayer(layer_name=name, order=order, description=description,
                              display_color=hd.color.CIELabColor.from_string(colour))


def _window(run: RunContext) -> list[hd.pr.SoftcopyVOILUTTransformation] | None:
    """The lung window when the images name one (nodules are read there); else the images' own window."""
    first = run.sources[0]
    explanations = [str(e).upper() for e in _multi(getattr(first, "WindowCenterWidthExplanation", None))]
    centers, widths = _multi(getattr(first, "WindowCenter", None)), _multi(getattr(first, "WindowWidth", None))
    for index, explanation in enumerate(explanations):
        if "LUNG" in explanation and index < min(len(centers), len(widths)):
            return [hd.pr.SoftcopyVOILUTTransformation(window_center=float(centers[index]),
                                                       window_width=float(widths[index]),
                                                       window_explanation=explanation[:64])]
    return None


def _modality_lut(run: RunContext) -> hd.ModalityLUTTransformation | None:
    """The images' rescale (Modality LUT module), as highdicom would take it from the referenced images, with the
    same consistency rules; given explicitly because highdicom's own look-up asks the standard's tables whether each
    of the 500 images is multi-frame (single-frame images only reach here: `context.check`)."""
    def column(keyword: str) -> list:
        return [ds.get(keyword) for ds in run.sources]

    slopes, intercepts, types = column("RescaleSlope"), column("RescaleIntercept"), column("RescaleType")
    for name, values in (("RescaleSlope", slopes), ("RescaleIntercept", intercepts), ("RescaleType", types)):
        present = [v is not None for v in values]
        if any(present) and not all(present):
            raise ContextError(f"the source images disagree on the presence of {name}")
        if all(present) and any(v != values[0] for v in values):
            raise ContextError(f"the source images have different values of {name}")
    if (slopes[0] is None) != (intercepts[0] is None):
        raise ContextError("the source images have RescaleSlope or RescaleIntercept without the other")
    if intercepts[0] is None:
        return None
    return hd.ModalityLUTTransformation(rescale_intercept=intercepts[0], rescale_slope=slopes[0],
                                        rescale_type=types[0] if types[0] is not None else hd.RescaleTypeValues.US)


def _multi(value) -> list:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def build_gsps(run: RunContext, review: ReviewContext | None = None) -> tuple[hd.pr.GrayscaleSoftcopyPresentationState, dict]:
    reviewed = review is not None
    items = [i for i in review_items(run, review) if i.state in SHOWN_AFTER_REVIEW] if reviewed else ai_items(run)
    by_image: dict[tuple[str, str], list[Item]] = defaultdict(list)
    for item in items:
        by_image[(item.state, item.sop_instance_uid)].append(item)
    layers = {state: _layer(state) for state in dict.fromkeys(state for state, _ in by_image)}
    annotations = []
    for (state, sop_uid), drawn in by_image.items():
        source = source_of(run, drawn[0].frame_index, sop_uid)
        annotations.append(hd.pr.GraphicAnnotation(
            referenced_images=[source], graphic_layer=layers[state],
            graphic_objects=[hd.pr.GraphicObject(
                graphic_type=hd.pr.GraphicTypeValues.POLYLINE, graphic_data=box_outline(item.box_px),
                units=hd.pr.AnnotationUnitsValues.PIXEL, tracking_id=item.tracking_id,
                tracking_uid=item.tracking_uid) for item in drawn],
            text_objects=[hd.pr.TextObject(
                text_value=caption(item, reviewed), units=hd.pr.AnnotationUnitsValues.PIXEL,
                anchor_point=(float(min(item.box_px[0], item.box_px[2])), float(min(item.box_px[1], item.box_px[3]))),
                anchor_point_visible=False, text_justification=hd.pr.TextJustificationValues.LEFT,
                tracking_id=item.tracking_id, tracking_uid=item.tracking_uid) for item in drawn]))
    moment = review.signed_at_utc if reviewed else run.started_utc
    date, time = dicom_date_time(moment)
    what = "reviewed AI" if reviewed else "AI"
    gsps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=run.sources,
        series_instance_uid=series_uid(series_uid_of(run), run.model.name, run.model.version, "gsps"),
        series_number=SERIES_NUMBERS["gsps"], sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name=MODEL_NAME, software_versions=SOFTWARE_VERSION,
        device_serial_number=run.workstation_id[:64],
        content_label="AI_REVIEW" if reviewed else "AI_RESULT",
        content_description=f"{what} {model_text(run)} findings"[:64],
        graphic_annotations=annotations or None, graphic_layers=list(layers.values()) or None,
        content_creator_name=person_name(review.signed_by) if reviewed else None,
        voi_lut_transformations=_window(run), modality_lut_transformation=_modality_lut(run),
        series_description=f"AI {model_text(run)} {'review' if reviewed else 'result'} boxes"[:64],
        series_date=date, series_time=time)
    copy_source_details(gsps, run.sources[0], image_series=True)
    content = {"reviewed": reviewed, "signoff": review.signoff_entry_id if reviewed else "",
               "shown": [dict(item.content(), caption=caption(item, reviewed)) for item in items]}
    return gsps, content
