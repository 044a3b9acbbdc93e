"""Two machines with one workstation id, against the real central server process: the second enrolment is
refused unless IT issued the code with --replace (then recorded as an incident); the replaced machine hears
"replaced" (not "enrol again"), the new machine whose trail is not the server's chain is stopped for IT, and
both say so plainly in `workstation sync`, `workstation doctor` (sync and server checks) and the window's sync
line. Before, the second enrolment silently took the token over and the first machine's entries were refused
as "conflict" for ever while doctor said "ready"."""

from __future__ import annotations

import pytest
from keyrings.alt.file import PlaintextKeyring
from sync_helpers import WS, open_store, populate, site_config, site_toml

from workstation.cli import main
from workstation.core.site import ServerSettings
from workstation.core.sync import API_PREFIX
from workstation.services import doctor
from workstation.services.sync import (
    REPLACED, ChainMismatch, CodeRejected, Replaced, SyncClient, SyncWorker, describe,
)


def worker_for(server, store, backend, code: str | None = None) -> SyncWorker:
    settings = ServerSettings(url=server.url, batch_size=50)
    client = SyncClient(settings, WS, backend)
    if code is not None:
        client.enrol(code)
    return SyncWorker(store, client, settings)


@pytest.fixture
def machine_b(tmp_path):
    """The second machine: its own keyring file and store, the same workstation id."""
    keyring = PlaintextKeyring()
    keyring.file_path = str(tmp_path / "xdg-b" / "python_keyring" / "keyring_pass.cfg")
    (tmp_path / "b").mkdir()
    store = open_store(tmp_path / "b" / "store.sqlite", keyring)
    yield keyring, store
    store.close()


def test_a_second_machine_needs_replace_and_each_side_says_what_happened(central, store, store_path, backend, machine_b,
                                                                          tmp_path, keyring_env, monkeypatch, capsys, qtbot):
    populate(store, 20)
    a = worker_for(central, store, backend, central.issue_code(WS))
    assert a.sync_once().complete
    b_keyring, b_store = machine_b
    populate(b_store, 6)

    # a plain code for an id that already has entries (and a live token) is refused; nothing is taken over
    b_client = SyncClient(ServerSettings(url=central.url), WS, b_keyring)
    with pytest.raises(CodeRejected, match=r"already has 2\d entries on this server from another enrolment.*--replace"):
        b_client.enrol(central.issue_code(WS))
    assert a.sync_once().complete  # machine A still syncs

    # IT moves the id on purpose: recorded on the server
    b_client.enrol(central.issue_code(WS, replace=True))
    b_client.close()
    with central.client(central.qa_token) as http:
        items = http.get(f"{API_PREFIX}/workstations/{WS}/incidents").json()["items"]
    replaced = [i for i in items if i["kind"] == "replaced"]
    assert len(replaced) == 1 and "--replace" in replaced[0]["message"]

    # machine A: "replaced", sync stops, kept in the store for doctor
    populate(store, 25)
    result = a.sync_once()
    assert isinstance(result.error, Replaced) and result.error.halts
    assert str(result.error).startswith(REPLACED) and "enrolled the id ws-sync-01 on another machine" in str(result.error)
    a._schedule(result)
    line = describe(a.state)
    assert line.startswith("Sync: 5 pending · last ") and " · stopped: this machine was replaced on the central server" in line
    assert "replaced on the central server: tell IT (" in line and line.endswith("on another machine (--replace))")
    assert store.sync_status()["last_outcome"] == "replaced" and store.pending_count() == 5
    a.client.close()

    config_a = site_config(store_path, central.url)
    sync_check = doctor.check_sync(config_a, backend)
    assert sync_check.verdict == doctor.FAIL and "refused: this machine was replaced" in sync_check.detail
    assert "5 pending" in sync_check.detail and "its own id" in sync_check.hint
    server_check = doctor.check_server(config_a, backend)
    assert server_check.verdict == doctor.FAIL and "replaced" in server_check.detail and "--replace" in server_check.hint

    # the window's sync line says the same, in the halted style
    from workstation.ui.sync_status import HALTED_STYLE, SyncStatus

    label = SyncStatus()
    qtbot.addWidget(label)
    label.show_state(a.state)
    assert label.text() == line and label.styleSheet() == HALTED_STYLE
    assert "this machine was replaced" in label.toolTip()
    label.resize(900, 28)
    label.grab().save(str(tmp_path / "sync-replaced.png"))

    # machine B's own trail is not the chain the server holds for the id: stopped for IT, nothing sent
    b = SyncWorker(b_store, SyncClient(ServerSettings(url=central.url), WS, b_keyring), ServerSettings(url=central.url))
    result = b.sync_once()
    b.client.close()
    assert isinstance(result.error, ChainMismatch)
    assert str(result.error).startswith("the central server holds another trail for ws-sync-01: tell IT.")
    assert "It holds entries up to 20 but this machine's trail ends at" in str(result.error)
    assert b_store.pending_count() == b_store.count() and central.status(WS)["entries"] == 20
    check = doctor.check_sync(site_config(tmp_path / "b" / "store.sqlite", central.url), b_keyring)
    assert check.verdict == doctor.FAIL and "refused: the central server holds another trail for ws-sync-01" in check.detail
    assert "audit verify" in check.hint

    # `workstation sync --once` on machine B says it and exits 1
    b_site = site_toml(tmp_path / "b" / "site.toml", tmp_path / "b" / "store.sqlite", central.url)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-b"))
    capsys.readouterr()
    assert main(["sync", "--once", "--config", str(b_site)]) == 1
    err = capsys.readouterr().err
    assert "another machine uses this id" in err and "IT:" in err


def test_a_revoked_id_is_enrolled_again_without_replace(central, store, backend):
    """No machine holds a live token after IT revoked it: a new code enrols it (what the machine pushed stays)."""
    populate(store, 10)
    worker = worker_for(central, store, backend, central.issue_code(WS))
    assert worker.sync_once().complete
    central.revoke(WS)
    worker.client.enrol(central.issue_code(WS))
    populate(store, 15)
    assert worker.sync_once().complete
    worker.client.close()
    assert central.status(WS)["entries"] == 15
