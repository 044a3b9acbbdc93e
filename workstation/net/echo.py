"""C-ECHO: is the node there, and does it accept us?"""

from __future__ import annotations

import time

from workstation.core.site import LocalAE, PacsNode
from workstation.net.association import associate
from workstation.net.contexts import VERIFICATION
from workstation.net.errors import AssociationAborted, OperationFailed


def echo(node: PacsNode, local: LocalAE) -> float:
    """Round-trip time in seconds of one C-ECHO, association set-up included."""
    start = time.perf_counter()
    with associate(node, local, VERIFICATION) as assoc:
        status = assoc.send_c_echo()
    if not status:
        raise AssociationAborted(f"{node.name}: no C-ECHO response within {node.timeout:g} s")
    if status.Status != 0x0000:
        raise OperationFailed(f"{node.name}: C-ECHO answered status 0x{status.Status:04X}", status.Status)
    return time.perf_counter() - start
