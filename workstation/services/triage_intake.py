"""The one place that knows how the receiver reports arrivals to triage.

Two sources: `PacsService.received` InstanceReceived events (core.receiving: they carry the calling AE title,
so rules can route by sender) and `PacsService.instance_stored` (every instance cached, by a push, C-MOVE or
C-GET; no sender). An instance reported by both is counted once (completion counts SOP Instance UIDs); a
sender named by either is kept. The receiver reports an association's events on its thread, in order, so an
instance the cache reports on a thread inside an accepted association is known to come from that sender.
"""

from __future__ import annotations

import threading

from workstation.core.pacs import StoredInstance
from workstation.services.pacs import PacsService
from workstation.services.triage import TriageService


def connect(pacs: PacsService, triage: TriageService) -> None:
    association = threading.local()  # the receiver reports an association's events on its own thread, in order

    def stored(instance: StoredInstance) -> None:
        sender = getattr(association, "calling_ae", "")  # inside an accepted association: its sender
        triage.on_instance(instance.study_instance_uid, instance.series_instance_uid, instance.sop_instance_uid,
                           instance.path, calling_ae=sender, source=f"received from {sender}" if sender else "")

    def received(event) -> None:
        if type(event).__name__ == "AssociationAccepted":
            association.calling_ae = event.calling_ae_title
        elif type(event).__name__ == "AssociationEnded":
            association.calling_ae = ""
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
