"""The worker processes of one `workstation-server serve --workers N` tell each other of their commits.

Why: a pipelined push waits for its predecessor's commit (pipeline.py). When the predecessor went to another
worker process, this one learnt of the commit only by reading the head from the database, every few
milliseconds (CPU) or every few tens of milliseconds (the pipeline stalled): the second worker brought little.

How: each worker binds a Unix datagram socket in a folder that `serve` makes for this run (0700, removed at
exit) and, after each commit, sends "<workstation id> <head seq>" to the others. A notice is only a hint: it
makes the waiters of that workstation read the head from the database now, so a lost, late or forged notice
costs a query or a wait, never a wrong answer. Notices are sent without blocking; a peer that is gone is
forgotten until the folder is listed again.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "WORKSTATION_SERVER_PEERS"  # the folder, set by `serve --workers N` for its worker processes
_NOTICE = re.compile(rb"([A-Za-z0-9_.-]{1,128}) ([0-9]{1,19})")
LIST_EVERY_S = 1.0  # how often the folder is listed again (workers started or gone)


class Peers:
    """This worker's socket in `folder`, a thread that hands each notice to `on_notice(workstation_id, seq)`,
    and `announce()` to the other workers."""

    def __init__(self, folder: Path, on_notice: Callable[[str, int], None]) -> None:
        self.folder, self.on_notice = Path(folder), on_notice
        self.path = self.folder / f"worker-{os.getpid()}.sock"
        self._inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.path.unlink(missing_ok=True)
        self._inbox.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self._inbox.settimeout(0.5)  # the receiving thread looks at _closed at least this often
        self._outbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._outbox.setblocking(False)
        self._others: list[str] = []
        self._listed = float("-inf")
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._receive, name="ws-server-peers", daemon=True)
        self._thread.start()

    def announce(self, workstation_id: str, head_seq: int) -> None:
        """Tell the other workers that `workstation_id`'s head reached `head_seq` here."""
        notice = f"{workstation_id} {head_seq}".encode()
        for peer in self._peers():
            try:
                self._outbox.sendto(notice, peer)
            except BlockingIOError:  # its queue is full: it polls the database meanwhile
                pass
            except ConnectionRefusedError:  # nobody is bound there: a worker that died without cleaning up
                Path(peer).unlink(missing_ok=True)
                self._listed = float("-inf")
            except OSError:  # gone (or going): list the folder again next time
                self._listed = float("-inf")

    def _peers(self) -> list[str]:
        now = time.monotonic()
        if now - self._listed >= LIST_EVERY_S:
            with self._lock:
                try:
                    names = sorted(os.listdir(self.folder))
                except OSError:
                    names = []
                mine = self.path.name
                self._others = [str(self.folder / n) for n in names if n.endswith(".sock") and n != mine]
                self._listed = now
        return self._others

    def _receive(self) -> None:
        while not self._closed:
            try:
                data = self._inbox.recv(256)
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            match = _NOTICE.fullmatch(data)
            if match is None:
                log.debug("ignored a malformed notice from a peer (%d bytes)", len(data))
                continue
            try:
                self.on_notice(match.group(1).decode(), int(match.group(2)))
            except Exception:  # noqa: BLE001 - a hint only; the receiving thread must live on
                log.exception("handling a peer's notice failed")

    def close(self) -> None:
        self._closed = True
        try:
            self._inbox.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._inbox.close()
        self._outbox.close()
        self.path.unlink(missing_ok=True)
        self._thread.join(2)
