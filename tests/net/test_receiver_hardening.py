"""Our C-STORE receiver tried as hostile or broken senders would (issue 19): DCMTK storescu and raw-socket peers.

Who may store (configured AE title from its configured host, none when no node is configured, TLS
client certificates), what is kept (truncated, unparsable and mismatching data sets refused with
nothing left behind; a held SOP Instance UID with other content kept as a visible conflict), and
what idle or slow peers can do (ARTIM, per-address limits, bounded PDUs, an overall deadline,
bounded inflation). Every refusal is audited, without patient data.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import zlib
from pathlib import Path

import pydicom
import pytest
from keyrings.alt.file import PlaintextKeyring
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian
from pynetdicom import build_context

from workstation.core.receiving import (
    AssociationAccepted,
    AssociationEnded,
    InstanceConflict,
    InstanceReceived,
    InstanceRefused,
)
from workstation.core.roles import Role, User
from workstation.dicom import cache as cache_module
from workstation.dicom.encoded import meta_transfer_syntax
from workstation.net import ul
from workstation.net.dimse import (
    AFFECTED_SOP_CLASS_UID,
    AFFECTED_SOP_INSTANCE_UID,
    C_STORE_RQ,
    COMMAND_DATA_SET_TYPE,
    COMMAND_FIELD,
    ERROR_COMMENT,
    MESSAGE_ID,
    PRIORITY,
    STATUS,
    MessageChannel,
    encode_command_set,
    ui,
    us,
)
from workstation.services.session import AuditTrail
from workstation.store.database import Identity, Store

from netpeers.dcmtk import NET_TIMEOUTS, run_tool, tls_client_args
from netpeers.process import LOCALHOST

SENDER = "STORESCU"
OTHER_HOST = "127.0.0.2"  # a second loopback address: lo answers the whole 127.0.0.0/8
CT = get_testdata_file("CT_small.dcm", download=False)
CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"
PATIENT = ("CompressedSamples", "CT1", "1CT1")  # CT_small's patient name and ID: never in the audit trail


@pytest.fixture
def store(tmp_path):
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    with Store.open(tmp_path / "store.sqlite", Identity(User("rob", Role.RADIOLOGIST), "ws-net"), backend) as opened:
        yield opened


@pytest.fixture
def receiver(pacs_factory, store):
    """`receiver(local=..., **nodes)` -> a started, audited PacsService; default node SENDER at 127.0.0.1.
    Its events are collected in `service.events`."""
    def build(local: dict | None = None, **nodes):
        if not nodes:
            nodes = {"SENDER": {"ae_title": SENDER, "host": LOCALHOST, "port": 104}}
        service = pacs_factory(local=local, **{k: v for k, v in nodes.items() if v is not None})
        service.audit = AuditTrail(store)
        service.events = []
        service.received.connect(service.events.append)
        service.start_receiver()
        return service
    return build


def audit(store, kind: str, count: int = 1) -> list:
    """The entries of `kind`, once there are `count` of them (the receiver audits after it answers)."""
    def entries():
        return [e for e in store.audit_entries() if e.kind == kind]
    wait_until(lambda: len(entries()) >= count)
    return entries()


def assert_no_patient_data(store) -> None:
    text = json.dumps([e.to_dict() for e in store.audit_entries()])
    assert not any(value in text for value in PATIENT)


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def storescu(port: int, path, calling: str = SENDER, *extra: str, required_only: bool = True):
    """storescu proposing only the SOP class it needs (-R) unless `required_only` is False."""
    return run_tool("storescu", [*NET_TIMEOUTS, *(["-R"] if required_only else []), *extra, "-aet", calling, "-aec", "WSTEST", LOCALHOST, port, path])


def cached(service) -> list[Path]:
    return sorted((service.cache.root / "studies").glob("*/*.dcm"))


def leftovers(service) -> list[Path]:
    return [p for p in (service.cache.root / "incoming").iterdir() if p.stat().st_size]


# ----- a raw peer

def connect(port: int, source: str = LOCALHOST) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect((LOCALHOST, port))
    return sock


def associate(port: int, calling: str = SENDER, source: str = LOCALHOST, syntax: str = ExplicitVRLittleEndian):
    """(socket, accepted context ID) or (socket, the A-ASSOCIATE-RJ primitive)."""
    context = build_context(CT_CLASS, [syntax])
    context.context_id = 1
    sock = connect(port, source)
    sock.sendall(ul.a_associate_rq(calling, "WSTEST", [context], []))
    pdu_type, encoded = ul.PduSocket(sock).read_pdu()
    primitive = ul.decode_association_pdu(pdu_type, encoded)
    if pdu_type == ul.A_ASSOCIATE_RJ_PDU:
        sock.close()
        return None, primitive
    assert pdu_type == ul.A_ASSOCIATE_AC_PDU
    (accepted,) = ul.accepted_syntaxes(primitive.presentation_context_definition_results_list)
    return sock, accepted


def ct_data_set() -> bytes:
    encoded = Path(CT).read_bytes()
    return encoded[meta_transfer_syntax(encoded)[1]:]


def c_store(sock, context_id: int, data_set: bytes, sop_instance: str, sop_class: str = CT_CLASS,
            message_id: int = 1) -> tuple[int, str]:
    """Send one C-STORE-RQ (the data set in 16 kB PDVs); (status, error comment) of the response."""
    command = encode_command_set([
        (AFFECTED_SOP_CLASS_UID, ui(sop_class)), (COMMAND_FIELD, us(C_STORE_RQ)), (MESSAGE_ID, us(message_id)),
        (PRIORITY, us(0)), (COMMAND_DATA_SET_TYPE, us(0)), (AFFECTED_SOP_INSTANCE_UID, ui(sop_instance)),
    ])
    pdus = [ul.p_data_tf(context_id, ul.COMMAND | ul.LAST_FRAGMENT, command)]
    step = 16384
    for start in range(0, len(data_set), step):
        last = ul.LAST_FRAGMENT if start + step >= len(data_set) else 0
        pdus.append(ul.p_data_tf(context_id, last, data_set[start:start + step]))
    sock.sendall(b"".join(pdus))
    channel = MessageChannel(ul.PduSocket(sock), {context_id: ExplicitVRLittleEndian}, None, 0)
    response = channel.receive().command
    return response.us(STATUS), response.text(ERROR_COMMENT)


def release(sock) -> None:
    sock.sendall(ul.A_RELEASE_RQ)
    assert ul.PduSocket(sock).read_pdu_header()[0] == ul.A_RELEASE_RP_PDU
    sock.close()


# ----- who may store

def test_no_node_configured_refuses_every_association(receiver, store, ws_ae):
    service = receiver(SENDER=None, NOBODY=None)
    done = storescu(ws_ae.port, CT)
    assert done.returncode != 0 and "Calling AE Title Not Recognized" in done.stdout + done.stderr
    assert cached(service) == []
    (entry,) = audit(store, "receiver.refused")
    assert "no PACS node is configured" in entry.outcome_text and entry.details["calling_ae_title"] == SENDER
    assert entry.event.event_id.meaning == "Security Alert"


def test_unknown_and_spoofed_calling_ae_titles_are_refused(receiver, store, ws_ae):
    service = receiver(SENDER={"ae_title": SENDER, "host": LOCALHOST, "port": 104},
                       SECOND={"ae_title": "SECOND", "host": OTHER_HOST, "port": 104})
    sock, rejection = associate(ws_ae.port, calling="STRANGER")
    assert sock is None and (rejection.result, rejection.result_source, rejection.diagnostic) == (1, 1, 3)
    sock, rejection = associate(ws_ae.port, calling=SENDER, source=OTHER_HOST)  # SENDER's AE title, another host
    assert sock is None and (rejection.result, rejection.result_source, rejection.diagnostic) == (1, 1, 3)
    sock, _ = associate(ws_ae.port, calling="SECOND", source=OTHER_HOST)  # a node at 127.0.0.2 is welcome from there
    assert sock is not None
    release(sock)
    unknown, spoofed = audit(store, "receiver.refused", 2)
    assert unknown.details["calling_ae_title"] == "STRANGER" and "not that of a configured node" in unknown.outcome_text
    assert spoofed.details["peer_host"] == OTHER_HOST and "from another address" in spoofed.outcome_text
    assert wait_until(lambda: len(audit(store, "receiver.association")) == 1)
    (accepted,) = audit(store, "receiver.association")
    assert accepted.details["node"] == "SECOND" and accepted.details["peer_host"] == OTHER_HOST
    assert accepted.details["ended"] == "released" and accepted.event.event_id.meaning == "DICOM Instances Transferred"
    assert cached(service) == []


def test_tls_receiver_takes_trusted_client_certificates_only(receiver, store, ws_ae, tls_certs):
    service = receiver(local={"tls": {"cert_file": str(tls_certs.client_cert), "key_file": str(tls_certs.client_key),
                                      "ca_file": str(tls_certs.ca_cert), "require_client_cert": True}})
    trusted = storescu(ws_ae.port, CT, SENDER, *tls_client_args(tls_certs, cert=tls_certs.server_cert,
                                                                key=tls_certs.server_key))
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert len(cached(service)) == 1
    untrusted = storescu(ws_ae.port, CT, SENDER, *tls_client_args(tls_certs, cert=tls_certs.wrong_client_cert,
                                                                  key=tls_certs.wrong_client_key))
    assert untrusted.returncode != 0
    plain = storescu(ws_ae.port, CT)  # no TLS at all
    assert plain.returncode != 0
    assert wait_until(lambda: len(audit(store, "receiver.refused")) >= 1)
    refused = audit(store, "receiver.refused")
    assert "TLS handshake failed" in refused[0].outcome_text and refused[0].details["tls"] is True
    (accepted,) = audit(store, "receiver.association")
    assert accepted.details["tls"] is True and accepted.details["instances_stored"] == 1
    assert_no_patient_data(store)


# ----- what is kept

def test_broken_and_mismatching_data_sets_are_refused_and_a_resend_is_stored(receiver, store, ws_ae):
    service = receiver()
    original = pydicom.dcmread(CT)
    uid = original.SOPInstanceUID
    data_set = ct_data_set()
    sock, context_id = associate(ws_ae.port)
    status, comment = c_store(sock, context_id, data_set[:-100], uid)
    assert status == 0xC000 and "does not parse" in comment  # storescp refuses it too
    assert c_store(sock, context_id, b"\x08\x00\x16\x00UI" + bytes(range(200)), uid)[0] == 0xC000
    assert cached(service) == [] and leftovers(service) == []
    status, comment = c_store(sock, context_id, data_set, "1.2.3.4.5")  # the command names another instance
    assert status == 0xA900 and "SOP Instance UID" in comment
    status, _ = c_store(sock, context_id, data_set, uid, sop_class="1.2.840.10008.5.1.4.1.1.4")  # MR in the command
    assert status == 0xA900
    assert cached(service) == []
    assert c_store(sock, context_id, data_set, uid) == (0x0000, "")  # the correct resend is stored
    (path,) = cached(service)
    assert path.read_bytes().endswith(data_set) and pydicom.dcmread(path).PixelData == original.PixelData

    changed = bytearray(data_set)
    changed[-1] ^= 0xFF  # the last byte differs: same SOP Instance UID, other content
    status, comment = c_store(sock, context_id, bytes(changed), uid)
    assert status == 0x0111 and "other content" in comment
    assert path.read_bytes().endswith(data_set)  # the held copy stays
    (conflict,) = service.conflicts()
    assert conflict.sop_instance_uid == uid and conflict.held_path == path and conflict.origin == f"{SENDER} from {LOCALHOST}"
    assert conflict.conflict_path.read_bytes().endswith(bytes(changed))
    assert c_store(sock, context_id, data_set, uid) == (0x0000, "")  # the same bytes again: nothing to say
    release(sock)

    assert wait_until(lambda: any(isinstance(e, AssociationEnded) for e in service.events))
    kinds = [type(e) for e in service.events]
    assert kinds == [AssociationAccepted, InstanceRefused, InstanceRefused, InstanceRefused, InstanceRefused,
                     InstanceReceived, InstanceConflict, InstanceReceived, AssociationEnded]
    received = service.events[5]
    assert (received.calling_ae_title, received.node, received.path, received.new) == (SENDER, "SENDER", path, True)
    assert received.study_instance_uid == original.StudyInstanceUID and received.sop_class_uid == CT_CLASS
    ended = service.events[-1]
    assert (ended.stored, ended.refused, ended.conflicts, ended.how) == (2, 4, 1, "released")
    (conflict_entry,) = audit(store, "receiver.conflict")
    assert conflict_entry.study_instance_uid == original.StudyInstanceUID and conflict_entry.outcome == 4
    (entry,) = audit(store, "receiver.association")
    assert entry.details["refused"] == 4 and entry.details["conflicts"] == 1 and entry.details["instances_stored"] == 2
    assert_no_patient_data(store)


def test_deflated_data_set_inflates_within_its_bound(receiver, ws_ae, monkeypatch):
    monkeypatch.setattr(cache_module, "MAX_INFLATED", 1 << 20)
    service = receiver()
    ds = pydicom.dcmread(CT)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    plain = ct_data_set()
    small = deflate.compress(plain) + deflate.flush()
    sock, context_id = associate(ws_ae.port, syntax=DeflatedExplicitVRLittleEndian)
    assert c_store(sock, context_id, small[:-20], ds.SOPInstanceUID)[0] == 0xC000  # the deflate stream is cut short
    bomb = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    pixels = plain.index(b"\xe0\x7f\x10\x00OW")
    huge = plain[:pixels] + b"\xe0\x7f\x10\x00OW\x00\x00" + (8 << 20).to_bytes(4, "little")  # 8 MB of zeros follow
    bombed = bomb.compress(huge) + b"".join(bomb.compress(bytes(1 << 20)) for _ in range(8)) + bomb.flush()
    assert len(bombed) < 100_000
    status, comment = c_store(sock, context_id, bombed, ds.SOPInstanceUID)
    assert status == 0xA700 and "inflates to more than 1 MB" in comment
    assert cached(service) == [] and leftovers(service) == []
    assert c_store(sock, context_id, small, ds.SOPInstanceUID) == (0, "")
    (path,) = cached(service)
    assert path.read_bytes().endswith(small)  # kept as it came, like storescp
    assert pydicom.dcmread(path).PixelData == ds.PixelData
    release(sock)


def test_jpeg_lossless_process_14_is_accepted(receiver, ws_ae, tmp_path):
    service = receiver()
    source = get_testdata_file("SC_rgb_jpeg_gdcm.dcm", download=False)  # JPEG lossless SV1: also a valid process 14 stream
    ds = pydicom.dcmread(source)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.57"
    ds.save_as(tmp_path / "p14.dcm", enforce_file_format=True)
    profile = tmp_path / "p14.cfg"  # storescu has no option for process 14: a profile proposes it alone
    profile.write_text("[[TransferSyntaxes]]\n[P14]\nTransferSyntax1 = 1.2.840.10008.1.2.4.57\n"
                       f"[[PresentationContexts]]\n[P14Contexts]\nPresentationContext1 = {ds.SOPClassUID}\\P14\n"
                       "[[Profiles]]\n[P14Profile]\nPresentationContexts = P14Contexts\n")
    done = storescu(ws_ae.port, tmp_path / "p14.dcm", SENDER, "-xf", profile, "P14Profile", required_only=False)
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = cached(service)
    stored = pydicom.dcmread(path)
    assert stored.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.57" and stored.PixelData == ds.PixelData


# ----- idle, slow and oversized peers

def test_idle_connections_neither_block_senders_nor_cost_threads(receiver, store, ws_ae):
    service = receiver(local={"artim_timeout_s": 2})
    threads = threading.active_count()
    idle = [connect(ws_ae.port) for _ in range(40)]
    try:
        done = storescu(ws_ae.port, CT)  # 40 idle connections: a real sender still gets through
        assert done.returncode == 0, done.stdout + done.stderr
        assert len(cached(service)) == 1
        assert threading.active_count() <= threads + 1  # at most the association being released
        # ARTIM: each idle connection is closed by the receiver
        for sock in idle:
            assert sock.recv(10) == b""
    finally:
        for sock in idle:
            sock.close()
    drops = [e for e in audit(store, "receiver.refused") if "ARTIM" in e.outcome_text or "too many" in e.outcome_text]
    assert 1 <= len(drops) <= 2  # audited, but once a minute per address, not once per connection


def test_associations_are_bounded_per_address(receiver, ws_ae):
    receiver(local={"max_associations_per_host": 2}, SENDER={"ae_title": SENDER, "host": LOCALHOST, "port": 104},
             SECOND={"ae_title": "SECOND", "host": OTHER_HOST, "port": 104})
    first, _ = associate(ws_ae.port)
    second, _ = associate(ws_ae.port)
    third, rejection = associate(ws_ae.port)
    assert third is None and (rejection.result, rejection.result_source, rejection.diagnostic) == (2, 3, 2)
    other, _ = associate(ws_ae.port, calling="SECOND", source=OTHER_HOST)  # another address is not held up
    assert other is not None
    for sock in (first, second, other):
        release(sock)


def test_oversized_pdus_are_refused_before_their_body_is_read(receiver, ws_ae):
    service = receiver()
    sock = connect(ws_ae.port)  # an A-ASSOCIATE-RQ announcing 2 GB
    sock.sendall(ul.PDU_HEADER.pack(ul.A_ASSOCIATE_RQ_PDU, 0x7FFFFFFF) + bytes(1000))
    assert ul.PduSocket(sock).read_pdu_header()[0] == ul.A_ABORT_PDU
    sock.close()
    sock, _ = associate(ws_ae.port)  # an A-RELEASE-RQ announcing 2 GB
    sock.sendall(ul.PDU_HEADER.pack(ul.A_RELEASE_RQ_PDU, 0x7FFFFFFF) + bytes(1 << 16))
    assert ul.PduSocket(sock).read_pdu_header()[0] == ul.A_ABORT_PDU
    sock.close()
    assert wait_until(lambda: any(isinstance(e, AssociationEnded) for e in service.events))
    (ended,) = [e for e in service.events if isinstance(e, AssociationEnded)]
    assert "A-RELEASE-RQ of 2147483647 bytes" in ended.how


def test_a_trickling_peer_is_cut_off_at_the_association_deadline(receiver, ws_ae):
    service = receiver(local={"association_timeout_s": 1.5, "idle_timeout_s": 30})
    sock, context_id = associate(ws_ae.port)
    command = encode_command_set([
        (AFFECTED_SOP_CLASS_UID, ui(CT_CLASS)), (COMMAND_FIELD, us(C_STORE_RQ)), (MESSAGE_ID, us(1)),
        (PRIORITY, us(0)), (COMMAND_DATA_SET_TYPE, us(0)), (AFFECTED_SOP_INSTANCE_UID, ui("1.2.3")),
    ])
    sock.sendall(ul.p_data_tf(context_id, ul.COMMAND | ul.LAST_FRAGMENT, command)
                 + ul.PDU_HEADER.pack(ul.P_DATA_TF_PDU, 1006) + ul.PDV_HEADER.pack(1002, context_id, 0))
    started = time.monotonic()
    try:
        while service._receiver.association_count() and time.monotonic() - started < 20:
            sock.sendall(b"\x00")  # one byte at a time, well inside the silence timeout
            time.sleep(0.2)
    except OSError:
        pass  # the receiver closed the connection
    assert wait_until(lambda: any(isinstance(e, AssociationEnded) for e in service.events))
    (ended,) = [e for e in service.events if isinstance(e, AssociationEnded)]
    assert ended.how == "deadline of 1.5 s passed"
    assert leftovers(service) == []
    sock.close()


def test_conflicts_show_in_the_problems_panel(receiver, ws_ae, qtbot):
    from workstation.ui.problems import ProblemsPanel

    service = receiver()
    uid = pydicom.dcmread(CT).SOPInstanceUID
    data_set = ct_data_set()
    sock, context_id = associate(ws_ae.port)
    assert c_store(sock, context_id, data_set, uid)[0] == 0x0000
    first = bytearray(data_set)
    first[-1] ^= 0x01
    assert c_store(sock, context_id, bytes(first), uid)[0] == 0x0111  # kept before the panel exists
    panel = ProblemsPanel()
    qtbot.addWidget(panel)
    panel.resize(1100, 160)
    panel.watch_pacs(service)
    assert panel.count() == 1 and uid in panel.topLevelItem(0).text(0)
    assert f"held with other content; {SENDER} from {LOCALHOST} sent another copy" in panel.topLevelItem(0).text(1)
    second = bytearray(data_set)
    second[-1] ^= 0x02
    with qtbot.waitSignal(panel.conflicts_changed, timeout=5000):  # the window retitles its Problems dock on it
        assert c_store(sock, context_id, bytes(second), uid)[0] == 0x0111  # arrives while the panel shows
    assert panel.count() == 2
    release(sock)
    panel.show()
    shots = Path(__file__).resolve().parents[2] / "resources" / "screenshots"
    panel.grab().save(str(shots / "problems_receiver_conflict.png"))


def test_what_is_kept_is_byte_identical_to_storescp(receiver, ws_ae, storescp_factory, tmp_path):
    """The checks refuse nothing storescp keeps: the same files pushed by storescu to both, data sets compared."""
    names = ["CT_small.dcm", "MR_small_bigendian.dcm", "emri_small.dcm", "image_dfl.dcm",
             "rtplan.dcm", "rtstruct.dcm", "test-SR.dcm", "waveform_ecg.dcm"]  # nested sequences among them
    files = [Path(get_testdata_file(name, download=False)) for name in names]
    service = receiver()
    dcmtk = storescp_factory()
    for port, called in ((ws_ae.port, "WSTEST"), (dcmtk.port, dcmtk.aet)):  # one syntax: both receivers get the same bytes
        done = run_tool("storescu", [*NET_TIMEOUTS, "-R", "-xi", "-aet", SENDER, "-aec", called, LOCALHOST, port, *files])
        assert done.returncode == 0, done.stdout + done.stderr

    def data_sets(paths) -> dict[str, bytes]:
        found = {}
        for path in paths:
            encoded = path.read_bytes()
            found[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = encoded[meta_transfer_syntax(encoded)[1]:]
        return found

    ours, theirs = data_sets(cached(service)), data_sets(dcmtk.received_files())
    assert len(theirs) == len(files) and ours == theirs


def test_a_large_deflated_data_set_inflates_in_flat_memory(receiver, ws_ae):
    import tracemalloc

    service = receiver()
    ds = pydicom.dcmread(CT)
    plain = ct_data_set()
    pixels = plain.index(b"\xe0\x7f\x10\x00OW")
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    size = 64 << 20  # 64 MB of pixels inflate from ~64 kB
    deflated = (deflate.compress(plain[:pixels] + b"\xe0\x7f\x10\x00OW\x00\x00" + size.to_bytes(4, "little"))
                + b"".join(deflate.compress(bytes(1 << 20)) for _ in range(64)) + deflate.flush())
    sock, context_id = associate(ws_ae.port, syntax=DeflatedExplicitVRLittleEndian)
    tracemalloc.start()
    try:
        assert c_store(sock, context_id, deflated, ds.SOPInstanceUID) == (0, "")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    release(sock)
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MB at the peak for a 64 MB data set"
    (path,) = cached(service)
    assert path.read_bytes().endswith(deflated) and leftovers(service) == []


def test_a_malformed_associate_request_is_aborted_and_audited(receiver, store, ws_ae):
    receiver()
    sock = connect(ws_ae.port)
    body = b"\x00\x01\x00\x00" + b"WSTEST".ljust(16) + SENDER.encode().ljust(16) + bytes(32) + b"\x10\x00\xff\xff garbage"
    sock.sendall(ul.PDU_HEADER.pack(ul.A_ASSOCIATE_RQ_PDU, len(body)) + body)
    assert ul.PduSocket(sock).read_pdu_header()[0] == ul.A_ABORT_PDU
    sock.close()
    (entry,) = audit(store, "receiver.refused")
    assert entry.outcome_text.startswith("protocol error: malformed A-ASSOCIATE-RQ") and entry.details["calling_ae_title"] == SENDER
    assert audit(store, "receiver.association", 0) == []


def test_conflicting_copies_kept_are_bounded(receiver, store, ws_ae, monkeypatch):
    monkeypatch.setattr(cache_module, "MAX_CONFLICTS_PER_INSTANCE", 1)
    service = receiver()
    uid = pydicom.dcmread(CT).SOPInstanceUID
    data_set = ct_data_set()
    sock, context_id = associate(ws_ae.port)
    assert c_store(sock, context_id, data_set, uid)[0] == 0x0000
    for flip in (1, 2):
        changed = bytearray(data_set)
        changed[-1] ^= flip
        assert c_store(sock, context_id, bytes(changed), uid)[0] == 0x0111
    release(sock)
    assert len(service.conflicts()) == 1  # the second conflicting copy was not kept
    assert wait_until(lambda: isinstance(service.events[-1], AssociationEnded))
    assert [type(e) for e in service.events[1:-1]] == [InstanceReceived, InstanceConflict, InstanceRefused]
    ended = service.events[-1]
    assert (ended.stored, ended.conflicts, ended.refused) == (1, 1, 1)
    assert "not kept" in service.events[-2].reason
    assert len(audit(store, "receiver.conflict")) == 1
