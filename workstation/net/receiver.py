"""The workstation's own C-STORE receiver: the destination of C-MOVE retrievals.

Datasets are handed on still encoded (no pydicom decode per instance), which
keeps up with a PACS sending hundreds of slices a second. Only AE titles of
configured PACS nodes may store to us.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification

from workstation.core.site import LocalAE
from workstation.net.association import MAX_PDU
from workstation.net.contexts import storage_contexts_for_receiver
from workstation.net.errors import PacsError
from workstation.net.retrieve import StoreSink

log = logging.getLogger(__name__)


class StoreReceiver:
    def __init__(self, local: LocalAE, sink: StoreSink, allowed_calling_aets: list[str] | None = None) -> None:
        self.local = local
        self._sink = sink
        self._allowed = allowed_calling_aets
        self._server: Any = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Listen on the configured address/port; raises PacsError if the port cannot be bound."""
        with self._lock:
            if self._server is not None:
                return
            ae = AE(ae_title=self.local.ae_title)
            ae.maximum_pdu_size = MAX_PDU
            ae.supported_contexts = storage_contexts_for_receiver()
            ae.add_supported_context(Verification)
            if self._allowed:
                ae.require_calling_aet = list(self._allowed)
            ae.maximum_associations = 16
            try:
                self._server = ae.start_server(
                    (self.local.bind_address, self.local.store_port), block=False,
                    evt_handlers=[(evt.EVT_C_STORE, self._handle_store)],
                )
            except OSError as exc:
                raise PacsError(
                    f"cannot listen for C-STORE on {self.local.bind_address}:{self.local.store_port}: "
                    f"{exc.strerror or exc}") from None

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.shutdown()
                self._server = None

    def _handle_store(self, event: Any) -> int:
        try:
            return self._sink(event.encoded_dataset(include_meta=True))
        except Exception:  # noqa: BLE001 - answer with a failure status; the sender counts it as failed
            log.exception("could not store a received instance")
            return 0xA700

    def __enter__(self) -> StoreReceiver:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
