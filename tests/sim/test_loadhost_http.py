"""The load host over real HTTP on loopback: ``ykt loadhost serve`` as a process (stopped and started again on its
ledger), and the server on a thread for the refusals, the HTTP details and terminals loading concurrently."""

from __future__ import annotations

import dataclasses
import http.client
import json
import signal
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from sim.loadhost import LedgerState, LoadHostServer, LoadHostService, LoadLedger, RegisteredTerminal, Terminals
from sim.reader import SimReader
from terminal.loads import HttpLoadHost, LoadJournal, LoadRefused, LoadState, LoadStatus, LoadTerminal
from terminal.loads.messages import request_to_json

from .load_support import KEYSET, TOPUP, WHEN, card_request, credit, demo_card, demo_service, load_terminal

YKT = [sys.executable, "-c", "import sys; from sim.cli import main; sys.argv[0] = 'ykt'; main()"]
TIMEOUT = 60


def post(url: str, path: str, body: Any, token: str | None = TOPUP.token,
         method: str = "POST") -> tuple[int, http.client.HTTPMessage, Any]:
    """One raw HTTP request; ``body`` bytes go as they are, anything else as JSON."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(str(parsed.hostname), parsed.port, timeout=TIMEOUT)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request(method, path, raw, headers)
        response = connection.getresponse()
        text = response.read()
        return response.status, response.headers, json.loads(text) if text else None
    finally:
        connection.close()


@pytest.fixture
def served(tmp_path: Path):
    service = demo_service(tmp_path / "ledger.db")
    server = LoadHostServer(service, ("127.0.0.1", 0)).start()
    yield server
    server.stop()
    service.close()


def test_refusals_over_http(served: LoadHostServer) -> None:
    url = served.url
    card = demo_card(balance=5000)
    request = card_request(card, 2000)
    body = request_to_json(request)
    # a wrong token, no token, and a token of another terminal: 401, and nothing is recorded
    for token in ("not-a-token-of-any-terminal", None, "demo-phone-app-0002-test-only"):
        status, headers, answer = post(url, "/v1/loads", body, token)
        assert status == 401 and answer["error"] == "unauthorized", answer
        assert headers["WWW-Authenticate"].startswith("Bearer")
    # a forged MAC1
    status, _, answer = post(url, "/v1/loads", {**body, "request_id": "forged", "mac1": "00000000"})
    assert (status, answer) == (422, {"error": "bad_mac1",
                                      "message": "MAC1 does not verify under the card's load key"})
    # the genuine request, then its retry (the same answer), then its counter replayed under another id
    status, _, first = post(url, "/v1/loads", body)
    assert status == 200 and set(first) == {"load_id", "mac2"}
    status, _, retried = post(url, "/v1/loads", body)
    assert (status, retried) == (200, first)
    status, _, answer = post(url, "/v1/loads", {**body, "request_id": "again"})
    assert (status, answer["error"]) == (409, "replay")
    # a wrong TAC: 409, and the load is flagged
    tac = credit(card, bytes.fromhex(first["mac2"]))
    wrong = bytes(b ^ 0x55 for b in tac).hex()
    status, _, answer = post(url, f"/v1/loads/{first['load_id']}/confirm", {"tac": wrong})
    assert (status, answer["error"]) == (409, "bad_tac")
    status, _, answer = post(url, f"/v1/loads/{first['load_id']}/confirm", {"tac": tac.hex()})
    assert (status, answer["error"]) == (409, "not_confirmable")
    assert [load.state for load in served.service.ledger.loads()] == [LedgerState.FLAGGED]


def test_http_details(served: LoadHostServer) -> None:
    url = served.url
    body = request_to_json(card_request(demo_card(), 2000))
    cases: list[tuple[Any, int, str, str]] = [
        (b"{not json", 400, "bad_request", "not JSON"),
        (b'{"request_id": "a", "request_id": "b"}', 400, "bad_request", "appears twice"),
        ({**body, "colour": "red"}, 400, "bad_request", "colour: unknown field"),
        ({**body, "serial": "0310"}, 400, "bad_request", "serial: 10 bytes (20 hex digits), got 2"),
        ({**body, "amount": 0}, 400, "bad_request", "amount: an integer 1..2147483647, got 0"),
        ({**body, "datetime": "20261399000000"}, 400, "bad_request", "datetime: "),
        ({**body, "request_id": "a b"}, 400, "bad_request", "request_id: 1 to 64 letters"),
        (b"\xff\xfe", 400, "bad_request", "not UTF-8"),
        (b"x" * 20000, 413, "bad_request", "at most 16384"),
    ]
    for raw, status, code, message in cases:
        got, _, answer = post(url, "/v1/loads", raw)
        assert (got, answer["error"]) == (status, code) and message in answer["message"], (raw, answer)
    assert post(url, "/v1/nothing", body)[0] == 404
    assert post(url, "/v1/loads/abc/confirm", body)[0] == 404
    status, headers, answer = post(url, "/v1/loads", b"", method="GET")
    assert (status, answer["error"], headers["Allow"]) == (405, "method_not_allowed", "POST")
    assert post(url, "/v1/loads/1/confirm", {"tac": "00"})[2]["message"] == "tac: 4 bytes (8 hex digits), got 1"
    assert served.service.ledger.loads() == []


def test_the_http_client_maps_answers_and_failures(served: LoadHostServer, tmp_path: Path) -> None:
    card = demo_card()
    request = card_request(card, 2000)
    with pytest.raises(LoadRefused) as caught:
        HttpLoadHost(served.url, "not-a-token-of-any-terminal").authorize(request)
    assert (caught.value.code, caught.value.status) == ("unauthorized", 401)
    host = HttpLoadHost(served.url + "/", TOPUP.token)
    answer = host.authorize(request)
    assert host.confirm(answer.load_id, credit(card, answer.mac2)).state == "confirmed"
    from terminal.errors import ConfigError
    from terminal.loads import HostUnreachable

    for bad in ("ftp://x", "http://", "http://host:99999"):
        with pytest.raises(ConfigError):
            HttpLoadHost(bad, TOPUP.token)
    with pytest.raises(ConfigError):
        HttpLoadHost(served.url, "two words")
    closed = LoadHostServer(served.service, ("127.0.0.1", 0))
    port = closed.server_address[1]
    closed.server_close()
    with pytest.raises(HostUnreachable, match=rf"load host http://127.0.0.1:{port} unreachable: connection refused"):
        HttpLoadHost(f"http://127.0.0.1:{port}", TOPUP.token).authorize(request)


def test_concurrent_terminals_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    """Eight terminals load twelve cards each at once over HTTP, while six threads send one request together: every
    load is in the ledger once, confirmed, and the cards gained exactly what it holds."""
    terminals = tuple(RegisteredTerminal(bytes.fromhex(f"2000415911{n:02d}"), f"concurrent-terminal-token-{n:02d}")
                      for n in range(8))
    service = LoadHostService(KEYSET, LoadLedger(tmp_path / "ledger.db"), Terminals(terminals))
    server = LoadHostServer(service, ("127.0.0.1", 0)).start()
    cards = {n: [demo_card(f"031036400000{n:02d}{k:06d}", balance=1000) for k in range(12)] for n in range(8)}
    failures: list[BaseException] = []

    def terminal_thread(n: int) -> None:
        try:
            reader = SimReader(timing=None)
            terminal = LoadTerminal(reader, HttpLoadHost(server.url, terminals[n].token),
                                    LoadJournal(tmp_path / f"loads-{n}.db"), clock=_clock(),
                                    terminal_id=terminals[n].number)
            for k, card in enumerate(cards[n]):
                reader.put(card)
                outcome = terminal.load(100 * (k + 1))
                reader.take()
                assert outcome is not None and outcome.status is LoadStatus.LOADED and outcome.confirmed, outcome
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    shared = demo_card("03103640000099000001")
    body = request_to_json(dataclasses.replace(card_request(shared, 700, terminal=terminals[0].number),
                                               request_id="the-same-request"))
    same: list[tuple[int, Any]] = []

    def same_request() -> None:
        status, _, answer = post(server.url, "/v1/loads", body, terminals[0].token)
        same.append((status, answer))

    threads = [threading.Thread(target=terminal_thread, args=(n,)) for n in range(8)]
    threads += [threading.Thread(target=same_request) for _ in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
        assert not any(thread.is_alive() for thread in threads)
    finally:
        server.stop()
    assert failures == []
    assert len(same) == 6 and all(answer == same[0] for answer in same) and same[0][0] == 200
    loads = service.ledger.loads()
    service.close()
    assert len(loads) == 8 * 12 + 1
    assert len({(load.serial, load.online_counter) for load in loads}) == len(loads)
    assert len({load.load_id for load in loads}) == len(loads)
    gained = sum(card.balance - 1000 for group in cards.values() for card in group)
    assert gained == sum(load.amount for load in loads if load.state is LedgerState.CONFIRMED) == 8 * 7800
    for n in range(8):
        with LoadJournal(tmp_path / f"loads-{n}.db", readonly=True) as journal:
            assert [e.record.state for e in journal.entries()] == [LoadState.CONFIRMED] * 12


def test_two_hosts_on_one_ledger_serialize_through_sqlite(tmp_path: Path) -> None:
    """Two host processes' worth of connections on one ledger file: the same counter is authorized once."""
    card = demo_card()
    request = card_request(card, 2000)
    hosts = [demo_service(tmp_path / "ledger.db") for _ in range(2)]
    results: list[object] = []

    def ask(n: int) -> None:
        try:
            results.append(hosts[n].authorize(TOPUP.token, dataclasses.replace(request, request_id=f"r{n}")))
        except LoadRefused as exc:
            results.append(exc.code)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert sorted(type(r).__name__ if not isinstance(r, str) else r for r in results) == \
        ["LoadAuthorization", "replay"]
    for host in hosts:
        host.close()


def _clock():
    from terminal.clock import ManualClock

    return ManualClock(WHEN)


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str, list[str]]:
    """``ykt loadhost serve`` on a free port; returns once it says it listens (its last line of start-up)."""
    proc = subprocess.Popen([*YKT, "loadhost", "serve", "--listen", "127.0.0.1:0", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line.rstrip("\n"))
        if line.startswith("load host listening on "):
            return proc, line.split()[-1], lines
    proc.wait(TIMEOUT)
    pytest.fail(f"ykt loadhost serve did not start: {lines}", pytrace=False)


def _stop(proc: subprocess.Popen[str], lines: list[str]) -> list[str]:
    """SIGTERM; the whole log once the process has ended with status 0."""
    proc.send_signal(signal.SIGTERM)
    assert proc.stderr is not None
    rest = proc.stderr.read()  # through the same buffered reader that read the start-up lines
    assert proc.wait(TIMEOUT) == 0, (lines, rest)
    return lines + rest.splitlines()


def test_ykt_loadhost_serve_as_a_process_across_a_restart(tmp_path: Path) -> None:
    terminals = tmp_path / "terminals.toml"
    terminals.write_text('format = 1\n[limits]\nper_load = 30000\n[[terminals]]\nnumber = "200041590001"\n'
                         f'token = "{TOPUP.token}"\n')
    ledger = tmp_path / "ledger.db"
    card = demo_card(balance=5000)
    proc, url, lines = _start(tmp_path, "--ledger", str(ledger), "--terminals", str(terminals))
    try:
        assert url.startswith("http://127.0.0.1:")
        terminal = load_terminal(SimReader(card, timing=None), HttpLoadHost(url, TOPUP.token), tmp_path / "loads.db")
        outcome = terminal.load(2500)
        assert outcome is not None and outcome.status is LoadStatus.LOADED and outcome.confirmed
        refused = terminal.load(30001)
        assert refused is not None and (refused.status, refused.reason) == (LoadStatus.REFUSED, "over_limit")
        replayed = card_request(card, 1000, request_id="replayed")
        assert post(url, "/v1/loads", request_to_json(replayed), "not-a-token-of-any-terminal")[0] == 401
        forged = {**request_to_json(replayed), "request_id": "forged", "mac1": "0BADF00D"}
        status, _, answer = post(url, "/v1/loads", forged)
        assert (status, answer["error"]) == (422, "bad_mac1")
    finally:
        log = _stop(proc, lines)
    assert "127.0.0.1 POST /v1/loads 200" in log and "127.0.0.1 POST /v1/loads 401" in log
    assert not any(TOPUP.token in line for line in log)
    assert log[-1] == "load host stopped"

    proc, url, lines = _start(tmp_path, "--ledger", str(ledger), "--terminals", str(terminals))
    try:
        answer = post(url, "/v1/loads", request_to_json(replayed))[2]
        tac = credit(card, bytes.fromhex(answer["mac2"]))
        status, _, again = post(url, "/v1/loads", {**request_to_json(replayed), "request_id": "replayed-again"})
        assert (status, again["error"]) == (409, "replay")
        assert post(url, f"/v1/loads/{answer['load_id']}/confirm", {"tac": tac.hex()})[2]["state"] == "confirmed"
        flagged = post(url, "/v1/loads", request_to_json(card_request(card, 500, request_id="to-flag")))[2]
        credit(card, bytes.fromhex(flagged["mac2"]))
        status, _, wrong = post(url, f"/v1/loads/{flagged['load_id']}/confirm", {"tac": "00000000"})
        assert (status, wrong["error"]) == (409, "bad_tac")
    finally:
        _stop(proc, lines)
    assert card.balance == 5000 + 2500 + 1000 + 500

    listed = subprocess.run([*YKT, "loadhost", "ledger", str(ledger), "--json"], capture_output=True, text=True,
                            timeout=TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["load_id"], r["state"], r["amount"], r["balance_before"], r["online_counter"]) for r in rows] == \
        [(1, "confirmed", 2500, 5000, 0), (2, "confirmed", 1000, 7500, 1), (3, "flagged", 500, 8500, 2)]
    assert rows[2]["tac"] == "00000000" and "does not verify" in rows[2]["note"]
    assert listed.stderr == "3 loads: 2 confirmed (35.00 CNY loaded), 0 authorized, 1 flagged, 0 void\n"
    text = subprocess.run([*YKT, "loadhost", "ledger", str(ledger)], capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, check=False)
    assert text.stdout.splitlines()[0].startswith("load 1      confirmed   card 3103640000000000077  counter 0")


def test_ykt_loadhost_serve_with_nothing_given_serves_the_demo(tmp_path: Path) -> None:
    proc, url, lines = _start(tmp_path)
    try:
        card = demo_card()
        answer = HttpLoadHost(url, TOPUP.token).authorize(card_request(card, 100))
        assert answer.load_id == 1
    finally:
        log = _stop(proc, lines)
    assert "  keys       demo key set (TEST ONLY: public demo keys)" in log
    assert any(line.startswith("  terminals  2 from sim/keys/demo-terminals.toml (TEST ONLY") for line in log)
