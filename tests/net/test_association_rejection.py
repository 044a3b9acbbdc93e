"""A peer that rejects (A-ASSOCIATE-RJ) and closes at once is reported as rejecting, never as aborting.

A PACS may read only the start of our 10 KB C-GET request, answer A-ASSOCIATE-RJ and close; under CPU
load our send then fails (connection reset) with the rejection already in our receive buffer. Small socket
buffers make that happen every time here, without load.
"""

from __future__ import annotations

import socket
import threading

import pytest

from workstation.core.site import parse_site_config
from workstation.net import association, retrieve_scu, ul
from workstation.net.contexts import VERIFICATION, get_contexts
from workstation.net.errors import AssociationAborted, AssociationRejected

from netpeers.process import LOCALHOST

CALLED_AE_NOT_RECOGNISED = ul.a_associate_rj(0x01, 0x01, 0x07)  # rejected permanent, service user, reason 7


class RejectingPeer:
    """Reads `read` bytes of the request (all of it when None), sends A-ASSOCIATE-RJ, closes."""

    def __init__(self, read: int | None) -> None:
        self.read = read
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # inherited by the accepted socket
        self.listener.bind((LOCALHOST, 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                if self.read is None:
                    _, length = ul.PDU_HEADER.unpack(conn.recv(6, socket.MSG_WAITALL))
                    conn.recv(length, socket.MSG_WAITALL)
                else:
                    conn.recv(self.read, socket.MSG_WAITALL)
                conn.sendall(CALLED_AE_NOT_RECOGNISED)
            # closed with most of the request unread: the kernel resets the connection

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def small_send_buffer(monkeypatch):
    """Our socket's send buffer at its minimum, so a 10 KB request cannot be queued whole."""
    original = retrieve_scu.connect

    def connect(node):
        sock = original(node)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1024)
        return sock

    monkeypatch.setattr(retrieve_scu, "connect", connect)


def _config(port: int):
    return parse_site_config({"workstation": {"ae_title": "WS"},
                              "pacs": {"MAIN": {"ae_title": "OTHER", "host": LOCALHOST, "port": port,
                                                "timeout_s": 5, "retries": 0}}})


@pytest.mark.parametrize("read", [6, 200, None])
def test_our_association_reads_the_rejection_after_a_failed_send(small_send_buffer, read) -> None:
    peer = RejectingPeer(read)
    try:
        config = _config(peer.port)
        proposal = ul.Proposal(*get_contexts())
        assert len(proposal.a_associate_rq("WS", "OTHER")) > 8000
        for _ in range(5):
            with pytest.raises(AssociationRejected, match="rejected the association: Called AE title not recognised"):
                with retrieve_scu.retrieve_association(config.node("MAIN"), config.local, proposal):
                    pass
    finally:
        peer.close()


def test_send_failure_without_an_answer_is_still_an_abort(small_send_buffer) -> None:
    """A peer that closes without a word: the send error stands (reported as the association aborted)."""
    listener = socket.socket()
    listener.bind((LOCALHOST, 0))
    listener.listen()

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(6)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        config = _config(listener.getsockname()[1])
        with pytest.raises(AssociationAborted, match="aborted the association"):
            with retrieve_scu.retrieve_association(config.node("MAIN"), config.local, ul.Proposal(*get_contexts())):
                pass
    finally:
        listener.close()


def test_pynetdicom_association_reports_the_rejection() -> None:
    peer = RejectingPeer(None)
    try:
        config = _config(peer.port)
        for _ in range(3):
            with pytest.raises(AssociationRejected, match="Called AE title not recognised"):
                with association.associate(config.node("MAIN"), config.local, VERIFICATION):
                    pass
    finally:
        peer.close()
