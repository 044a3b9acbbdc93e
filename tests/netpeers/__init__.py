"""Real DICOM peers for tests: Orthanc and DCMTK servers on free loopback ports.

* ``isolation``: the private network namespace the test session runs in (``network_isolated()``);
* ``process``: ``free_port()``, the server process base class, ``PeerError``;
* ``orthanc``: ``OrthancPeer``;  ``dcmtk``: ``DcmqrscpPeer``, ``StorescpPeer`` and SCU wrappers;
* ``certs``: ``make_tls_certs()`` -> ``TlsCerts``;
* ``central``: ``CentralServer`` (the workstation-server process) and its fixtures;
* ``postgres``: ``PostgresCluster`` (a throw-away PostgreSQL) and its fixtures.

Only ``isolation`` is imported here: ``tests/conftest.py`` imports this package before any thread
starts and must stay cheap.
"""

from .isolation import enter_private_netns, isolation_problem, network_isolated

__all__ = ["enter_private_netns", "isolation_problem", "network_isolated"]
