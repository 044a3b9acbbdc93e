"""The workstation's own C-STORE SCP: the destination of C-MOVE retrievals.

One thread per association reads its PDUs on a blocking socket and streams each data set
into the sink as it arrives (dimse.MessageChannel), which keeps up with a PACS sending
hundreds of slices a second; pynetdicom's server, with its polling threads, did not.
Only AE titles of configured PACS nodes may store to us, and only under our AE title.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from typing import Any, NamedTuple

from pydicom.uid import UID
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import negotiate_as_acceptor

from workstation.core.site import LocalAE
from workstation.net import ul
from workstation.net.contexts import VERIFICATION, storage_contexts_for_receiver
from workstation.net.dimse import C_ECHO_RQ, InstanceSink, MessageChannel, c_echo_rsp
from workstation.net.errors import PacsError

log = logging.getLogger(__name__)

MAX_ASSOCIATIONS = 16
PEER_TIMEOUT = 60.0  # seconds a peer may stay silent before its association is dropped
STOP_WAIT = 5.0  # seconds stop() waits for each association thread to end

# A-ASSOCIATE-RJ (result, source, diagnostic), PS3.8 9.3.4
CALLING_AE_NOT_RECOGNISED = (0x01, 0x01, 0x03)  # permanent, service user
CALLED_AE_NOT_RECOGNISED = (0x01, 0x01, 0x07)
LOCAL_LIMIT_EXCEEDED = (0x02, 0x03, 0x02)  # transient, service provider (presentation)
REMEMBERED_ANSWERS = 32


class Answer(NamedTuple):
    """Our answer to one A-ASSOCIATE-RQ, and what the request says that the checks and the transfer need."""

    calling_ae_title: str
    called_ae_title: str
    a_associate_ac: bytes
    syntaxes: dict[int, UID]  # of the accepted presentation contexts
    peer_max_length: int


class StoreReceiver:
    def __init__(self, local: LocalAE, sink: InstanceSink, allowed_calling_aets: list[str] | None = None) -> None:
        self.local = local
        self._sink = sink
        self._allowed = {aet.strip() for aet in allowed_calling_aets or []}
        self._supported = storage_contexts_for_receiver() + VERIFICATION
        self._lock = threading.Lock()  # start/stop
        self._listener: socket.socket | None = None
        self._wake: socket.socket | None = None  # written by stop() to end the accept loop
        self._acceptor: threading.Thread | None = None
        self._associations: dict[socket.socket, threading.Thread] = {}
        self._associations_lock = threading.Lock()
        self._answers: dict[bytes, Answer] = {}  # by A-ASSOCIATE-RQ: a PACS proposes the same each time

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> None:
        """Listen on the configured address/port; raises PacsError if the port cannot be bound."""
        with self._lock:
            if self._listener is not None:
                return
            address = (self.local.bind_address, self.local.store_port)
            try:
                family = socket.AF_INET6 if ":" in self.local.bind_address else socket.AF_INET
                self._listener = socket.create_server(address, family=family, backlog=MAX_ASSOCIATIONS)
            except OSError as exc:
                raise PacsError(f"cannot listen for C-STORE on {address[0]}:{address[1]}: {exc.strerror or exc}") from None
            self._wake, wake_reader = socket.socketpair()
            self._acceptor = threading.Thread(target=self._accept, args=(self._listener, wake_reader),
                                              name=f"store-receiver:{address[1]}", daemon=True)
            self._acceptor.start()

    def stop(self) -> None:
        """Stop listening and end every association now (a partly received instance is discarded)."""
        with self._lock:
            if self._listener is None:
                return
            self._wake.send(b"x")
            self._acceptor.join()
            self._wake.close()
            self._listener.close()
            self._listener = self._wake = self._acceptor = None
            with self._associations_lock:
                associations = list(self._associations.items())
            for sock, _ in associations:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes its thread's blocking read
                except OSError:
                    pass
            for _, thread in associations:
                thread.join(STOP_WAIT)

    def _accept(self, listener: socket.socket, wake: socket.socket) -> None:
        with selectors.DefaultSelector() as selector, wake:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while all(key.fileobj is listener for key, _ in selector.select()):
                try:
                    sock, peer = listener.accept()
                except OSError as exc:
                    log.warning("C-STORE receiver: accept failed: %s", exc)
                    continue
                thread = threading.Thread(target=self._serve, args=(sock, peer), name=f"store-scp:{peer[0]}:{peer[1]}",
                                          daemon=True)
                with self._associations_lock:
                    self._associations[sock] = thread
                thread.start()

    def _serve(self, sock: socket.socket, peer: Any) -> None:
        """One association, from A-ASSOCIATE-RQ to its release, abort or loss."""
        pdus = ul.PduSocket(sock)
        try:
            sock.settimeout(PEER_TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            channel = self._negotiate(pdus, peer)
            while channel is not None:
                message = channel.receive()
                if message is None:
                    pdus.send(ul.A_RELEASE_RP)
                    break
                if message.command.command_field != C_ECHO_RQ:
                    raise ul.ProtocolError(f"unsupported command 0x{message.command.command_field or 0:04X}")
                channel.send(message.context_id, c_echo_rsp(message.command))
        except TimeoutError:
            log.warning("C-STORE receiver: %s silent for %g s, association dropped", peer[0], PEER_TIMEOUT)
        except ul.ProtocolError as exc:
            log.warning("C-STORE receiver: %s: %s; association aborted", peer[0], exc)
            try:
                pdus.send(ul.a_abort(0x02, 0x00))
            except OSError:
                pass
        except (OSError, ul.PeerAborted) as exc:
            log.info("C-STORE receiver: association from %s ended: %s", peer[0], exc)
        finally:
            pdus.close()
            with self._associations_lock:
                self._associations.pop(sock, None)

    def _negotiate(self, pdus: ul.PduSocket, peer: Any) -> MessageChannel | None:
        """Answer the A-ASSOCIATE-RQ: a channel for the accepted association, or None once rejected."""
        pdu_type, encoded = pdus.read_pdu()
        if pdu_type != ul.A_ASSOCIATE_RQ_PDU:
            raise ul.ProtocolError(f"expected A-ASSOCIATE-RQ, got PDU type 0x{pdu_type:02X}")
        answer = self._answer(encoded)
        rejection = self._rejection(answer)
        if rejection is not None:
            log.warning("C-STORE receiver: rejected %s (calling %r, called %r): %s", peer[0], answer.calling_ae_title,
                        answer.called_ae_title, rejection)
            pdus.send(ul.a_associate_rj(*rejection))
            return None
        pdus.send(answer.a_associate_ac)
        return MessageChannel(pdus, answer.syntaxes, self._sink, answer.peer_max_length)

    def _answer(self, encoded: bytes) -> Answer:
        """Decoded and negotiated once per distinct request: pynetdicom takes ~9 ms for the 126 contexts
        Orthanc proposes, on every C-MOVE."""
        answer = self._answers.get(encoded)
        if answer is None:
            request = ul.decode_association_pdu(ul.A_ASSOCIATE_RQ_PDU, encoded)
            roles = {item.sop_class_uid: (item.scu_role, item.scp_role)
                     for item in request.user_information if isinstance(item, SCP_SCU_RoleSelectionNegotiation)}
            results, role_replies = negotiate_as_acceptor(request.presentation_context_definition_list, self._supported, roles)
            answer = Answer(request.calling_ae_title, request.called_ae_title, ul.a_associate_ac(request, results, role_replies),
                            ul.accepted_syntaxes(results), ul.maximum_length(request))
            if len(self._answers) >= REMEMBERED_ANSWERS:
                self._answers.clear()
            self._answers[encoded] = answer
        return answer

    def _rejection(self, answer: Answer) -> tuple[int, int, int] | None:
        if self._allowed and answer.calling_ae_title not in self._allowed:
            return CALLING_AE_NOT_RECOGNISED
        if answer.called_ae_title != self.local.ae_title.strip():
            return CALLED_AE_NOT_RECOGNISED
        with self._associations_lock:
            if len(self._associations) > MAX_ASSOCIATIONS:
                return LOCAL_LIMIT_EXCEEDED
        return None

    def __enter__(self) -> StoreReceiver:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
