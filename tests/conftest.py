"""Session-wide test setup: run the whole test session in a private network namespace.

DICOM peers used by the network tests (Orthanc, DCMTK) listen on all interfaces. So that they are
reachable on loopback only, this module, imported by pytest before any test is collected and before
any thread is started, moves the pytest process into a new network namespace whose only interface is
``lo`` (root on Linux only; see ``tests/netpeers/isolation.py``). Every child process inherits it.
All tests, including the Qt offscreen ones, run inside it; none of them needs another network.
When isolation is impossible, the peer fixtures fail with the reason (they do not skip).
"""

from __future__ import annotations

import os

import tempfile  # noqa: E402

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # every Qt test is headless
# Never touch the developer's own encrypted store or keyring: a private data directory, and no
# keyring backend unless a test chooses one (most pass a file backend explicitly).
os.environ["WORKSTATION_DATA_DIR"] = tempfile.mkdtemp(prefix="workstation-data-")
os.environ.pop("PYTHON_KEYRING_BACKEND", None)

from netpeers.isolation import enter_private_netns, isolation_problem  # noqa: E402

enter_private_netns()  # at import: earliest point in the session, before any thread exists


def pytest_report_header(config):
    problem = isolation_problem()
    return "network: private namespace (loopback only)" if problem is None else f"network: NOT isolated ({problem})"
