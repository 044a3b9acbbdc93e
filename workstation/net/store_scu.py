"""C-STORE of our own objects (results) to a PACS node: one association, a status per object.

Each object is offered in the transfer syntax it was written in (plus the
uncompressed default), so nothing is transcoded. An object whose presentation
context the PACS rejects, or that it answers with a failure status, is
reported with the reason and the others are still sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, UID
from pynetdicom import build_context

from workstation.core.site import LocalAE, PacsNode
from workstation.core.tasks import CancelToken
from workstation.net.association import associate, lost_connection

WARNINGS = (0xB000, 0xB006, 0xB007)  # stored, with coercion or elements discarded


@dataclass(frozen=True)
class Outgoing:
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    data: bytes  # the Part 10 file


@dataclass(frozen=True)
class StoreOutcome:
    sop_instance_uid: str
    stored: bool
    status: int | None  # None: no C-STORE answer (context rejected, cancelled, connection lost)
    reason: str = ""
    refused: bool = False  # the PACS said no (failure status, or it does not take the SOP class): retrying won't help


def outgoing(data: bytes) -> Outgoing:
    """The identity of a Part 10 file, from its meta information."""
    meta = dcmread(BytesIO(data), stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).file_meta
    return Outgoing(str(meta.MediaStorageSOPClassUID), str(meta.MediaStorageSOPInstanceUID),
                    str(meta.TransferSyntaxUID), data)


def store_objects(node: PacsNode, local: LocalAE, objects: list[Outgoing], cancel: CancelToken | None = None,
                  progress: Callable[[int, int], None] = lambda _d, _t: None) -> list[StoreOutcome]:
    """Send every object; PacsUnreachable / AssociationRejected when no association could be made."""
    contexts, seen = [], set()
    for item in objects:
        key = (item.sop_class_uid, item.transfer_syntax_uid)
        if key not in seen:
            seen.add(key)
            syntaxes = list(dict.fromkeys([item.transfer_syntax_uid, ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
            contexts.append(build_context(item.sop_class_uid, syntaxes))
    outcomes: list[StoreOutcome] = []
    with associate(node, local, contexts) as assoc:
        accepted = {(c.abstract_syntax, c.transfer_syntax[0]) for c in assoc.accepted_contexts}
        for number, item in enumerate(objects):
            if cancel is not None and cancel.cancelled:
                outcomes += [StoreOutcome(o.sop_instance_uid, False, None, "cancelled") for o in objects[number:]]
                break
            if not any(sop == item.sop_class_uid for sop, _ in accepted):
                outcomes.append(StoreOutcome(item.sop_instance_uid, False, None,
                                             f"{node.name} does not accept {UID(item.sop_class_uid).name} "
                                             "(presentation context rejected)", refused=True))
                continue
            if not assoc.is_established:
                reason = str(lost_connection(node, assoc, "while sending"))
                outcomes += [StoreOutcome(o.sop_instance_uid, False, None, reason) for o in objects[number:]]
                break
            outcomes.append(_send(node, assoc, item))
            progress(number + 1, len(objects))
    return outcomes


def _send(node: PacsNode, assoc, item: Outgoing) -> StoreOutcome:
    dataset = dcmread(BytesIO(item.data))
    response = assoc.send_c_store(dataset)
    status = int(response.Status) if "Status" in response else None
    if status is None:
        return StoreOutcome(item.sop_instance_uid, False, None, f"no answer from {node.name} (timeout or abort)")
    if status == 0x0000 or status in WARNINGS:
        return StoreOutcome(item.sop_instance_uid, True, status)
    comment = str(response.get("ErrorComment", "") or "")
    return StoreOutcome(item.sop_instance_uid, False, status,
                        f"{node.name} refused it: status 0x{status:04X}" + (f" ({comment})" if comment else ""),
                        refused=True)
