"""C-STORE of our own objects (results) to a PACS node: one association, a status per object.

The objects travel as the bytes they were queued as: the data set of the Part 10
file goes out fragment by fragment on our own upper layer (ul.py, dimse.py), never
decoded and encoded again (pynetdicom did that for every object: ~0.2 s per SR of
20 findings, and its thread hand-offs per PDU on a big Parametric Map).

Presentation contexts, per SOP class: each compressed transfer syntax the objects
are in, alone (so a PACS that takes it cannot answer with an uncompressed syntax
instead: offered together, Orthanc picks uncompressed), and Explicit/Implicit VR
Little Endian. An object goes in its own syntax when the PACS accepted it; when
the PACS takes the SOP class only uncompressed, the object is decompressed (the
same pixel values, the same SOP Instance UID: lossless) and sent in the accepted
syntax. An object whose SOP class the PACS does not take at all, or that it answers
with a failure status, is reported with the reason and the others are still sent.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, UID
from pynetdicom import build_context
from pynetdicom.presentation import PresentationContext

from workstation.core.site import LocalAE, PacsNode
from workstation.core.tasks import CancelToken
from workstation.net import ul
from workstation.net.association import (
    closed_during_setup,
    connect,
    connection_lost,
    no_answer,
    not_answering,
    peer_aborted,
    rejected,
    with_retries,
)
from workstation.net.dimse import (
    AFFECTED_SOP_CLASS_UID,
    AFFECTED_SOP_INSTANCE_UID,
    C_STORE_RQ,
    C_STORE_RSP,
    COMMAND_DATA_SET_TYPE,
    COMMAND_FIELD,
    ERROR_COMMENT,
    MESSAGE_ID,
    MESSAGE_ID_BEING_RESPONDED_TO,
    PRIORITY,
    STATUS,
    MessageChannel,
    encode_command_set,
    encode_data_set,
    ui,
    us,
)
log = logging.getLogger(__name__)

WARNINGS = (0xB000, 0xB006, 0xB007)  # stored, with coercion or elements discarded
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
SEND_BATCH = 1 << 20  # bytes of PDUs handed to the socket at once
MAX_FRAGMENT = 1 << 22  # data per PDV when the peer sets no limit


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


# ----- Part 10 files

_TAG_VR = struct.Struct("<HH2s")
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_META = {0x0002: "sop_class_uid", 0x0003: "sop_instance_uid", 0x0010: "transfer_syntax_uid"}


def split_part10(data: bytes) -> tuple[dict[str, str], int]:
    """The meta information we need ({sop_class_uid, sop_instance_uid, transfer_syntax_uid}) and where the data set
    starts, read from the file meta group (always explicit VR little endian) without parsing the data set."""
    if len(data) < 132 or data[128:132] != b"DICM":
        raise ValueError("not a DICOM Part 10 file (no DICM prefix)")
    found: dict[str, str] = {}
    at = 132
    while at + 8 <= len(data):
        group, element, vr = _TAG_VR.unpack_from(data, at)
        if group != 0x0002:
            break
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<I", data, at + 8)
            start = at + 12
        else:
            (length,) = struct.unpack_from("<H", data, at + 6)
            start = at + 8
        if element in _META:
            found[_META[element]] = data[start:start + length].rstrip(b"\0 ").decode("ascii")
        at = start + length
    missing = sorted(set(_META.values()) - set(found))
    if missing:
        raise ValueError(f"the file meta information lacks {', '.join(missing)}")
    return found, at


def outgoing(data: bytes) -> Outgoing:
    """The identity of a Part 10 file, from its meta information."""
    meta, _ = split_part10(data)
    return Outgoing(meta["sop_class_uid"], meta["sop_instance_uid"], meta["transfer_syntax_uid"], data)


# ----- the association

class _Contexts:
    """What we propose, and which accepted context each object goes on."""

    def __init__(self, objects: list[Outgoing]) -> None:
        self.proposed: list[PresentationContext] = []
        self._own: dict[tuple[str, str], PresentationContext] = {}
        self._fallback: dict[str, PresentationContext] = {}
        for item in objects:
            syntax = UID(item.transfer_syntax_uid)
            if syntax not in UNCOMPRESSED and (item.sop_class_uid, syntax) not in self._own:
                self._own[(item.sop_class_uid, syntax)] = self._add(item.sop_class_uid, [syntax])
            if item.sop_class_uid not in self._fallback:
                self._fallback[item.sop_class_uid] = self._add(item.sop_class_uid, list(UNCOMPRESSED))
        self.accepted: dict[int, UID] = {}

    def _add(self, sop_class_uid: str, syntaxes: list[str]) -> PresentationContext:
        context = build_context(sop_class_uid, syntaxes)
        self.proposed.append(context)
        return context

    def choose(self, item: Outgoing) -> tuple[int, UID] | None:
        """(context ID, transfer syntax to send in) for the object; None when its SOP class was not accepted."""
        own = self._own.get((item.sop_class_uid, UID(item.transfer_syntax_uid)))
        for context in (own, self._fallback.get(item.sop_class_uid)):
            if context is not None and context.context_id in self.accepted:
                return context.context_id, self.accepted[context.context_id]
        return None


class _StoreAssociation:
    def __init__(self, node: PacsNode, local: LocalAE, channel: MessageChannel, max_length: int) -> None:
        self.node, self.local, self.channel = node, local, channel
        self.pdus = channel.pdus
        self.max_fragment = min(max_length - 6, MAX_FRAGMENT) if max_length > 6 else MAX_FRAGMENT
        self.broken = ""  # why the association can no longer be used
        self._message_id = 0

    def store(self, item: Outgoing, context_id: int, syntax: UID) -> StoreOutcome:
        if UID(item.transfer_syntax_uid) == syntax:
            _, offset = split_part10(item.data)
            data_set = memoryview(item.data)[offset:]
        else:
            try:
                data_set = memoryview(_transcoded(item, syntax))
            except Exception as exc:  # noqa: BLE001 - no decoder, a broken file: this object cannot go, the others can
                log.warning("%s: cannot convert %s to %s", self.node.name, item.sop_instance_uid, syntax.name,
                            exc_info=True)
                return StoreOutcome(item.sop_instance_uid, False, None,
                                    f"{self.node.name} takes {UID(item.sop_class_uid).name} only in {syntax.name}, "
                                    f"and the object could not be converted: {exc}", refused=True)
        self._message_id = self._message_id % 0xFFFF + 1
        command = encode_command_set([
            (AFFECTED_SOP_CLASS_UID, ui(item.sop_class_uid)),
            (COMMAND_FIELD, us(C_STORE_RQ)),
            (MESSAGE_ID, us(self._message_id)),
            (PRIORITY, us(0x0000)),  # medium
            (COMMAND_DATA_SET_TYPE, us(0x0000)),  # a data set follows
            (AFFECTED_SOP_INSTANCE_UID, ui(item.sop_instance_uid)),
        ])
        try:
            self._send(context_id, ul.COMMAND, memoryview(command))
            self._send(context_id, 0, data_set)
            while True:
                message = self.channel.receive()
                if message is None:
                    raise ul.ProtocolError("the PACS asked to release the association during a C-STORE")
                response = message.command
                if response.command_field == C_STORE_RSP and response.us(MESSAGE_ID_BEING_RESPONDED_TO) == self._message_id:
                    break
                log.warning("%s: ignored a message 0x%04X during a C-STORE", self.node.name, response.command_field or 0)
        except (TimeoutError, socket.timeout):
            self.broken = no_answer(self.node)
        except ul.ProtocolError as exc:
            self.broken = f"protocol error: {exc}"
            self._abort()
        except (OSError, ul.PeerAborted):
            self.broken = peer_aborted(self.local.ae_title)
        if self.broken:
            return StoreOutcome(item.sop_instance_uid, False, None, self.lost())
        status = response.us(STATUS)
        if status is None:
            return StoreOutcome(item.sop_instance_uid, False, None, f"no status from {self.node.name}")
        if status == 0x0000 or status in WARNINGS:
            return StoreOutcome(item.sop_instance_uid, True, status)
        comment = response.text(ERROR_COMMENT)
        return StoreOutcome(item.sop_instance_uid, False, status,
                            f"{self.node.name} refused it: status 0x{status:04X}" + (f" ({comment})" if comment else ""),
                            refused=True)

    def lost(self) -> str:
        return str(connection_lost(self.node, "while sending", self.broken))

    def _send(self, context_id: int, control: int, data: memoryview) -> None:
        """`data` as P-DATA-TF PDUs of one PDV each, no larger than the peer takes, handed over in batches."""
        size, total = self.max_fragment, len(data)
        batch = bytearray()
        start = 0
        while True:
            chunk = data[start:start + size]
            start += len(chunk)
            flags = control | (ul.LAST_FRAGMENT if start >= total else 0)
            batch += ul.PDU_HEADER.pack(ul.P_DATA_TF_PDU, len(chunk) + 6)
            batch += ul.PDV_HEADER.pack(len(chunk) + 2, context_id, flags)
            batch += chunk
            if start >= total or len(batch) >= SEND_BATCH:
                self.pdus.send(batch)
                batch = bytearray()
            if start >= total:
                return

    def _abort(self) -> None:
        try:
            self.pdus.send(ul.a_abort())
        except OSError:
            pass

    def close(self) -> None:
        """A-RELEASE (A-ABORT after a failure), then the connection is closed."""
        try:
            if self.broken:
                return
            self.pdus.send(ul.A_RELEASE_RQ)
            while True:
                pdu_type, length = self.pdus.read_pdu_header()
                if pdu_type in (ul.A_RELEASE_RP_PDU, ul.A_ABORT_PDU):
                    return
                self.pdus.skip(length)
        except (OSError, ul.ProtocolError, ul.PeerAborted):
            pass
        finally:
            self.pdus.close()


def _transcoded(item: Outgoing, syntax: UID) -> bytes:
    """The object's data set in `syntax` (uncompressed): decompressed losslessly, same SOP Instance UID."""
    dataset = dcmread(BytesIO(item.data))
    if dataset.file_meta.TransferSyntaxUID.is_compressed:
        dataset.decompress(generate_instance_uid=False)
    return encode_data_set(dataset, syntax)


def _open(node: PacsNode, local: LocalAE, contexts: _Contexts) -> _StoreAssociation:
    proposal = ul.Proposal(contexts.proposed, [])
    pdus = ul.PduSocket(connect(node))
    try:
        pdus.send(proposal.a_associate_rq(local.ae_title, node.ae_title))
        pdu_type, encoded = pdus.read_pdu()
        answer = (ul.decode_association_pdu(pdu_type, encoded)
                  if pdu_type in (ul.A_ASSOCIATE_AC_PDU, ul.A_ASSOCIATE_RJ_PDU) else None)
    except socket.timeout:
        pdus.close()
        raise not_answering(node) from None
    except (OSError, ul.ProtocolError, ul.PeerAborted):
        pdus.close()
        raise closed_during_setup(node, local) from None
    if answer is None:  # A-ABORT, or not an association answer at all
        pdus.close()
        raise closed_during_setup(node, local)
    if pdu_type == ul.A_ASSOCIATE_RJ_PDU:
        pdus.close()
        raise rejected(node, answer)
    contexts.accepted = ul.accepted_syntaxes(answer.presentation_context_definition_results_list)
    max_length = ul.maximum_length(answer)
    return _StoreAssociation(node, local, MessageChannel(pdus, contexts.accepted, None, max_length), max_length)


def store_objects(node: PacsNode, local: LocalAE, objects: list[Outgoing], cancel: CancelToken | None = None,
                  progress: Callable[[int, int], None] = lambda _d, _t: None) -> list[StoreOutcome]:
    """Send every object; PacsUnreachable / AssociationRejected / AssociationAborted when no association could be made."""
    if not objects:
        return []
    contexts = _Contexts(objects)
    assoc = with_retries(node, lambda: _open(node, local, contexts))
    outcomes: list[StoreOutcome] = []
    try:
        for number, item in enumerate(objects):
            if cancel is not None and cancel.cancelled:
                outcomes += [StoreOutcome(o.sop_instance_uid, False, None, "cancelled") for o in objects[number:]]
                break
            if assoc.broken:
                reason = assoc.lost()
                outcomes += [StoreOutcome(o.sop_instance_uid, False, None, reason) for o in objects[number:]]
                break
            chosen = contexts.choose(item)
            if chosen is None:
                outcomes.append(StoreOutcome(item.sop_instance_uid, False, None,
                                             f"{node.name} does not accept {UID(item.sop_class_uid).name} "
                                             "(presentation context rejected)", refused=True))
                continue
            outcomes.append(assoc.store(item, *chosen))
            progress(number + 1, len(objects))
    finally:
        assoc.close()
    return outcomes

