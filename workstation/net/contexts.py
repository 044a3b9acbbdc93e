"""Presentation contexts: which SOP classes and transfer syntaxes we ask for or accept."""

from __future__ import annotations

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AllStoragePresentationContexts, StoragePresentationContexts, build_context, build_role
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

# Everything we can decode, so a PACS never has to transcode (or refuse) what it stores in compressed form.
TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
    JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless,
    JPEG2000Lossless, JPEG2000, RLELossless,
]

VERIFICATION = [build_context(Verification)]
FIND = [build_context(StudyRootQueryRetrieveInformationModelFind)]
MOVE = [build_context(StudyRootQueryRetrieveInformationModelMove)]
GET_MODEL = StudyRootQueryRetrieveInformationModelGet


def storage_contexts_for_receiver() -> list[PresentationContext]:
    """All storage SOP classes, every transfer syntax we decode (an SCP has no 128-context limit)."""
    return [build_context(c.abstract_syntax, TRANSFER_SYNTAXES) for c in AllStoragePresentationContexts]


def get_contexts() -> tuple[list[PresentationContext], list]:
    """C-GET needs the storage classes on the same association (at most 128 contexts) with SCP role."""
    storage = [build_context(c.abstract_syntax, TRANSFER_SYNTAXES) for c in StoragePresentationContexts[:127]]
    roles = [build_role(c.abstract_syntax, scp_role=True) for c in storage]
    return [build_context(GET_MODEL), *storage], roles
