"""Table E.1-1 as data: every attribute in it has a valid action under every option, and the walk applies that
action to each attribute it lists (a data set holding all of them, at the top level and nested)."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset

from workstation.core.site import ConfigError, parse_site_config
from workstation.deid import DeidOptions, Deidentifier, KeyedMapping, deid_settings
from workstation.deid.table import ACTIONS, COMPOSITES, OPTION_COLUMNS, load_table, resolve, single_tags

SET_BY_US = {"PatientName", "PatientID", "PatientIdentityRemoved", "DeidentificationMethod",
             "DeidentificationMethodCodeSequence", "LongitudinalTemporalInformationModified", "SOPInstanceUID",
             "SOPClassUID", "MediaStorageSOPInstanceUID", "BurnedInAnnotation"}
VALUES = {"PN": "PLANTED^NAME", "DA": "20200102", "TM": "101010", "DT": "20200102101010", "UI": "1.2.3.999.1",
          "AS": "042Y", "IS": "7", "DS": "7.5", "CS": "PLANTED", "US": 7, "UL": 7, "SS": 7, "SL": 7, "FL": 7.0,
          "FD": 7.0, "OB": b"PLANTEDX", "OW": b"PLANTEDX", "UN": b"PLANTEDX", "UR": "http://planted.example"}


def test_every_attribute_has_a_valid_action_under_every_option():
    table = load_table()
    assert len(table) > 600
    valid = set(ACTIONS) | set(COMPOSITES)
    for tag, rule in table.items():
        assert rule.basic in valid, tag
        assert set(rule.options) <= set(OPTION_COLUMNS), tag
        assert all(code in valid for code in rule.options.values()), tag
        for column in OPTION_COLUMNS:
            assert resolve(rule.action(frozenset({column})), "LO") in ACTIONS
    # spot checks against the standard
    assert table["00100010"].basic == "Z" and table["0020000d"].basic == "U"
    assert table["00080020"].options["RLM"] == "C" and table["00081030"].options["CD"] == "C"
    assert table["private"].basic == "X" and table["private"].options["RSP"] == "C"
    assert table["60xx3000"].basic == "X"


def _planted_dataset() -> tuple[Dataset, dict[int, str]]:
    ds, vrs = Dataset(), {}
    for tag in single_tags():
        keyword = keyword_for_tag(tag)
        if not keyword or keyword in SET_BY_US or tag >> 16 in (0x0000, 0x0002):
            continue
        try:
            vr = dictionary_VR(tag).split(" or ")[0]
        except KeyError:
            continue
        if vr == "SQ":
            item = Dataset()
            item.PatientName = "PLANTED^NESTED"
            ds.add_new(tag, vr, [item])
        elif vr in VALUES:
            ds.add_new(tag, vr, VALUES[vr])
        elif vr in ("LO", "SH", "LT", "ST", "UT", "UC", "AE"):
            ds.add_new(tag, vr, "PLANTED")
        else:
            continue
        vrs[tag] = vr
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3.999.2"
    ds.PatientName, ds.PatientID = "PLANTED^NAME", "PLANTED1"
    return ds, vrs


@pytest.mark.parametrize("options", [DeidOptions().replace(**{f: False for f in DeidOptions().names()}), DeidOptions()],
                         ids=["basic", "site-default"])
def test_the_walk_applies_each_listed_action(options):
    ds, vrs = _planted_dataset()
    assert len(vrs) > 450
    before = {tag: ds[tag].value for tag in vrs}
    Deidentifier(options, KeyedMapping(b"k" * 32)).deidentify(ds)
    columns = options.columns()
    for tag, vr in vrs.items():
        action = resolve(single_tags()[tag].action(columns), vr)
        name = keyword_for_tag(tag)
        if action == "X":
            assert tag not in ds, name
        elif vr == "SQ":
            assert tag in ds, name
            assert all(str(item.get("PatientName", "")) != "PLANTED^NESTED" for item in ds[tag].value), name
            if action == "Z":
                assert len(ds[tag].value) == 0, name
        elif action == "Z":
            assert ds[tag].value in (None, "", b""), name
        elif action == "D":
            assert ds[tag].value not in (None, "") and ds[tag].value != before[tag], name
        elif action == "U":
            assert str(ds[tag].value).startswith("2.25."), name
        elif action == "K":
            assert ds[tag].value == before[tag], name
        elif action == "C" and vr in ("DA", "TM", "DT"):
            assert ds[tag].value not in (None, "") and ds[tag].value != before[tag], name
        elif action == "C":
            assert tag in ds, name
    assert ds.PatientIdentityRemoved == "YES"


def test_site_table_is_checked_with_key_and_reason():
    settings = deid_settings(parse_site_config({"deid": {"clean_pixel_data": False, "export_roles": ["admin"],
                                                         "safe_private": ["0019,xx0C@GEMS_ACQU_01"]}}))
    assert not settings.options.clean_pixel_data and settings.export_roles == ("admin",)
    assert settings.safe_private == ((0x19, 0x0C, "GEMS_ACQU_01"),) and settings.workers == 0  # 0: one per core
    assert deid_settings(parse_site_config({"deid": {"workers": 3}})).workers == 3
    for bad, key in (({"clean_graphics": "yes"}, "deid.clean_graphics"), ({"colour": 1}, "deid.colour"),
                     ({"export_roles": ["boss"]}, "deid.export_roles"), ({"safe_private": ["x"]}, "deid.safe_private"),
                     ({"workers": -1}, "deid.workers"), ({"workers": True}, "deid.workers")):
        with pytest.raises(ConfigError) as caught:
            deid_settings(parse_site_config({"deid": bad}))
        assert caught.value.key == key


def test_safe_private_list_keeps_only_what_it_names():
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.PatientID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4", "X1"
    block = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    block.add_new(0x0C, "DS", "42")
    block.add_new(0x0D, "LO", "PLANTED")
    options = DeidOptions(retain_safe_private=True)
    Deidentifier(options, KeyedMapping(b"k" * 32), ((0x19, 0x0C, "GEMS_ACQU_01"),)).deidentify(ds)
    kept = {elem.tag for elem in ds if elem.tag.is_private}
    assert kept == {pydicom.tag.Tag(0x00190010), pydicom.tag.Tag(0x0019100C)}


def test_encapsulated_documents_are_refused():
    from workstation.deid import DeidError

    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.104.1", "1.2.3.4"
    ds.EncapsulatedDocument = b"%PDF-1.4 Jane Doe"
    with pytest.raises(DeidError, match="encapsulated document"):
        Deidentifier(DeidOptions(), KeyedMapping(b"k" * 32)).deidentify(ds)


def test_pixels_declared_beyond_what_the_file_holds_are_refused_before_decoding(corpus):
    from workstation.deid import DeidError

    ds = pydicom.dcmread(corpus.files["us"])
    ds.NumberOfFrames = 50_000  # 50,000 frames declared, one held
    with pytest.raises(DeidError, match="declares .* bytes of pixels, holds 76800"):
        Deidentifier(DeidOptions(), KeyedMapping(b"k" * 32)).deidentify(ds)


def test_scrubber_removes_whole_words_and_patterns_only():
    from workstation.deid.text import Scrubber, identifiers_of

    scrubber = Scrubber(identifiers_of(["LEE^ANN"], ["12345678"], ["19700101"]))
    text = scrubber.clean("SLEEP study of Lee, ID 12345678, born 01.01.1970, 12.5 x 8 mm; mail ann.lee@x.org")
    assert text == "SLEEP study of [REMOVED], [REMOVED], born [REMOVED], 12.5 x 8 mm; mail [REMOVED]"
    assert scrubber.counts["email"] == 1 and scrubber.counts["identifier"] == 1


def test_an_object_de_identified_before_goes_out_again(corpus):
    from workstation.deid.validate import encode, problems

    deid = Deidentifier(DeidOptions(), KeyedMapping(b"k" * 32))
    once = deid.deidentify(pydicom.dcmread(corpus.files["ct1"])).dataset
    once.PatientName, once.PatientBirthDate = "ANONYMOUS", "19000101"  # placeholders another tool wrote
    again = deid.deidentify(once)
    assert problems(again, encode(again.dataset)) == []
