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
from pynetdicom import AllStoragePresentationContexts, build_context, build_role
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


# C-GET brings instances back on our own association, which holds at most 128 presentation contexts,
# and a PACS accepts one transfer syntax per context. So each image class gets one context for the
# uncompressed syntaxes plus one per common compressed syntax: the PACS can then send what it stores
# as it is, rather than transcode (which Orthanc, for one, cannot do from JPEG 2000).
GET_IMAGE_CLASSES = [
    "1.2.840.10008.5.1.4.1.1.2",  # CT
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT
    "1.2.840.10008.5.1.4.1.1.4",  # MR
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR
    "1.2.840.10008.5.1.4.1.1.1",  # CR
    "1.2.840.10008.5.1.4.1.1.1.1",  # DX for presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # DX for processing
    "1.2.840.10008.5.1.4.1.1.1.2",  # MG for presentation
    "1.2.840.10008.5.1.4.1.1.6.1",  # US
    "1.2.840.10008.5.1.4.1.1.3.1",  # US multi-frame
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame grey byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame grey word SC
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame true colour SC
    "1.2.840.10008.5.1.4.1.1.12.1",  # XA
    "1.2.840.10008.5.1.4.1.1.20",  # NM
    "1.2.840.10008.5.1.4.1.1.128",  # PET
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
]
UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian]
GET_COMPRESSED = [JPEGBaseline8Bit, JPEGLosslessSV1, JPEGLSLossless, JPEG2000Lossless, JPEG2000, RLELossless]


def get_contexts() -> tuple[list[PresentationContext], list]:
    """The C-GET model plus storage contexts (SCP role) for the common image classes: 127 in all."""
    storage = []
    for sop_class in GET_IMAGE_CLASSES:
        storage.append(build_context(sop_class, UNCOMPRESSED))
        storage.extend(build_context(sop_class, syntax) for syntax in GET_COMPRESSED)
    roles = [build_role(sop_class, scp_role=True) for sop_class in GET_IMAGE_CLASSES]
    return [build_context(GET_MODEL), *storage], roles
