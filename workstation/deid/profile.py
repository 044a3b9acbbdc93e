"""Apply the Annex E profile to one data set, at every depth of nested sequences.

Attributes listed in Table E.1-1 get their action under the site's options (table.py). Attributes it does not
list are kept, except: every UID not of DICOM's own root is mapped (references inside the export still
resolve), dates and times are shifted (Modified Dates option) or emptied, person names get a dummy, and every
text value kept is scrubbed of the patient's own identifiers. Private attributes are removed (a site may keep a
safe list), overlay and curve groups (60xx, 50xx) are removed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pydicom
import pydicom.config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from workstation.deid.dates import DateShift
from workstation.deid.mapping import KeyedMapping, Pseudonym
from workstation.deid.options import DeidOptions
from workstation.deid.pixels import burned_in_reason, clean_pixel_data
from workstation.deid.table import resolve, single_tags
from workstation.deid.text import Scrubber, identifiers_of

ENCAPSULATED_DOCUMENTS = "1.2.840.10008.5.1.4.1.1.104."  # PDF, CDA, STL, OBJ, MTL: left out, not de-identified
MAX_DEPTH = 32  # sequences nested deeper than this are refused, not walked
TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC", "CS", "AE", "PN"}
FREE_TEXT_VRS = {"LT", "ST", "UT", "UC"}
DUMMIES = {"PN": "ANONYMOUS", "DA": "19000101", "TM": "000000", "DT": "19000101000000", "AS": "000Y", "IS": "0",
           "DS": "0", "CS": "ANONYMIZED", "AE": "ANONYMIZED", "SH": "ANONYMIZED", "LO": "ANONYMIZED",
           "LT": "ANONYMIZED", "ST": "ANONYMIZED", "UT": "ANONYMIZED", "UC": "ANONYMIZED",
           "UR": "urn:anonymized"}
NAME_KEYWORDS = ("PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
                 "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "PhysiciansOfRecord",
                 "NameOfPhysiciansReadingStudy", "RequestingPhysician", "ResponsiblePerson")
ID_KEYWORDS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "MedicalRecordLocator", "StudyID",
               "AdmissionID", "PatientAddress", "PatientTelephoneNumbers", "InstitutionAddress")
DATE_KEYWORDS = ("PatientBirthDate",)
_TAGS: dict[str, int] = {}


class DeidError(Exception):
    """This instance cannot be de-identified (the message says why; no patient data in it)."""


@dataclass
class InstanceResult:
    dataset: Dataset
    pseudonym: Pseudonym
    original_study_uid: str
    original_uids: set[str]  # every UID value replaced, to check the output against
    identifiers: list[str]  # the patient's strong identifiers, to check the output against
    actions: Counter = field(default_factory=Counter)  # action code -> attributes
    scrubbed: Counter = field(default_factory=Counter)  # pattern kind -> removals
    pixel_boxes: int | None = None  # text boxes blanked (None: pixels not touched)


class Deidentifier:
    def __init__(self, options: DeidOptions, mapping: KeyedMapping,
                 safe_private: tuple[tuple[int, int, str], ...] = ()) -> None:
        self.options, self.mapping, self.safe_private = options, mapping, safe_private
        self.columns = options.columns()
        self.rules = single_tags()
        self._actions = {tag: rule.action(self.columns) for tag, rule in self.rules.items()}
        self._methods: dict[bool, tuple[list[str], list[Dataset]]] = {}
        self._raw: dict[tuple[bool, bool], RawDataElement] = {}

    def deidentify(self, ds: Dataset) -> InstanceResult:
        """De-identify `ds` in place (and return it with what was done); DeidError when it must be left out."""
        if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
            raise DeidError("no SOP Instance or SOP Class UID")
        if str(ds.SOPClassUID).startswith(ENCAPSULATED_DOCUMENTS):
            raise DeidError("an encapsulated document (PDF, CDA, 3-D model): its content cannot be checked")
        reason = burned_in_reason(ds)
        if reason and not self.options.clean_pixel_data:
            raise DeidError(f"{reason} and the site does not clean pixel data")
        pseudonym = self.mapping.patient(str(ds.get("PatientID", "") or ""), str(ds.get("IssuerOfPatientID", "") or ""),
                                         str(ds.get("PatientName", "") or ""))
        strong, scrub_list = _identifiers(ds)
        result = InstanceResult(ds, pseudonym, str(ds.StudyInstanceUID if "StudyInstanceUID" in ds else ""), set(),
                                strong)
        if reason:
            try:
                result.pixel_boxes = clean_pixel_data(ds)
            except Exception as exc:  # noqa: BLE001 - undecodable pixels or OCR failure: left out, said why
                raise DeidError(f"{reason}; cleaning its pixel data failed: {type(exc).__name__}: {exc}") from None
        scrubber = Scrubber(scrub_list)
        walk = _Walk(self, result, scrubber, DateShift(pseudonym.shift_seconds))
        with pydicom.config.disable_value_validation():  # what we write is well-formed by construction; half the time
            walk.dataset(ds, depth=0, clean=False)
            self._mark(ds, pseudonym, pixels_cleaned=reason is not None)
        result.scrubbed = scrubber.counts
        return result

    def _method(self, pixels_cleaned: bool) -> tuple[list[str], list[Dataset]]:
        """DeidentificationMethod and the CID 7050 code items, made once (read-only, shared by every object)."""
        if pixels_cleaned not in self._methods:
            codes = self.options.codes(pixels_cleaned)
            items = []
            for value, meaning in codes:
                item = Dataset()
                item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
                items.append(item)
            self._methods[pixels_cleaned] = (["PS3.15 Annex E Basic Profile (keyed HMAC UIDs)",
                                              *[meaning[:64] for _, meaning in codes[1:]]], items)
        return self._methods[pixels_cleaned]

    def _raw_codes(self, pixels_cleaned: bool, syntax) -> RawDataElement | None:
        """DeidentificationMethodCodeSequence encoded once per encoding (little endian, implicit or explicit VR)."""
        syntax = pydicom.uid.UID(str(syntax))
        if not syntax.is_little_endian:
            return None
        key = (pixels_cleaned, syntax.is_implicit_VR)
        if key not in self._raw:
            from pydicom.filebase import DicomBytesIO
            from pydicom.filewriter import write_data_element

            holder = Dataset()
            holder.DeidentificationMethodCodeSequence = Sequence(self._method(pixels_cleaned)[1])
            buffer = DicomBytesIO()
            buffer.is_little_endian, buffer.is_implicit_VR = True, syntax.is_implicit_VR
            write_data_element(buffer, holder["DeidentificationMethodCodeSequence"])
            encoded = buffer.getvalue()
            header = 8 if syntax.is_implicit_VR else 12
            value = encoded[header:]
            self._raw[key] = RawDataElement(pydicom.tag.Tag(0x00120064), "SQ", len(value), value, 0,
                                            syntax.is_implicit_VR, True)
        return self._raw[key]

    def _mark(self, ds: Dataset, pseudonym: Pseudonym, pixels_cleaned: bool) -> None:
        ds.PatientName = pseudonym.patient_name
        ds.PatientID = pseudonym.patient_id
        ds.PatientIdentityRemoved = "YES"
        method, items = self._method(pixels_cleaned)
        ds.DeidentificationMethod = method
        old = getattr(ds, "file_meta", None)
        syntax = (old.get("TransferSyntaxUID") if old is not None else None) or pydicom.uid.ExplicitVRLittleEndian
        raw = self._raw_codes(pixels_cleaned, syntax)
        if raw is not None:  # the same bytes for every object: written as they are (pydicom spends ~2 ms on them)
            ds._dict[raw.tag] = raw
        else:
            ds.DeidentificationMethodCodeSequence = Sequence(items)
        ds.LongitudinalTemporalInformationModified = "MODIFIED" if self.options.retain_modified_dates else "REMOVED"
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = syntax
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = "WS_DEID_1"
        ds.file_meta = meta


class _Walk:
    def __init__(self, owner: Deidentifier, result: InstanceResult, scrubber: Scrubber, shift: DateShift) -> None:
        self.owner, self.result, self.scrubber, self.shift = owner, result, scrubber, shift
        self.rlm = owner.options.retain_modified_dates

    def dataset(self, ds: Dataset, depth: int, clean: bool) -> None:
        if depth > MAX_DEPTH:
            raise DeidError(f"sequences nested deeper than {MAX_DEPTH}")
        kept_private = self._private(ds)
        done: set[int] = set()
        elements = ds._dict
        for tag in list(elements):  # BaseTag is an int; plain int work here (pydicom's Tag() is costly)
            if tag in done:
                continue
            group = tag >> 16
            if group == 0x0002:
                continue
            if group & 1:  # private
                if tag not in kept_private:
                    del ds[tag]
                    self.result.actions["X"] += 1
                continue
            if (0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF) and group % 2 == 0:
                del ds[tag]  # overlay planes and curves: removed whole (Clean Graphics or not)
                self.result.actions["X"] += 1
                continue
            raw = elements[tag]
            vr = raw.VR
            if vr in (None, "UN"):  # implicit VR, or a standard attribute stored as UN: pydicom converts it
                try:
                    vr = dictionary_VR(tag).split(" or ")[0]
                except KeyError:
                    vr = "UN"
            code = self.owner._actions.get(tag)
            action = resolve(code, vr) if code else self._default(vr)
            self.result.actions[action] += 1
            if action == "X":
                del ds[tag]
                continue
            if action == "K" and vr != "SQ" and (vr not in TEXT_VRS or self._raw_clean(raw, clean)):
                continue  # kept as read, never decoded: most attributes of an image (and the fast path)
            self._apply(ds, ds[tag], action, depth, clean, done)

    def _raw_clean(self, raw, clean: bool) -> bool:
        """A text value still in its raw bytes with none of the patient's identifiers in it (and no free-text
        cleaning due): it can stay as read."""
        if not isinstance(raw, RawDataElement) or (clean and raw.VR in FREE_TEXT_VRS):
            return False
        pattern = self.scrubber._pattern
        value = raw.value
        if not value:
            return True
        if not value.isascii():  # another character set: decoded by pydicom and scrubbed as text
            return False
        return pattern is None or pattern.search(value.decode("ascii")) is None

    def _default(self, vr: str) -> str:
        if vr == "UI":
            return "U"
        if vr in ("DA", "DT", "TM"):
            return "C" if self.rlm else "Z"
        if vr == "PN":
            return "D"
        return "K"

    def _apply(self, ds: Dataset, elem, action: str, depth: int, clean: bool, done: set[int]) -> None:
        vr = elem.VR
        if action == "X":
            del ds[elem.tag]
        elif vr == "SQ":
            if action == "Z":
                elem.value = Sequence([])
            else:
                for item in elem.value:
                    self.dataset(item, depth + 1, clean or action in ("C", "D"))
        elif action == "Z":
            elem.value = None
        elif action == "U":
            self._uids(elem)
        elif action == "D":
            self._dummy(elem)
        elif action == "C" and vr in ("DA", "DT", "TM"):
            self._dates(ds, elem, done)
        elif vr in TEXT_VRS and elem.value not in (None, ""):
            self._text(elem, patterns=(action == "C" or clean) and vr in FREE_TEXT_VRS)

    def _uids(self, elem) -> None:
        if elem.VR != "UI" or elem.value in (None, ""):
            return
        values = elem.value if elem.VM > 1 else [elem.value]
        mapped = []
        for value in values:
            value = str(value)
            new = self.owner.mapping.uid(value)
            if new != value:
                self.result.original_uids.add(value)
            mapped.append(new)
        elem.value = mapped if elem.VM > 1 else mapped[0]

    def _dummy(self, elem) -> None:
        if elem.VR == "UI":
            self._uids(elem)
        elif elem.VR in DUMMIES:
            elem.value = DUMMIES[elem.VR]
        elif elem.VR in ("US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"):
            elem.value = 0
        elif elem.VR in ("OB", "OW", "UN", "OD", "OF", "OL", "OV"):
            elem.value = bytes(8)
        else:
            elem.value = None

    def _dates(self, ds: Dataset, elem, done: set[int]) -> None:
        vr, shift = elem.VR, self.shift
        if elem.value in (None, ""):
            return
        if vr == "DA" and elem.VM == 1:
            keyword = keyword_for_tag(elem.tag)
            time_keyword = keyword[:-4] + "Time" if keyword.endswith("Date") else ""
            time = ds.data_element(time_keyword) if time_keyword and time_keyword in ds else None
            if time is not None and time.VM == 1 and time.value and resolve(self.owner._actions.get(int(time.tag), "C"), "TM") == "C":
                pair = shift.pair(str(elem.value), str(time.value))
                if pair is not None:
                    elem.value, time.value = pair
                    done.add(time.tag)
                    return
        convert = {"DA": shift.date, "TM": shift.time, "DT": shift.datetime}[vr]
        values = list(elem.value) if elem.VM > 1 else [elem.value]
        shifted = [convert(str(v)) for v in values]
        if any(s is None for s in shifted):
            elem.value = None  # not a date we can shift: emptied rather than kept
            self.result.actions["Z"] += 1
            return
        elem.value = shifted if elem.VM > 1 else shifted[0]

    def _text(self, elem, patterns: bool) -> None:
        scrub = self.scrubber.clean if patterns else self.scrubber.identifiers_only
        if elem.VR == "PN":
            elem.value = DUMMIES["PN"] if self.scrubber.identifiers_only(str(elem.value)) != str(elem.value) else elem.value
            return
        if elem.VM > 1:
            elem.value = [scrub(str(v)) for v in elem.value]
        else:
            elem.value = scrub(str(elem.value))

    def _private(self, ds: Dataset) -> set:
        """The private tags of this data set on the site's safe list (with their creators); none without RSP."""
        if not self.owner.options.retain_safe_private or not self.owner.safe_private:
            return set()
        kept = set()
        for tag in ds.keys():
            if not tag.is_private or tag.element < 0x1000:
                continue
            creator_tag = (tag.group << 16) | (tag.element >> 8)
            creator = ds.get(creator_tag)
            name = str(creator.value).strip() if creator is not None else ""
            if (tag.group, tag.element & 0xFF, name) in self.owner.safe_private:
                kept |= {tag, pydicom.tag.Tag(creator_tag)}
        return kept


def _identifiers(ds: Dataset) -> tuple[list[str], list[str]]:
    """(strong identifiers the output is checked against, everything the text scrubber looks for)."""
    names, ids, dates = [], [], []
    for keyword in NAME_KEYWORDS:
        for value in _values(ds, keyword):
            names.append(value)
    for keyword in ID_KEYWORDS:
        ids += _values(ds, keyword)
    for item in ds.get("OtherPatientIDsSequence", []) or []:
        ids += _values(item, "PatientID")
    for keyword in DATE_KEYWORDS:
        dates += _values(ds, keyword)
    patient_names = _values(ds, "PatientName") + _values(ds, "OtherPatientNames")
    strong = [n for n in patient_names if len(n) >= 4]
    strong += [i for i in _values(ds, "PatientID") + _values(ds, "OtherPatientIDs") + _values(ds, "AccessionNumber")
               if len(i) >= 6]
    strong += [d for d in dates if len(d) == 8]
    placeholders = {str(v).upper() for v in DUMMIES.values()}  # an input de-identified before: not an identity
    strong = [value for value in strong if value.upper() not in placeholders]
    return strong, identifiers_of(names, ids, dates)


def _values(ds: Dataset, keyword: str) -> list[str]:
    tag = _TAGS.get(keyword) or _TAGS.setdefault(keyword, tag_for_keyword(keyword))
    if tag not in ds._dict:
        return []
    value = ds[tag].value
    if value in (None, ""):
        return []
    values = value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    return [str(v).strip() for v in values if str(v).strip()]
