"""What the C-STORE receiver reports: the events of `PacsService.received` (no I/O here).

Every association that reaches the receiver ends in exactly one `AssociationAccepted` or
`AssociationRefused`; an accepted one then reports each instance (`InstanceReceived`,
`InstanceConflict` or `InstanceRefused`) and finally `AssociationEnded`. Events are emitted on
the receiver's association thread, in this order for one association; a listener that needs
the GUI thread re-emits them as queued Qt signals, and a listener must return quickly (the
sender waits for our C-STORE response while it runs). No event carries patient data: UIDs,
AE titles, addresses, counts and reasons only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AssociationAccepted:
    association_id: int  # unique for the receiver's lifetime; ties the instance events to their association
    peer_host: str  # the sender's IP address as seen on the connection
    calling_ae_title: str
    called_ae_title: str
    node: str  # the configured [pacs.NAME] node it matched
    tls: bool


@dataclass(frozen=True)
class AssociationRefused:
    peer_host: str
    calling_ae_title: str  # "" when refused before an A-ASSOCIATE-RQ was read (ARTIM, TLS handshake, limits)
    called_ae_title: str
    reason: str  # e.g. "calling AE title not configured", "spoofed: AE title of node MAIN from another host"
    tls: bool


@dataclass(frozen=True)
class InstanceReceived:
    """An instance stored in the cache (`new` False: the same bytes were there already)."""

    association_id: int
    calling_ae_title: str
    peer_host: str
    node: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: Path
    new: bool


@dataclass(frozen=True)
class InstanceConflict:
    """A SOP Instance UID held already, arriving with different content: the held copy stays in place,
    the new one is kept beside it (`conflict_path`) for the user to look at; the sender got a failure."""

    association_id: int
    calling_ae_title: str
    peer_host: str
    node: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    held_path: Path
    conflict_path: Path


@dataclass(frozen=True)
class InstanceRefused:
    """A C-STORE answered with a failure status; nothing was kept."""

    association_id: int
    calling_ae_title: str
    peer_host: str
    node: str
    sop_instance_uid: str  # as the command announced it
    status: int  # the C-STORE status sent (e.g. 0xC000 cannot understand, 0xA900 data set does not match)
    reason: str


@dataclass(frozen=True)
class AssociationEnded:
    association_id: int
    peer_host: str
    calling_ae_title: str
    node: str
    stored: int  # instances stored (new or already held)
    refused: int
    conflicts: int
    study_instance_uids: tuple[str, ...]  # of the stored and conflicting instances, in order of arrival
    how: str  # "released", "aborted by the peer", "connection lost", "silent for N s", "deadline of N s", "protocol error: ...", "stopped"


@dataclass(frozen=True)
class KeptConflict:
    """A conflicting copy kept in the cache (under conflicts/), as the Problems panel lists it."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    held_path: Path
    conflict_path: Path
    origin: str  # who sent it, e.g. "STORESCU from 127.0.0.1" (AE title and address only)
    received_at: float  # seconds since the epoch


ReceiverEvent = AssociationAccepted | AssociationRefused | InstanceReceived | InstanceConflict | InstanceRefused | AssociationEnded
