"""C-MOVE and C-GET of a study or some of its series, as generators of progress.

A retrieval of several series sends one request per series on one association.
Cancellation sends C-CANCEL and then reads on until the PACS confirms, so what
already arrived is known and kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import cache

from pydicom.dataset import Dataset

from workstation.core.pacs import RetrieveProgress
from workstation.core.site import LocalAE, PacsNode
from workstation.core.tasks import CancelToken
from workstation.net.association import connection_lost
from workstation.net.contexts import MOVE, get_contexts
from workstation.net.dimse import PENDING, InstanceSink
from workstation.net.errors import ConnectionLost, OperationFailed
from workstation.net.retrieve_scu import Responses, retrieve_association
from workstation.net.ul import Proposal

SUCCESS, WARNING_SOME_FAILED, CANCELLED = 0x0000, 0xB000, 0xFE00
STATUS_TEXT = {
    0xA701: "out of resources: unable to calculate number of matches",
    0xA702: "out of resources: unable to perform sub-operations",
    0xA801: "move destination unknown (the PACS does not know our AE title)",
    0xA900: "identifier does not match SOP class",
    0xAA00: "none of the frames requested were found",
    0xC000: "unable to process (for C-MOVE often: destination AE unknown to the PACS)",
}


def move(
    node: PacsNode, local: LocalAE, destination_ae: str, study_uid: str,
    series_uids: Sequence[str] = (), cancel: CancelToken | None = None,
) -> Iterator[RetrieveProgress]:
    """C-MOVE to `destination_ae` (normally our own receiver); instances arrive on other associations."""
    with retrieve_association(node, local, _proposal("move")) as assoc:
        yield from _requests(
            node, study_uid, series_uids, cancel,
            lambda ds, msg_id: assoc.c_move(ds, msg_id, destination_ae), assoc.c_cancel,
        )


def get(
    node: PacsNode, local: LocalAE, study_uid: str, sink: InstanceSink,
    series_uids: Sequence[str] = (), cancel: CancelToken | None = None,
) -> Iterator[RetrieveProgress]:
    """C-GET: instances come back on this association and are streamed into `sink` (no inbound port needed)."""
    with retrieve_association(node, local, _proposal("get"), sink) as assoc:
        yield from _requests(node, study_uid, series_uids, cancel, assoc.c_get, assoc.c_cancel)


@cache
def _proposal(method: str) -> Proposal:
    """What a C-MOVE or C-GET association proposes; built once (C-GET's 127 contexts take a few ms)."""
    return Proposal(*get_contexts()) if method == "get" else Proposal(MOVE, [])


def identifier(study_uid: str, series_uid: str | None) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
    ds.StudyInstanceUID = study_uid
    if series_uid:
        ds.SeriesInstanceUID = series_uid
    return ds


def _requests(
    node: PacsNode, study_uid: str, series_uids: Sequence[str], cancel: CancelToken | None,
    send: Callable[[Dataset, int], Responses], send_cancel: Callable[[int], None],
) -> Iterator[RetrieveProgress]:
    done = RetrieveProgress()
    targets: list[str | None] = list(series_uids) or [None]
    for msg_id, series_uid in enumerate(targets, start=1):
        last = RetrieveProgress()
        cancel_sent = False
        try:
            for last, comment in send(identifier(study_uid, series_uid), msg_id):
                code = last.status
                if code in PENDING:
                    yield _add(done, last, final=False)
                    if cancel is not None and cancel.cancelled and not cancel_sent:
                        send_cancel(msg_id)
                        cancel_sent = True
                    continue
                if code not in (SUCCESS, WARNING_SOME_FAILED, CANCELLED):
                    text = STATUS_TEXT.get(code) or STATUS_TEXT.get(code & 0xF000) or "failure"
                    raise OperationFailed(f"{node.name}: retrieve failed with status 0x{code:04X} ({text}) {comment}".rstrip(), code)
        except ConnectionLost as exc:
            raise connection_lost(node, f"after {done.completed + last.completed} instance(s)", str(exc)) from None
        done = _add(done, last, final=False)
        if cancel is not None and cancel.cancelled:
            break
    yield RetrieveProgress(done.completed, done.failed, done.warning, 0, last.status, True, done.failed_instances)


def _add(done: RetrieveProgress, current: RetrieveProgress, final: bool) -> RetrieveProgress:
    return RetrieveProgress(
        completed=done.completed + current.completed,
        failed=done.failed + current.failed,
        warning=done.warning + current.warning,
        remaining=current.remaining,
        status=current.status,
        final=final,
        failed_instances=done.failed_instances + current.failed_instances,
    )
