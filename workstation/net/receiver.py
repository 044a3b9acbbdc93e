"""The workstation's own C-STORE SCP: the destination of C-MOVE retrievals and of studies pushed to us.

One selector thread accepts connections, does the TLS handshake and reads each A-ASSOCIATE-RQ
without blocking, so idle or slow connections cost a socket and no thread: one that sends no
A-ASSOCIATE-RQ within the ARTIM time (PS3.8 9.1.5) is dropped, and each address may hold only a
few such connections. Only then are the AE titles checked: the calling AE title must be that of
a configured node *and* the connection must come from that node's host; no node configured, no
association. An accepted association gets its own thread, which streams each data set into the
sink as it arrives (dimse.MessageChannel) and is ended when the peer stays silent too long or
the association outlives its overall deadline. Associations are bounded in all and per address.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from pydicom.uid import UID
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import negotiate_as_acceptor

from workstation.core.receiving import AssociationAccepted, AssociationRefused
from workstation.core.site import InboundTls, LocalAE, PacsNode
from workstation.net import ul
from workstation.net.contexts import VERIFICATION, storage_contexts_for_receiver
from workstation.net.dimse import C_ECHO_RQ, InstanceSink, MessageChannel, c_echo_rsp
from workstation.net.errors import PacsError

log = logging.getLogger(__name__)

STOP_WAIT = 5.0  # seconds stop() waits for each association thread to end
MAX_ASSOCIATE_RQ = 128 * 1024  # bytes; Orthanc's 126 contexts take ~15 kB. Larger is refused before it is read
MAX_PENDING = 128  # connections that have not finished their A-ASSOCIATE-RQ, all addresses together
MAX_PENDING_PER_HOST = 16  # ... from one address: beyond, its oldest such connection is dropped
MAX_IDENTIFIER = 64 * 1024  # a data set of anything but a C-STORE-RQ (none is expected) is kept in memory up to this
RESOLVE_AGAIN = 60.0  # seconds: node host names are looked up again, at most this often, when an address does not match
TICK = 1.0  # seconds between checks of the timers when nothing happens

# A-ASSOCIATE-RJ (result, source, diagnostic), PS3.8 9.3.4
CALLING_AE_NOT_RECOGNISED = (0x01, 0x01, 0x03)  # permanent, service user
CALLED_AE_NOT_RECOGNISED = (0x01, 0x01, 0x07)
LOCAL_LIMIT_EXCEEDED = (0x02, 0x03, 0x02)  # transient, service provider (presentation)
REMEMBERED_ANSWERS = 32
ASSOCIATE_RQ_FIXED = 74  # PDU header, protocol version, AE titles, reserved: where the variable items begin


class ReceiverHandler(Protocol):
    """What the receiver reports to (services implements it). Called on the receiver's threads."""

    def accepted(self, association: AssociationAccepted) -> InstanceSink:
        """An association was accepted: where its instances go."""

    def refused(self, refusal: AssociationRefused) -> None: ...

    def ended(self, association: AssociationAccepted, how: str) -> None: ...


class Answer(NamedTuple):
    """Our A-ASSOCIATE-AC to one A-ASSOCIATE-RQ, and what the transfer needs of the request."""

    a_associate_ac: bytes
    syntaxes: dict[int, UID]  # of the accepted presentation contexts
    peer_max_length: int


@dataclass
class _Pending:
    """A connection before its A-ASSOCIATE-RQ is complete (TLS handshake included)."""

    sock: socket.socket
    host: str
    deadline: float  # ARTIM
    handshaking: bool = False
    events: int = selectors.EVENT_READ  # what the selector waits for on it
    data: bytearray = field(default_factory=bytearray)
    need: int = 6  # bytes wanted in `data` before the next step (PDU header, then the whole PDU)


@dataclass
class _Association:
    sock: socket.socket
    host: str
    deadline: float
    thread: threading.Thread | None = None
    expired: bool = False  # ended by the receiver: its overall deadline passed
    stopping: bool = False


class StoreReceiver:
    def __init__(self, local: LocalAE, handler: ReceiverHandler, nodes: Sequence[PacsNode] = ()) -> None:
        self.local = local
        self._handler = handler
        self._nodes = list(nodes)
        self._addresses: dict[str, set[str]] = {}  # node name -> IP addresses of its host
        self._resolved_at = 0.0
        self._supported = storage_contexts_for_receiver() + VERIFICATION
        self._tls = _server_context(local.tls) if local.tls is not None else None
        self._lock = threading.Lock()  # start/stop
        self._listener: socket.socket | None = None
        self._wake: socket.socket | None = None  # written by stop() to end the accept loop
        self._acceptor: threading.Thread | None = None
        self._pending: dict[socket.socket, _Pending] = {}  # touched by the accept loop only
        self._associations: dict[socket.socket, _Association] = {}
        self._associations_lock = threading.Lock()
        self._answers: dict[bytes, Answer] = {}  # by A-ASSOCIATE-RQ: a PACS proposes the same each time
        self._ids = itertools.count(1)

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> None:
        """Listen on the configured address/port; raises PacsError if the port cannot be bound."""
        with self._lock:
            if self._listener is not None:
                return
            self._resolve()
            address = (self.local.bind_address, self.local.store_port)
            try:
                family = socket.AF_INET6 if ":" in self.local.bind_address else socket.AF_INET
                self._listener = socket.create_server(address, family=family, backlog=64)
            except OSError as exc:
                raise PacsError(f"cannot listen for C-STORE on {address[0]}:{address[1]}: {exc.strerror or exc}") from None
            self._listener.setblocking(False)
            self._wake, wake_reader = socket.socketpair()
            self._acceptor = threading.Thread(target=self._accept_loop, args=(self._listener, wake_reader),
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
                associations = list(self._associations.values())
            for association in associations:
                association.stopping = True
                _shutdown(association.sock)  # wakes its thread's blocking read
            for association in associations:
                if association.thread is not None:
                    association.thread.join(STOP_WAIT)

    def association_count(self) -> int:
        with self._associations_lock:
            return len(self._associations)

    # ----- the accept loop: connections until their A-ASSOCIATE-RQ is read

    def _accept_loop(self, listener: socket.socket, wake: socket.socket) -> None:
        with selectors.DefaultSelector() as selector, wake:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            try:
                while True:
                    events = selector.select(self._next_timer())
                    if any(key.fileobj is wake for key, _ in events):
                        return
                    for key, _ in events:
                        if key.fileobj is listener:
                            self._accept(listener, selector)
                        elif key.fileobj in self._pending:
                            self._advance(self._pending[key.fileobj], selector)
                    self._expire(selector)
            finally:
                for pending in list(self._pending.values()):
                    self._drop(pending, selector)

    def _next_timer(self) -> float:
        now = time.monotonic()
        deadlines = [p.deadline for p in self._pending.values()]
        with self._associations_lock:
            deadlines += [a.deadline for a in self._associations.values() if not a.expired]
        return max(0.0, min([now + TICK, *deadlines]) - now)

    def _accept(self, listener: socket.socket, selector: selectors.BaseSelector) -> None:
        for _ in range(64):  # what the backlog holds, a batch at a time
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("C-STORE receiver: accept failed: %s", exc)
                return
            host = _host(peer[0])
            same_host = [p for p in self._pending.values() if p.host == host]
            if len(same_host) >= MAX_PENDING_PER_HOST:
                self._drop(min(same_host, key=lambda p: p.deadline), selector, "too many connections from this address "
                           "without an A-ASSOCIATE-RQ")
            elif len(self._pending) >= MAX_PENDING:
                self._drop(min(self._pending.values(), key=lambda p: p.deadline), selector,
                           "too many connections without an A-ASSOCIATE-RQ")
            sock.setblocking(False)
            pending = _Pending(sock, host, time.monotonic() + self.local.artim_timeout_s)
            if self._tls is not None:
                try:
                    pending.sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                except (OSError, ValueError) as exc:
                    sock.close()
                    self._refused(host, "", "", f"TLS failed: {exc}")
                    continue
                pending.handshaking = True
            self._pending[pending.sock] = pending
            selector.register(pending.sock, selectors.EVENT_READ)
            self._advance(pending, selector)

    def _advance(self, pending: _Pending, selector: selectors.BaseSelector) -> None:
        """Take the next step with what the connection has for us: handshake, then read the A-ASSOCIATE-RQ."""
        def wait_for(events: int) -> None:
            if pending.events != events:
                selector.modify(pending.sock, events)
                pending.events = events

        try:
            if pending.handshaking:
                try:
                    pending.sock.do_handshake()
                except ssl.SSLWantReadError:
                    wait_for(selectors.EVENT_READ)
                    return
                except ssl.SSLWantWriteError:
                    wait_for(selectors.EVENT_WRITE)
                    return
                pending.handshaking = False
            while len(pending.data) < pending.need:
                try:
                    chunk = pending.sock.recv(pending.need - len(pending.data))
                except (BlockingIOError, ssl.SSLWantReadError):
                    wait_for(selectors.EVENT_READ)
                    return
                except ssl.SSLWantWriteError:
                    wait_for(selectors.EVENT_WRITE)
                    return
                if not chunk:
                    self._drop(pending, selector, "closed before its A-ASSOCIATE-RQ was complete")
                    return
                pending.data += chunk
                if len(pending.data) == 6:
                    pdu_type, length = ul.PDU_HEADER.unpack(pending.data)
                    if pdu_type != ul.A_ASSOCIATE_RQ_PDU:
                        self._abort(pending, selector, f"PDU type 0x{pdu_type:02X} where an A-ASSOCIATE-RQ belongs")
                        return
                    if not ASSOCIATE_RQ_FIXED - 6 <= length <= MAX_ASSOCIATE_RQ:
                        self._abort(pending, selector, f"an A-ASSOCIATE-RQ of {length} bytes")
                        return
                    pending.need = 6 + length
        except ssl.SSLError as exc:
            self._drop(pending, selector, f"TLS handshake failed: {exc.reason or exc}")
            return
        except OSError as exc:
            self._drop(pending, selector, f"connection lost before its A-ASSOCIATE-RQ: {exc.strerror or exc}")
            return
        self._request(pending, selector)

    def _request(self, pending: _Pending, selector: selectors.BaseSelector) -> None:
        """A whole A-ASSOCIATE-RQ: refuse it here, or hand the association to a thread of its own."""
        del self._pending[pending.sock]
        selector.unregister(pending.sock)
        encoded = bytes(pending.data)
        called, calling = (encoded[offset:offset + 16].decode("ascii", "replace").strip() for offset in (10, 26))
        node, rejection, reason = self._check(pending.host, calling, called)
        if rejection is not None:
            log.warning("C-STORE receiver: refused %s (calling %r, called %r): %s", pending.host, calling, called, reason)
            try:
                pending.sock.send(ul.a_associate_rj(*rejection))  # a few bytes: never blocks on a fresh socket
            except (OSError, ValueError):
                pass
            _close(pending.sock)
            self._refused(pending.host, calling, called, reason)
            return
        pending.sock.setblocking(True)
        pending.sock.settimeout(self.local.idle_timeout_s)
        association = _Association(pending.sock, pending.host, time.monotonic() + self.local.association_timeout_s)
        accepted = AssociationAccepted(next(self._ids), pending.host, calling, called, node, self._tls is not None)
        association.thread = threading.Thread(target=self._serve, args=(association, encoded, accepted),
                                              name=f"store-scp:{pending.host}", daemon=True)
        with self._associations_lock:
            self._associations[pending.sock] = association
        association.thread.start()

    def _check(self, host: str, calling: str, called: str) -> tuple[str, tuple[int, int, int] | None, str]:
        """(node name, A-ASSOCIATE-RJ reason or None, why in words)."""
        if not self._nodes:
            return "", CALLING_AE_NOT_RECOGNISED, "no PACS node is configured: every association is refused"
        named = [node for node in self._nodes if node.ae_title.strip() == calling]
        if not named:
            return "", CALLING_AE_NOT_RECOGNISED, "calling AE title is not that of a configured node"
        matching = [node for node in named if host in self._addresses.get(node.name, ())]
        if not matching and time.monotonic() - self._resolved_at > RESOLVE_AGAIN:
            self._resolve()
            matching = [node for node in named if host in self._addresses.get(node.name, ())]
        if not matching:
            hosts = ", ".join(sorted({node.host for node in named}))
            return "", CALLING_AE_NOT_RECOGNISED, (f"calling AE title of node {named[0].name} from another address "
                                                   f"(configured host: {hosts})")
        node = matching[0].name
        if called != self.local.ae_title.strip():
            return node, CALLED_AE_NOT_RECOGNISED, "called AE title is not ours"
        with self._associations_lock:
            if len(self._associations) >= self.local.max_associations:
                return node, LOCAL_LIMIT_EXCEEDED, f"{self.local.max_associations} associations at once already"
            if sum(a.host == host for a in self._associations.values()) >= self.local.max_associations_per_host:
                return node, LOCAL_LIMIT_EXCEEDED, f"{self.local.max_associations_per_host} associations from this address already"
        return node, None, ""

    def _resolve(self) -> None:
        """The IP addresses of each node's host (a name may have several; one that does not resolve has none)."""
        addresses = {}
        for node in self._nodes:
            try:
                infos = socket.getaddrinfo(node.host, None, proto=socket.IPPROTO_TCP)
                addresses[node.name] = {_host(info[4][0]) for info in infos}
            except (OSError, UnicodeError) as exc:
                log.warning("C-STORE receiver: host %r of node %s does not resolve (%s): it cannot store to us",
                            node.host, node.name, exc)
                addresses[node.name] = set()
        self._addresses, self._resolved_at = addresses, time.monotonic()

    def _expire(self, selector: selectors.BaseSelector) -> None:
        """ARTIM: drop connections without an A-ASSOCIATE-RQ in time; end associations past their deadline."""
        now = time.monotonic()
        for pending in [p for p in self._pending.values() if p.deadline <= now]:
            self._drop(pending, selector, f"no A-ASSOCIATE-RQ within {self.local.artim_timeout_s:g} s (ARTIM)")
        with self._associations_lock:
            expired = [a for a in self._associations.values() if a.deadline <= now and not a.expired]
        for association in expired:
            association.expired = True
            _shutdown(association.sock)

    def _drop(self, pending: _Pending, selector: selectors.BaseSelector, reason: str | None = None) -> None:
        self._pending.pop(pending.sock, None)
        try:
            selector.unregister(pending.sock)
        except (KeyError, ValueError):
            pass
        _close(pending.sock)
        if reason is not None:
            log.info("C-STORE receiver: connection from %s dropped: %s", pending.host, reason)
            self._refused(pending.host, "", "", reason)

    def _abort(self, pending: _Pending, selector: selectors.BaseSelector, reason: str) -> None:
        try:
            pending.sock.send(ul.a_abort(0x02, 0x00))
        except (OSError, ValueError):
            pass
        self._drop(pending, selector, reason)

    def _refused(self, host: str, calling: str, called: str, reason: str) -> None:
        try:
            self._handler.refused(AssociationRefused(host, calling, called, reason, self._tls is not None))
        except Exception:  # noqa: BLE001 - a broken listener must not stop the receiver
            log.exception("C-STORE receiver: reporting a refusal failed")

    # ----- one accepted association, on its own thread

    def _serve(self, association: _Association, encoded: bytes, accepted: AssociationAccepted) -> None:
        """One association, from its A-ASSOCIATE-AC to its release, abort, loss or deadline."""
        pdus = ul.PduSocket(association.sock)
        how, started = "released", False
        try:
            association.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            answer = self._answer(encoded)
            sink = self._handler.accepted(accepted)
            started = True
            log.info("C-STORE receiver: association %d accepted from %s (calling %r, node %s%s)", accepted.association_id,
                     accepted.peer_host, accepted.calling_ae_title, accepted.node, ", TLS" if accepted.tls else "")
            pdus.send(answer.a_associate_ac)
            channel = MessageChannel(pdus, answer.syntaxes, sink, answer.peer_max_length, MAX_IDENTIFIER)
            while True:
                message = channel.receive()
                if message is None:
                    pdus.send(ul.A_RELEASE_RP)
                    break
                if message.command.command_field != C_ECHO_RQ:
                    raise ul.ProtocolError(f"unsupported command 0x{message.command.command_field or 0:04X}")
                channel.send(message.context_id, c_echo_rsp(message.command))
        except TimeoutError:
            how = f"silent for {self.local.idle_timeout_s:g} s"
        except ul.ProtocolError as exc:
            how = f"protocol error: {exc}"
            try:
                pdus.send(ul.a_abort(0x02, 0x00))
            except (OSError, ValueError):
                pass
        except ul.PeerAborted:
            how = "aborted by the peer"
        except (OSError, ValueError) as exc:  # ValueError: an SSL socket shut down under its read
            how = f"connection lost ({exc.strerror or exc})" if isinstance(exc, OSError) else "connection lost"
        except Exception as exc:  # noqa: BLE001 - the thread ends cleanly whatever happened
            log.exception("C-STORE receiver: association failed")
            how = f"failed: {type(exc).__name__}"
        finally:
            if association.expired:
                how = f"deadline of {self.local.association_timeout_s:g} s passed"
            elif association.stopping:
                how = "stopped"
            pdus.close()
            with self._associations_lock:
                self._associations.pop(association.sock, None)
            if how != "released":
                log.warning("C-STORE receiver: association %d from %s ended: %s", accepted.association_id,
                            accepted.peer_host, how)
            if started:
                try:
                    self._handler.ended(accepted, how)
                except Exception:  # noqa: BLE001
                    log.exception("C-STORE receiver: reporting an association's end failed")
            else:
                self._refused(accepted.peer_host, accepted.calling_ae_title, accepted.called_ae_title, how)

    def _answer(self, encoded: bytes) -> Answer:
        """Decoded and negotiated once per distinct request: pynetdicom takes ~9 ms for the 126 contexts
        Orthanc proposes, on every C-MOVE."""
        answer = self._answers.get(encoded)
        if answer is None:
            request = ul.decode_association_pdu(ul.A_ASSOCIATE_RQ_PDU, encoded)
            roles = {item.sop_class_uid: (item.scu_role, item.scp_role)
                     for item in request.user_information if isinstance(item, SCP_SCU_RoleSelectionNegotiation)}
            results, role_replies = negotiate_as_acceptor(request.presentation_context_definition_list, self._supported, roles)
            answer = Answer(ul.a_associate_ac(request, results, role_replies), ul.accepted_syntaxes(results),
                            ul.maximum_length(request))
            with self._associations_lock:
                if len(self._answers) >= REMEMBERED_ANSWERS:
                    self._answers.clear()
                self._answers[encoded] = answer
        return answer

    def __enter__(self) -> StoreReceiver:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _server_context(settings: InboundTls) -> ssl.SSLContext:
    """TLS 1.2 or later with our certificate; client certificates verified against ca_file when presented
    (required with require_client_cert)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.cert_file, settings.key_file)
        if settings.ca_file:
            context.load_verify_locations(settings.ca_file)
            context.verify_mode = ssl.CERT_REQUIRED if settings.require_client_cert else ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        raise PacsError(f"workstation.tls: cannot load the receiver's certificate, key or CA: {exc}") from None
    return context


def _host(address: str) -> str:
    """An address as the checks compare it: IPv4-mapped IPv6 as IPv4, without a zone."""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


def _shutdown(sock: socket.socket) -> None:
    """Wake a thread blocked reading `sock` (the plain socket's shutdown: an SSL socket's would drop its state)."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass

