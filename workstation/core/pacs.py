"""Query/retrieve values: what a user searches for, what a PACS answers, how a retrieval went."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DATE = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class StudyQuery:
    """Study-level search keys; empty means "any". Patient name accepts DICOM wildcards * and ?."""

    patient_name: str = ""
    patient_id: str = ""
    accession_number: str = ""
    date_from: str = ""  # YYYYMMDD
    date_to: str = ""
    modality: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value and not DATE.match(value):
                raise ValueError(f"{name} must be YYYYMMDD, got {value!r}")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"date range is reversed: {self.date_from} > {self.date_to}")

    @property
    def date_range(self) -> str:
        """DICOM range matching: "FROM-TO", "FROM-", "-TO" or ""."""
        if not self.date_from and not self.date_to:
            return ""
        if self.date_from == self.date_to:
            return self.date_from
        return f"{self.date_from}-{self.date_to}"


@dataclass(frozen=True)
class StudyMatch:
    study_instance_uid: str
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_time: str = ""
    description: str = ""
    accession_number: str = ""
    modalities: tuple[str, ...] = ()
    series_count: int | None = None  # not every PACS answers these counts
    instance_count: int | None = None


@dataclass(frozen=True)
class SeriesMatch:
    series_instance_uid: str
    study_instance_uid: str
    number: int | None = None
    modality: str = ""
    description: str = ""
    instance_count: int | None = None


@dataclass(frozen=True)
class RetrieveProgress:
    """One C-MOVE/C-GET pending or final response, in the standard's terms."""

    completed: int = 0
    failed: int = 0
    warning: int = 0
    remaining: int | None = None
    status: int | None = None  # DIMSE status of this response
    final: bool = False
    failed_instances: tuple[str, ...] = ()  # Failed SOP Instance UID List of the final response

    @property
    def expected(self) -> int | None:
        if self.remaining is None:
            return None
        return self.completed + self.failed + self.warning + self.remaining


@dataclass
class RetrieveResult:
    """What a retrieval brought: every instance stored locally, and every failure with its reason."""

    study_instance_uid: str
    received: int = 0  # instances stored in the cache by this retrieval (new or already there)
    new: int = 0  # of which were not in the cache before
    failed: int = 0  # sub-operations the PACS reported failed, plus instances we could not store
    cancelled: bool = False
    failures: list[str] = field(default_factory=list)
    status: str = ""  # the final status in words

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cancelled and not self.failures


@dataclass(frozen=True)
class StoredInstance:
    """An instance now in the local cache; `new` is False if it was there already."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    path: Path
    new: bool
