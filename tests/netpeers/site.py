"""The workstation's side of a test: site configuration entries for started peers."""

from __future__ import annotations

from netpeers.process import LOCALHOST


def node_settings(peer, **extra) -> dict:
    """A `[pacs.NAME]` table for a started peer."""
    return {"ae_title": peer.aet, "host": LOCALHOST, "port": peer.port, "timeout_s": 10, "retries": 0, **extra}
