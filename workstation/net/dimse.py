"""DIMSE messages over P-DATA-TF: command sets, and C-STORE data sets streamed into a sink.

A command set is always implicit VR little endian (PS3.7 6.3.1), so it is encoded and
decoded here by hand: it is a few elements, and pydicom per message would cost more
than receiving the instance. Data sets of incoming C-STOREs are never decoded: each
fragment is handed to the sink's writer as it arrives (PS3.7 Annex E, PS3.8 Annex E).
"""

from __future__ import annotations

import logging
import struct
from io import BytesIO
from typing import NamedTuple, Protocol

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.dsutils import decode, encode

from workstation.net.ul import (
    A_ABORT_PDU,
    A_RELEASE_RQ_PDU,
    COMMAND,
    LAST_FRAGMENT,
    P_DATA_TF_PDU,
    PduSocket,
    PeerAborted,
    ProtocolError,
    p_data_tf,
)

log = logging.getLogger(__name__)

# Command Set elements (group 0000), PS3.7 Annex E
AFFECTED_SOP_CLASS_UID, COMMAND_FIELD, MESSAGE_ID, MESSAGE_ID_BEING_RESPONDED_TO = 0x0002, 0x0100, 0x0110, 0x0120
MOVE_DESTINATION, PRIORITY, COMMAND_DATA_SET_TYPE, STATUS, ERROR_COMMENT = 0x0600, 0x0700, 0x0800, 0x0900, 0x0902
AFFECTED_SOP_INSTANCE_UID = 0x1000
NUMBER_OF_REMAINING_SUBOPERATIONS, NUMBER_OF_COMPLETED_SUBOPERATIONS = 0x1020, 0x1021
NUMBER_OF_FAILED_SUBOPERATIONS, NUMBER_OF_WARNING_SUBOPERATIONS = 0x1022, 0x1023

# CommandField values
C_STORE_RQ, C_STORE_RSP, C_GET_RQ, C_GET_RSP, C_MOVE_RQ, C_MOVE_RSP = 0x0001, 0x8001, 0x0010, 0x8010, 0x0021, 0x8021
C_ECHO_RQ, C_ECHO_RSP, C_CANCEL_RQ = 0x0030, 0x8030, 0x0FFF

NO_DATA_SET = 0x0101  # CommandDataSetType: no data set follows
SUCCESS, OUT_OF_RESOURCES = 0x0000, 0xA700
PENDING = (0xFF00, 0xFF01)
MAX_COMMAND_SET = 1 << 16
MAX_IDENTIFIER = 1 << 24  # the data set of anything but a C-STORE-RQ (e.g. a C-GET-RSP identifier) is kept in memory

ELEMENT_HEADER = struct.Struct("<HHI")  # group, element, value length
US = struct.Struct("<H")


class InstanceWriter(Protocol):
    """Where the data set of one C-STORE-RQ goes, fragment by fragment."""

    def write(self, fragment: memoryview) -> None: ...

    def commit(self) -> int | tuple[int, str]:
        """The instance is complete: keep it; returns the C-STORE status to answer (0x0000 stored), or
        (status, error comment)."""

    def discard(self) -> None:
        """The transfer broke off: forget what was written."""


class InstanceSink(Protocol):
    """Where the instances of incoming C-STOREs go (services implements it: net does not know the cache)."""

    def open_instance(self, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> InstanceWriter: ...

    def prepare(self) -> None:
        """Called right after each C-STORE-RSP, while the peer works on its next message and nothing waits
        for us: the moment to make ready what the next instance needs (a file takes 0.1-0.3 ms to create)."""


class CommandSet:
    """A decoded command set: the raw value of each element, by element number.

    Elements after the command set (group 0000) are ignored: DCMTK, in Orthanc, appends the
    identifier of a pending C-GET-RSP to its command PDV while announcing no data set.
    """

    __slots__ = ("values",)

    def __init__(self, encoded: bytes | bytearray) -> None:
        values, offset, end = {}, 0, len(encoded)
        while offset < end:
            if offset + 8 > end:
                raise ProtocolError("truncated command set")
            group, element, length = ELEMENT_HEADER.unpack_from(encoded, offset)
            if group != 0x0000:
                break
            if offset + 8 + length > end:
                raise ProtocolError(f"command set element (0000,{element:04X}) longer than the command set")
            values[element] = bytes(encoded[offset + 8:offset + 8 + length])
            offset += 8 + length
        self.values = values

    @property
    def command_field(self) -> int | None:
        return self.us(COMMAND_FIELD)

    @property
    def has_data_set(self) -> bool:
        return self.us(COMMAND_DATA_SET_TYPE) != NO_DATA_SET

    def us(self, element: int) -> int | None:
        value = self.values.get(element)
        return US.unpack(value)[0] if value is not None and len(value) == 2 else None

    def text(self, element: int) -> str:
        return self.values.get(element, b"").rstrip(b"\x00 ").decode("ascii", "replace")


def encode_command_set(elements: list[tuple[int, bytes]]) -> bytes:
    """(element, encoded value) pairs in ascending order -> the command set with its group length."""
    body = b"".join(ELEMENT_HEADER.pack(0, element, len(value)) + value for element, value in elements)
    return ELEMENT_HEADER.pack(0, 0x0000, 4) + struct.pack("<I", len(body)) + body


def us(value: int) -> bytes:
    return US.pack(value)


def ui(uid: str) -> bytes:
    raw = uid.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def ae(title: str) -> bytes:
    raw = title.encode("ascii")
    return raw + b" " if len(raw) % 2 else raw


def lo(text: str) -> bytes:
    raw = text.encode("ascii", "replace").replace(b"\\", b"/")
    return raw + b" " if len(raw) % 2 else raw


def c_store_rsp(request: CommandSet, status: int, error_comment: str = "") -> bytes:
    """C-STORE-RSP; a failure may say why in its Error Comment (64 characters at most, PS3.7 C.4.2.1.4)."""
    comment = [(ERROR_COMMENT, lo(error_comment[:64]))] if error_comment and status != SUCCESS else []
    return encode_command_set([
        (AFFECTED_SOP_CLASS_UID, request.values.get(AFFECTED_SOP_CLASS_UID, b"")),
        (COMMAND_FIELD, us(C_STORE_RSP)),
        (MESSAGE_ID_BEING_RESPONDED_TO, request.values.get(MESSAGE_ID, us(0))),
        (COMMAND_DATA_SET_TYPE, us(NO_DATA_SET)),
        (STATUS, us(status)),
        *comment,
        (AFFECTED_SOP_INSTANCE_UID, request.values.get(AFFECTED_SOP_INSTANCE_UID, b"")),
    ])


def c_echo_rsp(request: CommandSet) -> bytes:
    return encode_command_set([
        (AFFECTED_SOP_CLASS_UID, request.values.get(AFFECTED_SOP_CLASS_UID, b"")),
        (COMMAND_FIELD, us(C_ECHO_RSP)),
        (MESSAGE_ID_BEING_RESPONDED_TO, request.values.get(MESSAGE_ID, us(0))),
        (COMMAND_DATA_SET_TYPE, us(NO_DATA_SET)),
        (STATUS, us(SUCCESS)),
    ])


def retrieve_rq(command_field: int, sop_class_uid: str, message_id: int, move_destination: str | None = None) -> bytes:
    """C-GET-RQ, or C-MOVE-RQ with its Move Destination; an identifier follows."""
    destination = [] if move_destination is None else [(MOVE_DESTINATION, ae(move_destination))]
    return encode_command_set([
        (AFFECTED_SOP_CLASS_UID, ui(sop_class_uid)),
        (COMMAND_FIELD, us(command_field)),
        (MESSAGE_ID, us(message_id)),
        *destination,
        (PRIORITY, us(0x0000)),  # medium
        (COMMAND_DATA_SET_TYPE, us(0x0000)),
    ])


def c_cancel_rq(message_id: int) -> bytes:
    return encode_command_set([
        (COMMAND_FIELD, us(C_CANCEL_RQ)),
        (MESSAGE_ID_BEING_RESPONDED_TO, us(message_id)),
        (COMMAND_DATA_SET_TYPE, us(NO_DATA_SET)),
    ])


def encode_data_set(ds: Dataset, syntax: UID) -> bytes:
    encoded = encode(ds, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)
    if encoded is None:
        raise ValueError(f"cannot encode the identifier in {syntax.name}")
    return encoded


def decode_data_set(encoded: bytes, syntax: UID) -> Dataset:
    return decode(BytesIO(encoded), syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)


def failed_sop_instances(identifier: Dataset | None) -> tuple[str, ...]:
    """The Failed SOP Instance UID List of a C-MOVE/C-GET response identifier."""
    value = identifier.get("FailedSOPInstanceUIDList") if identifier is not None else None
    if not value:
        return ()
    return tuple(str(v) for v in ([value] if isinstance(value, str) else value) if v)


class Message(NamedTuple):
    context_id: int
    command: CommandSet
    data_set: bytes | None


class MessageChannel:
    """Sends and receives DIMSE messages on an established association.

    `receive()` returns the next message other than a C-STORE-RQ: those are handled on
    the way (data set streamed into `sink`, C-STORE-RSP sent), as both a C-GET SCU and
    a C-STORE SCP must (a C-MOVE SCU has no sink: it takes no instances). A partly
    received instance is discarded whenever receiving stops.
    """

    def __init__(self, pdus: PduSocket, syntaxes: dict[int, UID], sink: InstanceSink | None, peer_max_length: int,
                 max_identifier: int = MAX_IDENTIFIER) -> None:
        self.pdus = pdus
        self._max_identifier = max_identifier
        self.syntaxes = syntaxes
        self._sink = sink
        self._max_fragment = peer_max_length - 6 if peer_max_length else 0  # PDV header and item length in the PDU
        self._pdu_left = 0  # bytes of the current P-DATA-TF PDU not read yet
        self._command = bytearray()
        self._pending: Message | None = None  # a command set whose data set is arriving
        self._data_set = bytearray()
        self._instance: InstanceWriter | None = None
        self._store_failed = False

    def send(self, context_id: int, command: bytes, data_set: bytes | None = None) -> None:
        pdus = self._fragments(context_id, COMMAND, command)
        if data_set is not None:
            pdus += self._fragments(context_id, 0, data_set)
        self.pdus.send(b"".join(pdus))

    def receive(self) -> Message | None:
        """The next message; None when the peer asks to release the association."""
        try:
            return self._receive()
        except BaseException:
            self._drop_instance()
            raise

    def _receive(self) -> Message | None:
        while True:
            pdv = self._next_pdv()
            if pdv is None:
                return None
            context_id, control, length = pdv
            if context_id not in self.syntaxes:
                raise ProtocolError(f"PDV on presentation context {context_id}, which was not accepted")
            if control & COMMAND:
                message = self._command_fragment(context_id, control, length)
            else:
                message = self._data_set_fragment(context_id, control, length)
            if message is not None:
                return message

    def _command_fragment(self, context_id: int, control: int, length: int) -> Message | None:
        """Reads a command set fragment; the message once its command set is complete and no data set follows."""
        if self._pending is not None:
            raise ProtocolError("a command set arrived before the previous data set was complete")
        if len(self._command) + length > MAX_COMMAND_SET:
            raise ProtocolError("command set too long")
        self._command += self.pdus.read_bytes(length)
        if not control & LAST_FRAGMENT:
            return None
        command = CommandSet(self._command)
        self._command.clear()
        message = Message(context_id, command, None)
        if not command.has_data_set:
            if command.command_field == C_STORE_RQ:
                raise ProtocolError("C-STORE-RQ without a data set")
            return message
        self._pending = message
        if command.command_field == C_STORE_RQ:
            if self._sink is None:
                raise ProtocolError("C-STORE-RQ on an association that takes no instances")
            self._open_instance(message)
        return None

    def _data_set_fragment(self, context_id: int, control: int, length: int) -> Message | None:
        """Streams a C-STORE data set fragment (answering the C-STORE-RQ after the last one), or collects
        any other data set; the message once that is complete."""
        pending = self._pending
        if pending is None or context_id != pending.context_id:
            raise ProtocolError("a data set fragment without its command set")
        storing = pending.command.command_field == C_STORE_RQ
        if storing:
            self._stream(length)
        elif len(self._data_set) + length > self._max_identifier:
            raise ProtocolError("data set too long")
        else:
            self._data_set += self.pdus.read_bytes(length)
        if not control & LAST_FRAGMENT:
            return None
        self._pending = None
        if storing:
            self._answer_store(pending)
            return None
        data_set, self._data_set = bytes(self._data_set), bytearray()
        return pending._replace(data_set=data_set)

    def _next_pdv(self) -> tuple[int, int, int] | None:
        """(presentation context ID, message control header, fragment length); None on A-RELEASE-RQ."""
        while not self._pdu_left:
            pdu_type, length = self.pdus.read_pdu_header()
            if pdu_type == P_DATA_TF_PDU:
                self._pdu_left = length
            elif pdu_type == A_RELEASE_RQ_PDU:
                if length != 4:  # bounded before anything is read: a 2 GB A-RELEASE-RQ is never buffered
                    raise ProtocolError(f"A-RELEASE-RQ of {length} bytes (4 expected)")
                if self._pending is not None or self._command:
                    raise ProtocolError("A-RELEASE-RQ in the middle of a message")
                self.pdus.read_bytes(length)
                return None
            elif pdu_type == A_ABORT_PDU:
                raise PeerAborted("the peer aborted the association")
            else:
                raise ProtocolError(f"unexpected PDU type 0x{pdu_type:02X} during the data transfer")
        item_length, context_id, control = self.pdus.read_pdv_header()
        if item_length < 2 or item_length + 4 > self._pdu_left:
            raise ProtocolError("PDV item length does not fit its P-DATA-TF PDU")
        self._pdu_left -= item_length + 4
        return context_id, control, item_length - 2

    def _open_instance(self, message: Message) -> None:
        command = message.command
        self._store_failed = False
        try:
            self._instance = self._sink.open_instance(command.text(AFFECTED_SOP_CLASS_UID),
                                                      command.text(AFFECTED_SOP_INSTANCE_UID), self.syntaxes[message.context_id])
        except Exception:  # noqa: BLE001 - answered with a failure status, the association goes on
            log.exception("cannot store a received instance")
            self._store_failed = True

    def _stream(self, length: int) -> None:
        read_some, instance = self.pdus.read_some, self._instance
        while length:
            fragment = read_some(length)
            length -= len(fragment)
            if not self._store_failed:
                try:
                    instance.write(fragment)
                except Exception:  # noqa: BLE001
                    log.exception("cannot write a received instance")
                    self._store_failed = True

    def _answer_store(self, request: Message) -> None:
        instance, self._instance = self._instance, None
        status, comment = OUT_OF_RESOURCES, ""
        if self._store_failed:
            if instance is not None:
                instance.discard()
        else:
            try:
                status = instance.commit()
            except Exception:  # noqa: BLE001
                log.exception("cannot store a received instance")
                instance.discard()
        if isinstance(status, tuple):
            status, comment = status
        self.send(request.context_id, c_store_rsp(request.command, status, comment))
        try:
            self._sink.prepare()
        except Exception:  # noqa: BLE001 - only a head start for the next instance
            log.exception("cannot prepare for the next instance")

    def _drop_instance(self) -> None:
        instance, self._instance, self._pending = self._instance, None, None
        if instance is not None:
            instance.discard()

    def _fragments(self, context_id: int, control: int, data: bytes) -> list[bytes]:
        size = self._max_fragment or len(data) or 1
        chunks = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
        return [p_data_tf(context_id, control | (LAST_FRAGMENT if i == len(chunks) - 1 else 0), chunk)
                for i, chunk in enumerate(chunks)]
