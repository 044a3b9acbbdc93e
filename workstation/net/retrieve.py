"""C-MOVE and C-GET of a study or some of its series, as generators of progress.

A retrieval of several series sends one request per series on one association.
Cancellation sends C-CANCEL and then reads on until the PACS confirms, so what
already arrived is known and kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

from workstation.core.pacs import RetrieveProgress
from workstation.core.site import LocalAE, PacsNode
from workstation.core.tasks import CancelToken
from workstation.net.association import associate, lost_connection
from workstation.net.contexts import GET_MODEL, MOVE, get_contexts
from workstation.net.errors import OperationFailed

StoreSink = Callable[[bytes], int]  # stores one encoded instance; returns the C-STORE status to answer

PENDING = (0xFF00, 0xFF01)
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
    with associate(node, local, MOVE) as assoc:
        yield from _requests(
            node, assoc, study_uid, series_uids, cancel, StudyRootQueryRetrieveInformationModelMove,
            lambda ds, msg_id: assoc.send_c_move(ds, destination_ae, StudyRootQueryRetrieveInformationModelMove, msg_id=msg_id),
        )


def get(
    node: PacsNode, local: LocalAE, study_uid: str, sink: StoreSink,
    series_uids: Sequence[str] = (), cancel: CancelToken | None = None,
) -> Iterator[RetrieveProgress]:
    """C-GET: instances come back on this association and go to `sink` (no inbound port needed)."""
    contexts, roles = get_contexts()
    handlers = [(evt.EVT_C_STORE, _store_handler(sink))]
    with associate(node, local, contexts, ext_neg=roles, evt_handlers=handlers) as assoc:
        yield from _requests(
            node, assoc, study_uid, series_uids, cancel, GET_MODEL,
            lambda ds, msg_id: assoc.send_c_get(ds, GET_MODEL, msg_id=msg_id),
        )


def _store_handler(sink: StoreSink) -> Callable[[Any], int]:
    def handle(event: Any) -> int:
        try:
            return sink(event.encoded_dataset(include_meta=True))
        except Exception:  # noqa: BLE001 - a failed store is answered with a failure status, not a crash
            return 0xA700
    return handle


def identifier(study_uid: str, series_uid: str | None) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
    ds.StudyInstanceUID = study_uid
    if series_uid:
        ds.SeriesInstanceUID = series_uid
    return ds


def _requests(
    node: PacsNode, assoc: Association, study_uid: str, series_uids: Sequence[str],
    cancel: CancelToken | None, model: Any, send: Callable[[Dataset, int], Iterator[tuple[Dataset, Any]]],
) -> Iterator[RetrieveProgress]:
    done = RetrieveProgress()
    targets: list[str | None] = list(series_uids) or [None]
    for msg_id, series_uid in enumerate(targets, start=1):
        last = RetrieveProgress()
        cancel_sent = False
        for status, response_identifier in send(identifier(study_uid, series_uid), msg_id):
            code = status.get("Status") if status else None
            if code is None:
                raise lost_connection(node, assoc, f"after {done.completed + last.completed} instance(s)")
            last = _progress(status, response_identifier, code)
            if code in PENDING:
                yield _add(done, last, final=False)
                if cancel is not None and cancel.cancelled and not cancel_sent:
                    assoc.send_c_cancel(msg_id, query_model=model)
                    cancel_sent = True
                continue
            if code not in (SUCCESS, WARNING_SOME_FAILED, CANCELLED):
                text = STATUS_TEXT.get(code) or STATUS_TEXT.get(code & 0xF000) or "failure"
                comment = status.get("ErrorComment", "")
                raise OperationFailed(f"{node.name}: retrieve failed with status 0x{code:04X} ({text}) {comment}".rstrip(), code)
        done = _add(done, last, final=False)
        if cancel is not None and cancel.cancelled:
            break
    yield RetrieveProgress(done.completed, done.failed, done.warning, 0, last.status, True, done.failed_instances)


def _progress(status: Dataset, response_identifier: Dataset | None, code: int) -> RetrieveProgress:
    failed_list: tuple[str, ...] = ()
    if response_identifier is not None and "FailedSOPInstanceUIDList" in response_identifier:
        value = response_identifier.FailedSOPInstanceUIDList
        failed_list = tuple(str(v) for v in (value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]) if v)
    return RetrieveProgress(
        completed=int(status.get("NumberOfCompletedSuboperations", 0) or 0),
        failed=int(status.get("NumberOfFailedSuboperations", 0) or 0),
        warning=int(status.get("NumberOfWarningSuboperations", 0) or 0),
        remaining=_optional_int(status.get("NumberOfRemainingSuboperations")),
        status=code,
        failed_instances=failed_list,
    )


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


def _optional_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
