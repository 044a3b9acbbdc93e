"""Why a DICOM network operation failed, in words for the user and types for the code."""

from __future__ import annotations


class PacsError(Exception):
    """Base: every network failure the workstation reports to a user."""


class PacsUnreachable(PacsError):
    """No TCP (or TLS) connection: node down, wrong host/port, firewall, timeout, certificate refused."""


class AssociationRejected(PacsError):
    """The peer refused the association, e.g. unknown calling AE title or wrong called AE title."""


class AssociationAborted(PacsError):
    """The peer aborted or closed the connection (before or during an operation)."""


class OperationFailed(PacsError):
    """The peer answered a DIMSE request with a failure status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConnectionLost(Exception):
    """Internal: the responses of an operation stopped (str: why); reported as AssociationAborted."""
