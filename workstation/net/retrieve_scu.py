"""C-GET and C-MOVE SCU on our own association: one thread, one blocking socket.

pynetdicom's threaded design (1 ms polling loops, objects per PDU) holds a retrieval to
about a fifth of DCMTK's speed: in C-GET the instances themselves, in C-MOVE the pending
response after every instance. Here the calling thread reads the PDUs; instances coming
back on a C-GET association go to the sink fragment by fragment (dimse.MessageChannel).
Connecting, TLS, retries and the failure messages are association.py's, so a retrieval
fails in the same words as any other operation.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from pydicom.dataset import Dataset

from workstation.core.pacs import RetrieveProgress
from workstation.core.site import LocalAE, PacsNode
from workstation.net import ul
from workstation.net.association import (
    closed_during_setup,
    connect,
    no_answer,
    not_answering,
    peer_aborted,
    rejected,
    with_retries,
)
from workstation.net.dimse import (
    C_GET_RQ,
    C_GET_RSP,
    C_MOVE_RQ,
    C_MOVE_RSP,
    ERROR_COMMENT,
    NUMBER_OF_COMPLETED_SUBOPERATIONS,
    NUMBER_OF_FAILED_SUBOPERATIONS,
    NUMBER_OF_REMAINING_SUBOPERATIONS,
    NUMBER_OF_WARNING_SUBOPERATIONS,
    PENDING,
    STATUS,
    InstanceSink,
    Message,
    MessageChannel,
    c_cancel_rq,
    decode_data_set,
    encode_data_set,
    failed_sop_instances,
    retrieve_rq,
)
from workstation.net.errors import ConnectionLost, OperationFailed

log = logging.getLogger(__name__)

Responses = Iterator[tuple[RetrieveProgress, str]]  # each response: its progress and its Error Comment


class RetrieveAssociation:
    """An established association for C-GET or C-MOVE of one Query/Retrieve information model."""

    def __init__(self, node: PacsNode, local: LocalAE, channel: MessageChannel, model: str, context_id: int) -> None:
        self.node, self.local = node, local
        self.channel = channel
        self.model = model
        self.context_id = context_id  # the accepted presentation context of the model
        self._idle = True  # no request outstanding: the association can be released
        self._broken = False

    def c_get(self, identifier: Dataset, message_id: int) -> Responses:
        """Send a C-GET-RQ; yield each C-GET-RSP, the final one last. Instances go to the channel's sink."""
        return self._request(retrieve_rq(C_GET_RQ, self.model, message_id), identifier, C_GET_RSP)

    def c_move(self, identifier: Dataset, message_id: int, destination_ae: str) -> Responses:
        """Send a C-MOVE-RQ; yield each C-MOVE-RSP, the final one last."""
        return self._request(retrieve_rq(C_MOVE_RQ, self.model, message_id, destination_ae), identifier, C_MOVE_RSP)

    def c_cancel(self, message_id: int) -> None:
        with self._lost():
            self.channel.send(self.context_id, c_cancel_rq(message_id))

    def close(self) -> None:
        """A-RELEASE when idle; A-ABORT in the middle of an operation (or after a protocol error)."""
        pdus = self.channel.pdus
        try:
            if self._broken:
                return
            if not self._idle:
                pdus.send(ul.a_abort())
                return
            pdus.send(ul.A_RELEASE_RQ)
            while True:
                pdu_type, length = pdus.read_pdu_header()
                if pdu_type in (ul.A_RELEASE_RP_PDU, ul.A_ABORT_PDU):
                    return
                pdus.skip(length)
        except (OSError, ul.ProtocolError):
            pass
        finally:
            pdus.close()

    def _request(self, command: bytes, identifier: Dataset, response_field: int) -> Responses:
        syntax = self.channel.syntaxes[self.context_id]
        with self._lost():
            self._idle = False
            self.channel.send(self.context_id, command, encode_data_set(identifier, syntax))
        while True:
            with self._lost():
                message = self.channel.receive()
                if message is None:
                    raise ul.ProtocolError("the PACS asked to release the association during a retrieval")
                progress = self._progress(message, response_field)
            self._idle = progress.status not in PENDING
            yield progress, message.command.text(ERROR_COMMENT)
            if self._idle:
                return

    def _progress(self, message: Message, response_field: int) -> RetrieveProgress:
        command = message.command
        status = command.us(STATUS)
        if command.command_field != response_field or status is None:
            raise ul.ProtocolError(f"expected a response 0x{response_field:04X} with a status, "
                                   f"got command 0x{command.command_field or 0:04X}")
        return RetrieveProgress(
            completed=command.us(NUMBER_OF_COMPLETED_SUBOPERATIONS) or 0,
            failed=command.us(NUMBER_OF_FAILED_SUBOPERATIONS) or 0,
            warning=command.us(NUMBER_OF_WARNING_SUBOPERATIONS) or 0,
            remaining=command.us(NUMBER_OF_REMAINING_SUBOPERATIONS),
            status=status,
            failed_instances=self._failed_instances(message),
        )

    def _failed_instances(self, message: Message) -> tuple[str, ...]:
        if not message.data_set:
            return ()
        try:
            return failed_sop_instances(decode_data_set(message.data_set, self.channel.syntaxes[message.context_id]))
        except Exception:  # noqa: BLE001 - the list only names the failures the counts already report
            log.warning("%s: unreadable identifier in a retrieve response", self.node.name, exc_info=True)
            return ()

    @contextmanager
    def _lost(self) -> Iterator[None]:
        """Failures of the connection as ConnectionLost, in association.py's words."""
        try:
            yield
        except TimeoutError:
            self._broken = True
            raise ConnectionLost(no_answer(self.node)) from None
        except ul.ProtocolError as exc:
            self._broken = True
            self._send_abort()
            raise ConnectionLost(f"protocol error: {exc}") from None
        except (OSError, ul.PeerAborted):
            self._broken = True
            raise ConnectionLost(peer_aborted(self.local.ae_title)) from None

    def _send_abort(self) -> None:
        try:
            self.channel.pdus.send(ul.a_abort())
        except OSError:
            pass


@contextmanager
def retrieve_association(
    node: PacsNode, local: LocalAE, proposal: ul.Proposal, sink: InstanceSink | None = None,
) -> Iterator[RetrieveAssociation]:
    """An association whose first proposed context is the retrieve model, released (or aborted) on exit;
    connection failures are retried as associate() does. `sink` takes the instances of a C-GET."""
    assoc = with_retries(node, lambda: _open(node, local, proposal, sink))
    try:
        yield assoc
    finally:
        assoc.close()


def _open(node: PacsNode, local: LocalAE, proposal: ul.Proposal, sink: InstanceSink | None) -> RetrieveAssociation:
    pdus = ul.PduSocket(connect(node))
    try:
        pdu_type, encoded = pdus.request(proposal.a_associate_rq(local.ae_title, node.ae_title))
        answer = ul.decode_association_pdu(pdu_type, encoded) if pdu_type in (ul.A_ASSOCIATE_AC_PDU, ul.A_ASSOCIATE_RJ_PDU) else None
    except socket.timeout:
        pdus.close()
        raise not_answering(node) from None
    except (OSError, ul.ProtocolError):
        pdus.close()
        raise closed_during_setup(node, local) from None
    if answer is None:  # A-ABORT, or not an association answer at all
        pdus.close()
        raise closed_during_setup(node, local)
    if pdu_type == ul.A_ASSOCIATE_RJ_PDU:
        pdus.close()
        raise rejected(node, answer)
    syntaxes = ul.accepted_syntaxes(answer.presentation_context_definition_results_list)
    model = proposal.contexts[0]
    assoc = RetrieveAssociation(node, local, MessageChannel(pdus, syntaxes, sink, ul.maximum_length(answer)),
                                model.abstract_syntax, model.context_id)
    if model.context_id not in syntaxes:
        assoc.close()
        raise OperationFailed(f"{node.name} does not accept {model.abstract_syntax.name} from us")
    return assoc
