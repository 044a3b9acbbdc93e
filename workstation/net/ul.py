"""The DICOM upper layer (PS3.8) on one blocking socket: PDU and PDV framing, association PDUs.

Retrievals (C-GET, C-MOVE) and our C-STORE receiver read PDUs from one reusable receive
buffer on the calling thread, so a data set fragment goes from the socket to its file
without per-PDU objects or thread hand-offs. A-ASSOCIATE PDUs, rare and intricate, are
encoded and decoded with pynetdicom's PDU classes.
"""

from __future__ import annotations

import socket
import struct

from pydicom.uid import UID
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RJ, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)
from pynetdicom.presentation import PresentationContext

MAX_PDU = 0  # the Maximum Length we announce: no limit, so peers send large PDUs (fewer round trips on big images)
APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1"

# PDU types, PS3.8 9.3
A_ASSOCIATE_RQ_PDU, A_ASSOCIATE_AC_PDU, A_ASSOCIATE_RJ_PDU = 0x01, 0x02, 0x03
P_DATA_TF_PDU, A_RELEASE_RQ_PDU, A_RELEASE_RP_PDU, A_ABORT_PDU = 0x04, 0x05, 0x06, 0x07

# Message control header of a PDV, PS3.8 E.2
COMMAND, LAST_FRAGMENT = 0x01, 0x02

PDU_HEADER = struct.Struct(">BxI")  # type, reserved, PDU length
PDV_HEADER = struct.Struct(">IBB")  # item length, presentation context ID, message control header
RECEIVE_BUFFER = 1 << 20
MAX_CONTROL_PDU = 1 << 20  # any PDU but P-DATA-TF is small; a larger one is an attack or a bug

A_RELEASE_RQ = struct.pack(">BxII", A_RELEASE_RQ_PDU, 4, 0)
A_RELEASE_RP = struct.pack(">BxII", A_RELEASE_RP_PDU, 4, 0)


class PeerAborted(Exception):
    """The peer sent A-ABORT."""


class ConnectionClosed(ConnectionError):
    """The peer closed the TCP connection."""


class ProtocolError(Exception):
    """The peer sent something the upper layer protocol does not allow here."""


class PduSocket:
    """A connection read as PDUs and PDVs. Views returned by the read methods are valid until the next read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray(RECEIVE_BUFFER)
        self._view = memoryview(self._buffer)
        self._start = self._end = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, data: bytes) -> tuple[int, bytes]:
        """Send an A-ASSOCIATE-RQ and read the answer PDU (type, encoding).

        A peer that rejects may send A-ASSOCIATE-RJ and close before it has read all of a large
        request; our send then fails (EPIPE, ECONNRESET) with the rejection already waiting in our
        receive buffer. It is read before the closed connection is taken for an abort.
        """
        try:
            self.send(data)
        except TimeoutError:
            raise  # the peer is not reading: nothing to wait for
        except OSError as exc:
            failed: OSError | None = exc
        else:
            failed = None
        try:
            return self.read_pdu()
        except OSError:
            if failed is not None:
                raise failed from None
            raise

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def read_pdu_header(self) -> tuple[int, int]:
        """(PDU type, PDU length) of the next PDU."""
        return PDU_HEADER.unpack(self.read_exact(PDU_HEADER.size))

    def read_pdu(self) -> tuple[int, bytes]:
        """A whole control PDU (not P-DATA-TF): its type and its encoding, header included."""
        pdu_type, length = self.read_pdu_header()
        if length > MAX_CONTROL_PDU:
            raise ProtocolError(f"PDU type 0x{pdu_type:02X} of {length} bytes")
        return pdu_type, PDU_HEADER.pack(pdu_type, length) + self.read_bytes(length)

    def read_pdv_header(self) -> tuple[int, int, int]:
        """(item length, presentation context ID, message control header) of the next PDV."""
        return PDV_HEADER.unpack(self.read_exact(PDV_HEADER.size))

    def read_bytes(self, n: int) -> bytes:
        """Exactly `n` bytes, copied."""
        parts = []
        while n:
            chunk = self.read_some(n)
            parts.append(bytes(chunk))
            n -= len(chunk)
        return b"".join(parts)

    def skip(self, n: int) -> None:
        while n:
            n -= len(self.read_some(n))

    def read_exact(self, n: int) -> memoryview:
        """Exactly `n` (a few) bytes, as a view into the receive buffer."""
        if self._end - self._start < n:
            self._fill(n)
        start = self._start
        self._start += n
        return self._view[start:self._start]

    def read_some(self, n: int) -> memoryview:
        """Between 1 and `n` bytes: what is buffered, else what one receive brings."""
        if self._start == self._end:
            self._start = 0
            self._end = self._receive(0)
        start = self._start
        self._start = min(self._end, start + n)
        return self._view[start:self._start]

    def _fill(self, n: int) -> None:
        """Receive until `n` (a few) bytes are buffered, into the whole buffer: what is left is less than `n`."""
        buffered = self._end - self._start
        self._buffer[:buffered] = bytes(self._view[self._start:self._end])
        self._start, self._end = 0, buffered
        while self._end < n:
            self._end = self._receive(self._end)

    def _receive(self, at: int) -> int:
        received = self.sock.recv_into(self._view[at:])
        if not received:
            raise ConnectionClosed("the peer closed the connection")
        return at + received


def p_data_tf(context_id: int, control: int, fragment: bytes) -> bytes:
    """One P-DATA-TF PDU holding one PDV."""
    return PDU_HEADER.pack(P_DATA_TF_PDU, len(fragment) + 6) + PDV_HEADER.pack(len(fragment) + 2, context_id, control) + fragment


def a_abort(source: int = 0x00, reason: int = 0x00) -> bytes:
    """A-ABORT; source 0 = service user, 2 = service provider (then `reason` says why)."""
    return struct.pack(">BxIxxBB", A_ABORT_PDU, 4, source, reason)


def user_information() -> list:
    """Maximum Length (ours: MAX_PDU) and our implementation's class UID and version name."""
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = MAX_PDU
    class_uid = ImplementationClassUIDNotification()
    class_uid.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
    version = ImplementationVersionNameNotification()
    version.implementation_version_name = PYNETDICOM_IMPLEMENTATION_VERSION
    return [max_length, class_uid, version]


class Proposal:
    """What an association requestor proposes: presentation contexts (IDs 1, 3, 5...) and SCP/SCU roles.

    Its A-ASSOCIATE-RQ is encoded once per AE title pair: 127 contexts take pynetdicom ~4 ms.
    """

    def __init__(self, contexts: list[PresentationContext], roles: list[SCP_SCU_RoleSelectionNegotiation]) -> None:
        for number, context in enumerate(contexts):
            context.context_id = 2 * number + 1
        self.contexts, self.roles = contexts, roles
        self._encoded: dict[tuple[str, str, int], bytes] = {}

    def a_associate_rq(self, calling_ae_title: str, called_ae_title: str) -> bytes:
        key = (calling_ae_title, called_ae_title, MAX_PDU)
        if key not in self._encoded:
            self._encoded[key] = a_associate_rq(calling_ae_title, called_ae_title, self.contexts, self.roles)
        return self._encoded[key]


def a_associate_rq(calling_ae_title: str, called_ae_title: str, contexts: list[PresentationContext],
                   roles: list[SCP_SCU_RoleSelectionNegotiation]) -> bytes:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = APPLICATION_CONTEXT_NAME
    primitive.calling_ae_title = calling_ae_title
    primitive.called_ae_title = called_ae_title
    primitive.presentation_context_definition_list = contexts
    primitive.user_information = user_information() + roles
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return pdu.encode()


def a_associate_ac(request: A_ASSOCIATE, results: list[PresentationContext],
                   roles: list[SCP_SCU_RoleSelectionNegotiation]) -> bytes:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = APPLICATION_CONTEXT_NAME
    primitive.calling_ae_title = request.calling_ae_title
    primitive.called_ae_title = request.called_ae_title
    primitive.result, primitive.result_source = 0x00, 0x01
    primitive.presentation_context_definition_results_list = results
    primitive.user_information = user_information() + roles
    pdu = A_ASSOCIATE_AC()
    pdu.from_primitive(primitive)
    return pdu.encode()


def a_associate_rj(result: int, source: int, diagnostic: int) -> bytes:
    primitive = A_ASSOCIATE()
    primitive.result, primitive.result_source, primitive.diagnostic = result, source, diagnostic
    pdu = A_ASSOCIATE_RJ()
    pdu.from_primitive(primitive)
    return pdu.encode()


def decode_association_pdu(pdu_type: int, encoded: bytes) -> A_ASSOCIATE:
    """The A-ASSOCIATE primitive of an A-ASSOCIATE-RQ, -AC or -RJ PDU."""
    cls = {A_ASSOCIATE_RQ_PDU: A_ASSOCIATE_RQ, A_ASSOCIATE_AC_PDU: A_ASSOCIATE_AC, A_ASSOCIATE_RJ_PDU: A_ASSOCIATE_RJ}[pdu_type]
    pdu = cls()
    try:
        pdu.decode(encoded)
        return pdu.to_primitive()
    except Exception as exc:  # noqa: BLE001 - whatever a malformed PDU makes the decoder raise
        raise ProtocolError(f"malformed {cls.__name__.replace('_', '-')} PDU: {exc}") from None


def maximum_length(primitive: A_ASSOCIATE) -> int:
    """The peer's Maximum Length: the largest P-DATA-TF PDU (length field) it accepts; 0 = no limit."""
    for item in primitive.user_information:
        if isinstance(item, MaximumLengthNotification):
            return item.maximum_length_received or 0
    return 0


def accepted_syntaxes(results: list[PresentationContext]) -> dict[int, UID]:
    """{presentation context ID: transfer syntax} of the accepted contexts."""
    return {cx.context_id: UID(cx.transfer_syntax[0]) for cx in results if cx.result == 0x00}
