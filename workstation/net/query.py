"""C-FIND at study and series level (Study Root), as generators of matches."""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.dataset import Dataset
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from workstation.core.pacs import SeriesMatch, StudyMatch, StudyQuery
from workstation.core.site import LocalAE, PacsNode
from workstation.net.association import associate, lost_connection
from workstation.net.contexts import FIND
from workstation.net.errors import OperationFailed

PENDING = (0xFF00, 0xFF01)


def study_identifier(query: StudyQuery) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientName = query.patient_name
    ds.PatientID = query.patient_id
    ds.AccessionNumber = query.accession_number
    ds.StudyDate = query.date_range
    ds.StudyTime = ""
    ds.ModalitiesInStudy = query.modality
    ds.StudyDescription = ""  # matched here, case-insensitively: PACS matching of free text is exact and case-sensitive
    ds.StudyInstanceUID = ""
    ds.NumberOfStudyRelatedSeries = ""
    ds.NumberOfStudyRelatedInstances = ""
    return ds


def series_identifier(study_instance_uid: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = study_instance_uid
    ds.SeriesInstanceUID = ""
    ds.SeriesNumber = ""
    ds.Modality = ""
    ds.SeriesDescription = ""
    ds.NumberOfSeriesRelatedInstances = ""
    return ds


def find_studies(node: PacsNode, local: LocalAE, query: StudyQuery) -> Iterator[StudyMatch]:
    wanted = query.description.strip().lower()
    for identifier in _find(node, local, study_identifier(query)):
        if wanted and wanted not in _text(identifier, "StudyDescription").lower():
            continue
        yield StudyMatch(
            study_instance_uid=_text(identifier, "StudyInstanceUID"),
            patient_id=_text(identifier, "PatientID"),
            patient_name=_text(identifier, "PatientName"),
            study_date=_text(identifier, "StudyDate"),
            study_time=_text(identifier, "StudyTime"),
            description=_text(identifier, "StudyDescription"),
            accession_number=_text(identifier, "AccessionNumber"),
            modalities=_modalities(identifier),
            series_count=_count(identifier, "NumberOfStudyRelatedSeries"),
            instance_count=_count(identifier, "NumberOfStudyRelatedInstances"),
        )


def find_series(node: PacsNode, local: LocalAE, study_instance_uid: str) -> Iterator[SeriesMatch]:
    for identifier in _find(node, local, series_identifier(study_instance_uid)):
        yield SeriesMatch(
            series_instance_uid=_text(identifier, "SeriesInstanceUID"),
            study_instance_uid=_text(identifier, "StudyInstanceUID") or study_instance_uid,
            number=_count(identifier, "SeriesNumber"),
            modality=_text(identifier, "Modality"),
            description=_text(identifier, "SeriesDescription"),
            instance_count=_count(identifier, "NumberOfSeriesRelatedInstances"),
        )


def _find(node: PacsNode, local: LocalAE, identifier: Dataset) -> Iterator[Dataset]:
    with associate(node, local, FIND) as assoc:
        for status, match in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
            code = status.get("Status") if status else None
            if code is None:
                raise lost_connection(node, assoc, "during C-FIND")
            if code in PENDING:
                if match is not None:
                    yield match
            elif code == 0x0000:
                return
            else:
                comment = status.get("ErrorComment", "")
                raise OperationFailed(f"{node.name}: C-FIND failed with status 0x{code:04X} {comment}".rstrip(), code)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _count(ds: Dataset, keyword: str) -> int | None:
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


def _modalities(ds: Dataset) -> tuple[str, ...]:
    value = ds.get("ModalitiesInStudy")
    if not value:
        return ()
    return tuple(str(v) for v in value) if not isinstance(value, str) else tuple(v for v in value.split("\\") if v)
