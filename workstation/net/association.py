"""Open associations to a configured PACS node: timeouts, retries, TLS, and clear failure reasons."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.association import Association

from workstation.core.site import LocalAE, PacsNode, TlsSettings
from workstation.net.errors import AssociationAborted, AssociationRejected, PacsUnreachable

log = logging.getLogger(__name__)

MAX_PDU = 0  # no limit: let the peer send large PDUs (fewer round trips on big images)
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)


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


@contextmanager
def associate(
    node: PacsNode,
    local: LocalAE,
    contexts: list[Any],
    ext_neg: list[Any] | None = None,
    evt_handlers: list[Any] | None = None,
) -> Iterator[Association]:
    """An established association, released on exit; connection failures are retried `node.retries` times."""
    attempts = node.retries + 1
    for attempt in range(attempts):
        try:
            assoc = _open(node, local, contexts, ext_neg, evt_handlers)
            break
        except PacsUnreachable as exc:
            if attempt + 1 == attempts:
                raise PacsUnreachable(f"{exc} (tried {attempts} time{'s' if attempts > 1 else ''})") from None
            delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
            log.warning("PACS %s unreachable (%s); retrying in %.1f s", node.name, exc, delay)
            time.sleep(delay)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def _open(node: PacsNode, local: LocalAE, contexts, ext_neg, evt_handlers) -> Association:
    ae = make_ae(local, node.timeout)
    connected = {"open": False}
    handlers = list(evt_handlers or []) + [(evt.EVT_CONN_OPEN, lambda event: connected.update(open=True))]
    tls_args = None
    if node.tls is not None:
        try:
            tls_args = (client_ssl_context(node.tls), node.tls.server_name or node.host)
        except (OSError, ssl.SSLError) as exc:
            raise PacsUnreachable(f"TLS settings for {node.name} unusable: {exc}") from None
    started = time.monotonic()
    assoc = ae.associate(
        node.host, node.port, contexts=contexts, ae_title=node.ae_title, max_pdu=MAX_PDU,
        ext_neg=ext_neg, tls_args=tls_args, evt_handlers=handlers,
    )
    if assoc.is_established:
        return assoc
    where = f"{node.name} ({node.ae_title}@{node.host}:{node.port})"
    if connected["open"] and not assoc.is_rejected and time.monotonic() - started >= node.timeout * 0.95:
        raise PacsUnreachable(f"{where} accepted the connection but did not answer within {node.timeout:g} s")
    if assoc.is_rejected:
        raise AssociationRejected(f"{where} rejected the association: {_rejection(assoc)}")
    if not connected["open"]:
        reason = _connect_error(node)
        if reason is None and node.tls is not None:
            raise PacsUnreachable(f"TLS handshake with {where} failed: the server certificate is not trusted "
                                  "(or does not name the host), or the server refused our certificate")
        raise PacsUnreachable(f"cannot connect to {where}: {reason or 'the connection closed during set-up'}")
    if node.tls is not None:
        raise AssociationAborted(f"{where} closed the TLS connection: it may require a client certificate "
                                 f"(tls.cert_file/key_file) or not trust ours, or not allow our AE title {local.ae_title!r}")
    raise AssociationAborted(f"{where} aborted the association (our AE title {local.ae_title!r} may not be allowed)")


def _rejection(assoc: Association) -> str:
    primitive = getattr(assoc.acceptor, "primitive", None)
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


def lost_connection(node: PacsNode, assoc: Association, when: str) -> AssociationAborted:
    """The error for an operation whose responses stopped: the peer aborted, or went silent."""
    deadline = time.monotonic() + 1.0  # the association thread may still be handling the abort
    while assoc.is_alive() and not assoc.is_aborted and time.monotonic() < deadline:
        time.sleep(0.02)
    if assoc.is_aborted or not assoc.is_alive():
        return AssociationAborted(
            f"{node.name}: connection lost {when}: the PACS aborted the association "
            f"(our AE title {assoc.ae.ae_title!r} may not be allowed this operation, or the PACS stopped)")
    return AssociationAborted(f"{node.name}: connection lost {when}: no answer within {node.timeout:g} s")
