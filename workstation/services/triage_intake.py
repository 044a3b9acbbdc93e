"""The one place that knows how the receiver reports arrivals to triage.

Two sources: `PacsService.received` InstanceReceived events (core.receiving: they carry the calling AE title,
so rules can route by sender) and `PacsService.instance_stored` (every instance cached, by a push, C-MOVE or
C-GET; no sender). An instance reported by both is counted once (completion counts SOP Instance UIDs); a
sender named by either is kept.
"""

from __future__ import annotations

from workstation.core.pacs import StoredInstance
from workstation.services.pacs import PacsService
from workstation.services.triage import TriageService


def connect(pacs: PacsService, triage: TriageService) -> None:
    def stored(instance: StoredInstance) -> None:
        triage.on_instance(instance.study_instance_uid, instance.series_instance_uid, instance.sop_instance_uid,
                           instance.path)

    def received(event) -> None:
        if type(event).__name__ == "InstanceReceived":
            triage.on_instance(event.study_instance_uid, event.series_instance_uid, event.sop_instance_uid,
                               event.path, calling_ae=event.calling_ae_title,
                               source=f"received from {event.calling_ae_title}")
        elif type(event).__name__ in ("AssociationAccepted", "AssociationRefused", "AssociationEnded"):
            triage.changed.emit(_association_text(event), None)

    pacs.instance_stored.connect(stored)
    received_event = getattr(pacs, "received", None)
    if received_event is not None:
        received_event.connect(received)


def _association_text(event) -> str:
    kind = type(event).__name__
    if kind == "AssociationAccepted":
        return f"association accepted: {event.calling_ae_title} from {event.peer_host}"
    if kind == "AssociationRefused":
        return f"association refused: {event.calling_ae_title or '(no request)'} from {event.peer_host}: {event.reason}"
    return (f"association ended: {event.calling_ae_title} from {event.peer_host}, {event.stored} stored, "
            f"{event.refused} refused ({event.how})")
