"""Open associations to a configured PACS node: timeouts, retries, TLS, and clear failure reasons.

pynetdicom's associations (echo, find) and the connections of our own upper layer
(retrievals, retrieve_scu.py) share the retries, the TLS set-up and the words of every failure.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.pdu import A_ASSOCIATE_RJ

from workstation.core.site import LocalAE, PacsNode, TlsSettings
from workstation.net.errors import AssociationAborted, AssociationRejected, PacsUnreachable
from workstation.net.ul import MAX_PDU

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
T = TypeVar("T")


def client_ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """A client context that verifies the server certificate (against `ca_file` or the system CAs)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


def make_ae(local: LocalAE, timeout: float) -> AE:
    ae = AE(ae_title=local.ae_title)
    ae.maximum_pdu_size = MAX_PDU
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = timeout
    return ae


def with_retries(node: PacsNode, open_once: Callable[[], T]) -> T:
    """`open_once()`, tried again after a connection failure (PacsUnreachable), `node.retries` times."""
    attempts = node.retries + 1
    attempt = 0
    while True:
        try:
            return open_once()
        except PacsUnreachable as exc:
            attempt += 1
            if attempt >= attempts:
                raise PacsUnreachable(f"{exc} (tried {attempts} time{'s' if attempts > 1 else ''})") from None
            delay = RETRY_DELAYS[min(attempt - 1, len(RETRY_DELAYS) - 1)]
            log.warning("PACS %s unreachable (%s); retrying in %.1f s", node.name, exc, delay)
            time.sleep(delay)


@contextmanager
def associate(
    node: PacsNode,
    local: LocalAE,
    contexts: list[Any],
    ext_neg: list[Any] | None = None,
    evt_handlers: list[Any] | None = None,
) -> Iterator[Association]:
    """An established association, released on exit; connection failures are retried `node.retries` times."""
    assoc = with_retries(node, lambda: _open(node, local, contexts, ext_neg, evt_handlers))
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def _open(node: PacsNode, local: LocalAE, contexts, ext_neg, evt_handlers) -> Association:
    ae = make_ae(local, node.timeout)
    connected = {"open": False, "rejection": None}

    def received(event) -> None:  # a rejection read before a close that pynetdicom may take for an abort
        if isinstance(event.pdu, A_ASSOCIATE_RJ):
            connected["rejection"] = event.pdu.to_primitive()

    handlers = list(evt_handlers or []) + [(evt.EVT_CONN_OPEN, lambda event: connected.update(open=True)),
                                           (evt.EVT_PDU_RECV, received)]
    started = time.monotonic()
    assoc = ae.associate(
        node.host, node.port, contexts=contexts, ae_title=node.ae_title, max_pdu=MAX_PDU,
        ext_neg=ext_neg, tls_args=tls_arguments(node), evt_handlers=handlers,
    )
    if assoc.is_established:
        return assoc
    was_rejected = assoc.is_rejected or connected["rejection"] is not None
    if connected["open"] and not was_rejected and time.monotonic() - started >= node.timeout * 0.95:
        raise not_answering(node)
    if was_rejected:
        raise rejected(node, getattr(assoc.acceptor, "primitive", None) or connected["rejection"])
    if not connected["open"]:
        reason = _connect_error(node)
        if reason is None and node.tls is not None:
            raise tls_handshake_failed(node)
        raise cannot_connect(node, reason or "the connection closed during set-up")
    raise closed_during_setup(node, local)


def connect(node: PacsNode) -> socket.socket:
    """A TCP connection to the node, TLS when configured, with `node.timeout` on every read."""
    tls = tls_arguments(node)
    try:
        sock = socket.create_connection((node.host, node.port), timeout=node.timeout)
    except socket.timeout:
        raise cannot_connect(node, f"no answer within {node.timeout:g} s") from None
    except OSError as exc:
        raise cannot_connect(node, exc.strerror or str(exc)) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is None:
        return sock
    try:
        return tls[0].wrap_socket(sock, server_hostname=tls[1])
    except socket.timeout:
        sock.close()
        raise not_answering(node) from None
    except OSError:
        sock.close()
        raise tls_handshake_failed(node) from None


def tls_arguments(node: PacsNode) -> tuple[ssl.SSLContext, str] | None:
    """(client context, server name to verify) for a TLS node, else None."""
    if node.tls is None:
        return None
    try:
        return client_ssl_context(node.tls), node.tls.server_name or node.host
    except (OSError, ssl.SSLError) as exc:
        raise PacsUnreachable(f"TLS settings for {node.name} unusable: {exc}") from None


# ----- why an association could not be set up, in the same words whoever set it up

def _where(node: PacsNode) -> str:
    return f"{node.name} ({node.ae_title}@{node.host}:{node.port})"


def not_answering(node: PacsNode) -> PacsUnreachable:
    return PacsUnreachable(f"{_where(node)} accepted the connection but did not answer within {node.timeout:g} s")


def cannot_connect(node: PacsNode, reason: str) -> PacsUnreachable:
    return PacsUnreachable(f"cannot connect to {_where(node)}: {reason}")


def tls_handshake_failed(node: PacsNode) -> PacsUnreachable:
    return PacsUnreachable(f"TLS handshake with {_where(node)} failed: the server certificate is not trusted "
                           "(or does not name the host), or the server refused our certificate")


def rejected(node: PacsNode, primitive: Any) -> AssociationRejected:
    """`primitive`: the A-ASSOCIATE (reject) primitive the peer answered."""
    return AssociationRejected(f"{_where(node)} rejected the association: {_rejection(primitive)}")


def closed_during_setup(node: PacsNode, local: LocalAE) -> AssociationAborted:
    if node.tls is not None:
        return AssociationAborted(f"{_where(node)} closed the TLS connection: it may require a client certificate "
                                  f"(tls.cert_file/key_file) or not trust ours, or not allow our AE title {local.ae_title!r}")
    return AssociationAborted(f"{_where(node)} aborted the association (our AE title {local.ae_title!r} may not be allowed)")


def _rejection(primitive: Any) -> str:
    if primitive is None:
        return "no reason given"
    try:
        return f"{primitive.reason_str} ({primitive.result_str}, {primitive.source_str})"
    except (AttributeError, KeyError, TypeError):
        return f"result {primitive.result}, source {primitive.result_source}, reason {primitive.diagnostic}"


def _connect_error(node: PacsNode) -> str | None:
    """Why a plain TCP connection fails (refused, timed out, unknown host); None if it succeeds."""
    try:
        with socket.create_connection((node.host, node.port), timeout=min(node.timeout, 5.0)):
            return None
    except socket.timeout:
        return f"no answer within {min(node.timeout, 5.0):g} s"
    except OSError as exc:
        return exc.strerror or str(exc)


# ----- an operation whose responses stopped

def connection_lost(node: PacsNode, when: str, reason: str) -> AssociationAborted:
    return AssociationAborted(f"{node.name}: connection lost {when}: {reason}")


def peer_aborted(ae_title: str) -> str:
    return f"the PACS aborted the association (our AE title {ae_title!r} may not be allowed this operation, or the PACS stopped)"


def no_answer(node: PacsNode) -> str:
    return f"no answer within {node.timeout:g} s"


def lost_connection(node: PacsNode, assoc: Association, when: str) -> AssociationAborted:
    """The error for a pynetdicom operation whose responses stopped: the peer aborted, or went silent."""
    deadline = time.monotonic() + 1.0  # the association thread may still be handling the abort
    while assoc.is_alive() and not assoc.is_aborted and time.monotonic() < deadline:
        time.sleep(0.02)
    aborted = assoc.is_aborted or not assoc.is_alive()
    return connection_lost(node, when, peer_aborted(assoc.ae.ae_title) if aborted else no_answer(node))
