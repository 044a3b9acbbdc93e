"""Our C-STORE receiver (the C-MOVE destination) against DCMTK's storescu and echoscu, and raw peers."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pynetdicom import build_context

from workstation.net import ul
from workstation.net.dimse import (
    AFFECTED_SOP_CLASS_UID,
    AFFECTED_SOP_INSTANCE_UID,
    C_STORE_RQ,
    COMMAND_DATA_SET_TYPE,
    COMMAND_FIELD,
    MESSAGE_ID,
    PRIORITY,
    encode_command_set,
    ui,
    us,
)

from netpeers.dcmtk import NET_TIMEOUTS, echoscu, run_tool
from netpeers.process import LOCALHOST

SENDER = "STORESCU"  # storescu's default calling AE title: a configured node here


@pytest.fixture
def pacs(pacs_factory, ws_ae):
    service = pacs_factory(SENDER={"ae_title": SENDER, "host": LOCALHOST, "port": 104})
    service.start_receiver()
    return service


def storescu(port: int, path: Path, calling: str = SENDER, called: str = "WSTEST", *extra: str):
    """storescu proposing only the SOP class it needs (-R); `extra` e.g. the transfer syntax option."""
    return run_tool("storescu", [*NET_TIMEOUTS, "-R", *extra, "-aet", calling, "-aec", called, LOCALHOST, port, path])


def cached_files(pacs, study_uid: str) -> list[Path]:
    return sorted(pacs.study_dir(study_uid).glob("*.dcm"))


def leftovers(pacs) -> list[Path]:
    """Temporary files of instances being received (those kept ready for the next ones are empty)."""
    return [p for p in (pacs.cache.root / "incoming").iterdir() if p.stat().st_size]


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_echo(pacs, ws_ae):
    done = echoscu(ws_ae.port, ws_ae.aet, SENDER)
    assert done.returncode == 0, done.stdout + done.stderr


def test_unknown_calling_ae_title_is_rejected(pacs, ws_ae):
    ct = get_testdata_file("CT_small.dcm", download=False)
    done = storescu(ws_ae.port, ct, calling="STRANGER")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Rejected Permanent" in output and "Service User" in output and "Calling AE Title Not Recognized" in output
    assert cached_files(pacs, pydicom.dcmread(ct).StudyInstanceUID) == []


def test_wrong_called_ae_title_is_rejected(pacs, ws_ae):
    ct = get_testdata_file("CT_small.dcm", download=False)
    done = storescu(ws_ae.port, ct, called="NOTWSTEST")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Rejected Permanent" in output and "Called AE Title Not Recognized" in output


@pytest.mark.parametrize("name, propose", [
    ("CT_small.dcm", "-xe"),  # explicit VR little endian
    ("MR_small_implicit.dcm", "-xi"),
    ("MR_small_bigendian.dcm", "-xb"),
    ("MR_small_RLE.dcm", "-xr"),
    ("JPEG2000.dcm", "-xw"),
    ("MR_small_jpeg_ls_lossless.dcm", "-xt"),
    ("SC_rgb_jpeg_gdcm.dcm", "-xs"),  # JPEG lossless
    ("image_dfl.dcm", "-xd"),  # deflated: kept in memory, then stored whole
])
def test_stored_instance_lands_in_the_cache_as_sent(pacs, ws_ae, name, propose):
    source = Path(get_testdata_file(name, download=False))
    original = pydicom.dcmread(source)
    stored = []
    pacs.instance_stored.connect(stored.append)
    done = storescu(ws_ae.port, source, SENDER, "WSTEST", propose)
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = cached_files(pacs, original.StudyInstanceUID)
    assert [s.path for s in stored] == [path] and stored[0].new
    received = pydicom.dcmread(path)
    assert received.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert received.file_meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID
    assert received.SOPInstanceUID == original.SOPInstanceUID and received.PixelData == original.PixelData
    assert {e.tag for e in received} == {e.tag for e in original} - {0xFFFCFFFC}  # storescu drops trailing padding
    assert leftovers(pacs) == []
    # after the C-STORE-RSP, while the sender turns around, the next instance's file was made ready
    assert [p.stat().st_size for p in (pacs.cache.root / "incoming").iterdir()] == [0]


def test_an_instance_in_many_small_pdus(pacs_factory, ws_ae, monkeypatch):
    """We announce a Maximum Length of 4 KiB: storescu splits the data set into many PDUs."""
    monkeypatch.setattr(ul, "MAX_PDU", 4096)
    pacs = pacs_factory(SENDER={"ae_title": SENDER, "host": LOCALHOST, "port": 104})
    pacs.start_receiver()
    source = get_testdata_file("CT_small.dcm", download=False)
    done = storescu(ws_ae.port, source, SENDER, "WSTEST", "-d")
    assert done.returncode == 0 and "Max Send PDV: 4084" in done.stdout + done.stderr
    original = pydicom.dcmread(source)
    (path,) = cached_files(pacs, original.StudyInstanceUID)
    assert pydicom.dcmread(path).PixelData == original.PixelData


def test_hostile_uids_never_reach_a_path(pacs, ws_ae, tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    ds.StudyInstanceUID = "../../../../etc"
    ds.SeriesInstanceUID = "../x"
    ds.SOPInstanceUID = "/tmp/evil.dcm"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    source = tmp_path / "hostile.dcm"
    ds.save_as(source)
    done = storescu(ws_ae.port, source)
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = cached_files(pacs, "../../../../etc")
    assert pacs.cache.root in path.parents and len(path.relative_to(pacs.cache.root).parts) == 3
    assert "etc" not in str(path.relative_to(pacs.cache.root)) and "evil" not in str(path)
    assert pydicom.dcmread(path).SOPInstanceUID == "/tmp/evil.dcm"
    assert not Path("/tmp/evil.dcm").exists()


# ----- a raw peer: what DCMTK will not do (stop mid-instance, go silent)

def associate_raw(port: int, calling: str = SENDER) -> tuple[socket.socket, int]:
    """An association proposing CT Image Storage (explicit VR LE); returns the socket and the context ID."""
    context = build_context("1.2.840.10008.5.1.4.1.1.2", ["1.2.840.10008.1.2.1"])
    context.context_id = 1
    sock = socket.create_connection((LOCALHOST, port), timeout=5)
    sock.sendall(ul.a_associate_rq(calling, "WSTEST", [context], []))
    pdus = ul.PduSocket(sock)
    pdu_type, encoded = pdus.read_pdu()
    assert pdu_type == ul.A_ASSOCIATE_AC_PDU
    (accepted,) = ul.accepted_syntaxes(ul.decode_association_pdu(pdu_type, encoded).presentation_context_definition_results_list)
    return sock, accepted


def first_half_of_an_instance(sock: socket.socket, context_id: int) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    encoded = open(get_testdata_file("CT_small.dcm", download=False), "rb").read()
    data_set = encoded[len(encoded) - len(encoded) // 2:]  # any bytes do: the instance never completes
    command = encode_command_set([
        (AFFECTED_SOP_CLASS_UID, ui(ds.SOPClassUID)), (COMMAND_FIELD, us(C_STORE_RQ)), (MESSAGE_ID, us(1)),
        (PRIORITY, us(0)), (COMMAND_DATA_SET_TYPE, us(0)), (AFFECTED_SOP_INSTANCE_UID, ui(ds.SOPInstanceUID)),
    ])
    sock.sendall(ul.p_data_tf(context_id, ul.COMMAND | ul.LAST_FRAGMENT, command) + ul.p_data_tf(context_id, 0, data_set))


@pytest.mark.parametrize("how", ["A-ABORT", "connection closed", "A-RELEASE-RQ"])
def test_an_instance_broken_off_leaves_no_file(pacs, ws_ae, how):
    sock, context_id = associate_raw(ws_ae.port)
    first_half_of_an_instance(sock, context_id)
    assert wait_until(lambda: len(leftovers(pacs)) == 1)  # being received
    if how != "connection closed":
        sock.sendall(ul.a_abort() if how == "A-ABORT" else ul.A_RELEASE_RQ)
    if how == "A-RELEASE-RQ":  # not allowed in the middle of a message: the receiver aborts
        assert ul.PduSocket(sock).read_pdu_header()[0] == ul.A_ABORT_PDU
    sock.close()
    assert wait_until(lambda: not pacs._receiver._associations)
    assert leftovers(pacs) == [] and list((pacs.cache.root / "studies").iterdir()) == []


def test_a_silent_peer_is_dropped(pacs_factory, ws_ae):
    pacs = pacs_factory(local={"idle_timeout_s": 0.5}, SENDER={"ae_title": SENDER, "host": LOCALHOST, "port": 104})
    pacs.start_receiver()
    sock, context_id = associate_raw(ws_ae.port)
    first_half_of_an_instance(sock, context_id)
    try:
        assert wait_until(lambda: not pacs._receiver._associations, timeout=5)
        assert leftovers(pacs) == []
        assert sock.recv(100) == b""  # the receiver closed the connection
    finally:
        sock.close()


def test_stop_ends_associations_at_once(pacs, ws_ae):
    sock, context_id = associate_raw(ws_ae.port)
    first_half_of_an_instance(sock, context_id)
    assert wait_until(lambda: len(leftovers(pacs)) == 1)
    started = time.monotonic()
    pacs.close()
    assert time.monotonic() - started < 2
    assert not pacs._receiver.running and list((pacs.cache.root / "incoming").iterdir()) == []  # none kept ready either
    sock.close()
    with pytest.raises(OSError):
        socket.create_connection((LOCALHOST, ws_ae.port), timeout=2).close()


def test_port_in_use_is_reported(pacs_factory, ws_ae):
    from workstation.net.errors import PacsError

    blocker = socket.create_server((LOCALHOST, ws_ae.port))
    try:
        pacs = pacs_factory()
        with pytest.raises(PacsError, match=f"cannot listen for C-STORE on {LOCALHOST}:{ws_ae.port}"):
            pacs.start_receiver()
    finally:
        blocker.close()
