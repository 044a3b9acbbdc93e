"""What survives: a SIGKILLed server, concurrent workstations, racing pushes; and HTTPS with a verified CA."""

from __future__ import annotations

import ssl
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from netpeers.certs import make_tls_certs
from server_helpers import fill, open_store, push, stored_ids

from workstation.core.sync import API_PREFIX


def test_what_was_acknowledged_survives_sigkill_and_a_resend_is_all_duplicates(central_factory, backend_url,
                                                                               make_store, workstation_id):
    server = central_factory(backend_url)
    items = fill(make_store(workstation_id), 120)
    token = server.enrol(workstation_id)
    acknowledged: list[str] = []
    stop = threading.Event()

    def pusher():  # pushes batches of 5 until the server dies under it
        with server.client(token, timeout=5) as http:
            for start in range(0, len(items), 5):
                if stop.is_set():
                    return
                try:
                    response = push(http, workstation_id, items[start:start + 5])
                except httpx.HTTPError:
                    return
                if response.status_code != 200:
                    return
                acknowledged.extend(response.json()["acknowledged"])

    thread = threading.Thread(target=pusher)
    thread.start()
    while len(acknowledged) < 30 and thread.is_alive():
        threading.Event().wait(0.005)
    server.kill()  # SIGKILL in the middle of the stream
    stop.set()
    thread.join(30)
    assert 30 <= len(acknowledged) < len(items)

    server.restart()
    held = stored_ids(server, workstation_id)
    assert held[:len(acknowledged)] == acknowledged  # every acknowledged entry is there, in order
    assert held == [i.entry.entry_id for i in items[:len(held)]]  # and nothing else (a whole batch, or none)
    with server.client(token) as http:
        resend = push(http, workstation_id, items[:len(acknowledged)]).json()
        assert (resend["accepted"], resend["duplicates"]) == (0, len(acknowledged))
        rest = push(http, workstation_id, items).json()
        assert rest["accepted"] + rest["duplicates"] == len(items) and rest["head"]["seq"] == len(items)
    assert stored_ids(server, workstation_id) == [i.entry.entry_id for i in items]
    assert server.status(workstation_id)["incidents"] == []


def test_eight_workstations_pushing_at_once_each_get_their_whole_chain(central_factory, backend_url, tmp_path):
    server = central_factory(backend_url)
    ids = [f"ws-concurrent-{n}" for n in range(8)]
    stores = [open_store(tmp_path / ws, ws) for ws in ids]
    try:
        chains = {ws: fill(store, 40) for ws, store in zip(ids, stores)}
    finally:
        for store in stores:
            store.close()
    tokens = {ws: server.enrol(ws) for ws in ids}
    start = threading.Barrier(len(ids))

    def run(ws: str) -> list[int]:
        codes = []
        with server.client(tokens[ws]) as http:
            start.wait()
            for first in range(0, 40, 8):
                codes.append(push(http, ws, chains[ws][first:first + 8]).status_code)
        return codes

    with ThreadPoolExecutor(len(ids)) as pool:
        results = list(pool.map(run, ids))
    assert results == [[200] * 5] * len(ids)
    for ws in ids:
        assert stored_ids(server, ws) == [i.entry.entry_id for i in chains[ws]]
        status = server.status(ws)
        assert status["entries"] == 40 and status["head"]["hash"] == chains[ws][-1].entry.hash


def test_two_pushes_of_one_workstation_never_both_extend_the_chain(server, tmp_path, workstation_id):
    """Two stores claiming the same workstation id race with different chains: exactly one chain is kept."""
    forks = []
    for name in ("left", "right"):
        store = open_store(tmp_path / name, workstation_id)
        forks.append(fill(store, 30))
        store.close()
    token = server.enrol(workstation_id)
    clients = [server.client(token), server.client(token)]
    try:
        for rounds in range(3):
            barrier = threading.Barrier(2)

            def race(side: int, first: int = rounds * 10) -> httpx.Response:
                barrier.wait()
                return push(clients[side], workstation_id, forks[side][first:first + 10])

            with ThreadPoolExecutor(2) as pool:
                left, right = pool.map(race, (0, 1))
            if rounds == 0:
                codes = sorted((left.status_code, right.status_code))
                assert codes == [200, 409], (left.text, right.text)
                winner = 0 if left.status_code == 200 else 1
            else:  # the loser's fork can never join; the winner's chain goes on
                assert (left, right)[winner].status_code == 200 and (left, right)[1 - winner].status_code == 409
    finally:
        for client in clients:
            client.close()
    assert stored_ids(server, workstation_id) == [i.entry.entry_id for i in forks[winner]]
    assert len(server.status(workstation_id)["incidents"]) == 3


def test_the_same_batch_raced_twice_is_stored_once(server, make_store, workstation_id):
    items = fill(make_store(workstation_id), 25)
    token = server.enrol(workstation_id)
    barrier = threading.Barrier(4)

    def send(_):
        with server.client(token) as http:
            barrier.wait()
            return push(http, workstation_id, items).json()

    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(send, range(4)))
    assert sorted(r["accepted"] for r in replies) == [0, 0, 0, 25]
    assert all(r["accepted"] + r["duplicates"] == 25 for r in replies)
    assert stored_ids(server, workstation_id) == [i.entry.entry_id for i in items]


def test_https_with_a_verified_ca(central_factory, tmp_path, make_store, workstation_id):
    certs = make_tls_certs(tmp_path / "tls")
    server = central_factory(certs=certs)
    assert server.url.startswith("https://")
    items = fill(make_store(workstation_id), 3)
    token = server.enrol(workstation_id)  # over https, verifying the test CA
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    with httpx.Client(base_url=server.url, verify=context, headers={"Authorization": f"Bearer {token}"}) as http:
        assert push(http, workstation_id, items).json()["accepted"] == 3
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{server.url}{API_PREFIX}/health", verify=ssl.create_default_context(cafile=str(certs.wrong_ca_cert)))
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.url.replace('https', 'http')}{API_PREFIX}/health", timeout=5)
    assert stored_ids(server, workstation_id) == [i.entry.entry_id for i in items]
