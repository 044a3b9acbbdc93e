"""Hanging protocols in the site file: parsed with key and reason, matched on modality and body part (no Qt)."""

from __future__ import annotations

import tomllib

import pytest

from workstation.core.hanging import HangingViewport, protocol_for
from workstation.core.site import ConfigError, parse_site_config
from workstation.core.study import DisplaySet, PatientRef, SeriesRef, StudyRef
from workstation.core.windowing import CT_PRESETS

SITE = """
[[hanging]]
modality = "CT"
body_part = "CHEST"
layout = "1x2"
viewports = [{ window = "lung" }, { window = "Mediastinum" }]

[[hanging]]
modality = "CT"
layout = "2x2"
viewports = [{ series = "soft" }, { series = "bone", window = "bone" }]
"""


def series(modality="CT", body_part="CHEST", description="Chest 1mm") -> DisplaySet:
    study = StudyRef("1.2", PatientRef("1", "X"))
    return DisplaySet(SeriesRef("1.2.3" + description, study, modality=modality, body_part=body_part,
                                description=description), [])


def test_protocols_parse_and_match_in_order():
    protocols = parse_site_config(tomllib.loads(SITE)).hanging
    chest = protocol_for(protocols, series())
    assert chest.layout == "1x2"
    assert [v.window_level for v in chest.viewports] == [CT_PRESETS[0], CT_PRESETS[1]]
    head = protocol_for(protocols, series(body_part="HEAD"))
    assert head.layout == "2x2"
    opened, soft, bone = series(description="Scout"), series(description="Soft tissue"), series(description="BONE 1mm")
    assert head.series_for(head.viewports[0], [opened, soft, bone], opened) is soft
    assert head.series_for(head.viewports[1], [opened, soft, bone], opened) is bone
    assert head.series_for(HangingViewport("lung"), [opened, soft, bone], opened) is opened  # none: the one opened
    assert protocol_for(protocols, series(modality="MR")) is None
    prior = parse_site_config({"hanging": [{"modality": "CT", "layout": "1x2",
                                            "viewports": [{"window": "lung"}, {"study": "prior", "window": "lung"}]}]})
    assert [v.study for v in prior.hanging[0].viewports] == ["current", "prior"]


@pytest.mark.parametrize("table, key", [
    ({"modality": "CT", "layout": "3x3"}, "hanging[0].layout"),
    ({"layout": "1x1"}, "hanging[0].modality"),
    ({"modality": "CT", "layout": "1x1", "viewports": [{}, {}]}, "hanging[0].viewports"),
    ({"modality": "CT", "layout": "1x2", "viewports": [{"window": "liver"}]}, "hanging[0].viewports[0].window"),
    ({"modality": "CT", "colour": "red"}, "hanging[0].colour"),
    ({"modality": "CT", "layout": "1x2", "viewports": [{"study": "prior"}, {}]}, "hanging[0].viewports[0].study"),
    ({"modality": "CT", "layout": "1x2", "viewports": [{}, {"study": "previous"}]}, "hanging[0].viewports[1].study"),
])
def test_bad_protocols_name_the_key(table, key):
    with pytest.raises(ConfigError) as error:
        parse_site_config({"hanging": [table]})
    assert error.value.key == key
