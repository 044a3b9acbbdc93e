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
    JPEGLossless,
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
    JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless,
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
# NM, PET and SEG are almost never stored JPEG-compressed: uncompressed and RLE leave room for the results below.
RARELY_COMPRESSED = {"1.2.840.10008.5.1.4.1.1.20", "1.2.840.10008.5.1.4.1.1.128", "1.2.840.10008.5.1.4.1.1.66.4"}
# Results stored with a study (AI SR, review SR, GSPS, Parametric Map): never compressed.
GET_RESULT_CLASSES = [
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.30",  # Parametric Map
]
MAX_CONTEXTS = 128


def get_contexts() -> tuple[list[PresentationContext], list]:
    """The C-GET model plus storage contexts (SCP role) for the common image and result classes (<= 128)."""
    storage = []
    for sop_class in GET_IMAGE_CLASSES:
        storage.append(build_context(sop_class, UNCOMPRESSED))
        compressed = [RLELossless] if sop_class in RARELY_COMPRESSED else GET_COMPRESSED
        storage.extend(build_context(sop_class, syntax) for syntax in compressed)
    storage.extend(build_context(sop_class, UNCOMPRESSED) for sop_class in GET_RESULT_CLASSES)
    classes = GET_IMAGE_CLASSES + GET_RESULT_CLASSES
    roles = [build_role(sop_class, scp_role=True) for sop_class in classes]
    contexts = [build_context(GET_MODEL), *storage]
    assert len(contexts) <= MAX_CONTEXTS, len(contexts)
    return contexts, roles
