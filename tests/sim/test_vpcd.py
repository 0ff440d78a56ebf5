"""The vpcd card server against a stand-in for vpcd (a TCP listener speaking its wire format): framing, control
messages, ATRs, GET DATA for the UID, tears, reconnection and stopping; then ``ykt sim vpcd`` as a process.
The server behind the real pcscd is tested in tests/peers."""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sim.fixture import load_image, save_fixture
from sim.issuing import issue_card, load_demo_keyset
from sim.psam import DEFAULT_ATR, demo_psam
from sim.vpcd import HISTORY, VpcdError, VpcdServer, VpcdSlot, device_atr
from terminal.errors import CardRemoved
from terminal.link import Activation

SELECT_EP = bytes.fromhex("00A4040008A000000632010105")
GET_BALANCE = bytes.fromhex("805C000204")
TIMEOUT = 10.0


def card(balance: int = 5000):
    return issue_card(load_demo_keyset(), serial="03103640000000000123", balance=balance)


class FakeVpcd:
    """vpcd's side of one slot: listens, accepts the virtual card, sends framed messages and reads framed replies."""

    def __init__(self, listen: bool = True) -> None:
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None
        if listen:
            self.listen()

    def listen(self) -> None:
        self.server.listen(1)
        self.server.settimeout(TIMEOUT)

    def accept(self) -> None:
        self.conn, _ = self.server.accept()
        self.conn.settimeout(TIMEOUT)

    def send(self, message: bytes, *, split: bool = True) -> None:
        """As Debian's vpcd does: the length, then the payload, in two writes."""
        assert self.conn is not None
        if split:
            self.conn.sendall(struct.pack(">H", len(message)))
            self.conn.sendall(message)
        else:
            self.conn.sendall(struct.pack(">H", len(message)) + message)

    def receive(self) -> bytes:
        size = struct.unpack(">H", self._exactly(2))[0]
        return self._exactly(size)

    def _exactly(self, size: int) -> bytes:
        assert self.conn is not None
        data = b""
        while len(data) < size:
            chunk = self.conn.recv(size - len(data))
            if not chunk:
                raise EOFError("the virtual card closed the connection")
            data += chunk
        return data

    def ask(self, message: bytes) -> bytes:
        self.send(message)
        return self.receive()

    def closed_by_card(self) -> bool:
        assert self.conn is not None
        return self.conn.recv(1) == b""

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


class Running:
    """A :class:`VpcdServer` on a thread, with its status lines."""

    def __init__(self, *slots: VpcdSlot, **options: float) -> None:
        self.status: list[str] = []
        self.server = VpcdServer(slots, status=self.status.append, **options)
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()
        self.server.close()

    def wait_status(self, text: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not any(text in line for line in self.status):
            assert time.monotonic() < deadline, f"no status line with {text!r}: {self.status}"
            time.sleep(0.005)


@pytest.fixture
def vpcd():
    fake = FakeVpcd()
    yield fake
    fake.close()


class Bare:
    """A device with a fixed activation and an echo, for the ATR rules."""

    def __init__(self, activation: Activation) -> None:
        self.activation = activation

    def power_on(self) -> Activation:
        return self.activation

    def execute(self, apdu: bytes) -> bytes:
        return b"\x90\x00"


def test_atr_and_uid_shown_for_each_kind_of_device() -> None:
    issued = card()
    assert device_atr(issued) == (bytes.fromhex("3B80800101"), issued.image.uid)  # default ATS: no historical bytes
    assert device_atr(Bare(Activation("T=CL", uid=b"\x01\x02\x03\x04", ats=bytes.fromhex("0675778102 80")))) == \
        (bytes.fromhex("3B8180018080"), b"\x01\x02\x03\x04")  # a DESFire EV1's ATS and PC/SC ATR
    assert device_atr(demo_psam(t0=True)) == (DEFAULT_ATR, None)
    with pytest.raises(VpcdError, match="contactless device without an ATS"):
        device_atr(Bare(Activation("T=CL", uid=b"\x01\x02\x03\x04")))
    with pytest.raises(VpcdError, match="ATS is malformed"):
        device_atr(Bare(Activation("T=CL", uid=b"\x01\x02\x03\x04", ats=b"\x05\x78")))
    with pytest.raises(VpcdError, match="MIFARE device's SAK: SAK 00 does not announce a MIFARE Classic"):
        device_atr(Bare(Activation("MIFARE", uid=b"\x01\x02\x03\x04", sak=0x00)))
    with pytest.raises(VpcdError, match="port 70000 is not a TCP port"):
        VpcdSlot(issued, 70000)


def test_the_wire_protocol(vpcd: FakeVpcd) -> None:
    issued = card(balance=0x3039)
    seen: list[tuple[str, bytes, bytes]] = []
    slot = VpcdSlot(issued, vpcd.port, on_exchange=lambda *exchange: seen.append(exchange))
    running = Running(slot)
    try:
        vpcd.accept()
        assert vpcd.ask(b"\x04") == bytes.fromhex("3B80800101")
        vpcd.send(b"\x01")  # power on: no reply
        assert vpcd.ask(SELECT_EP)[-2:] == b"\x90\x00"
        assert vpcd.conn is not None
        vpcd.conn.sendall(struct.pack(">H", len(GET_BALANCE)) + GET_BALANCE[:2])  # a message cut across writes
        time.sleep(0.05)  # so that the server reads the first part alone
        vpcd.conn.sendall(GET_BALANCE[2:])
        assert vpcd.receive() == bytes.fromhex("000030399000")
        vpcd.conn.sendall(b"\x00\x05" + GET_BALANCE + b"\x00\x05" + bytes.fromhex("FFCA000000"))  # two in one
        assert vpcd.receive() == bytes.fromhex("000030399000")
        assert vpcd.receive() == issued.image.uid + b"\x90\x00"
        assert vpcd.ask(bytes.fromhex("FFCA010000")) == bytes.fromhex("6A81")
        vpcd.send(b"\x00")  # power off: the next APDU finds a fresh card
        assert vpcd.ask(GET_BALANCE) == bytes.fromhex("6985")
        vpcd.send(b"\x02")  # reset
        assert vpcd.ask(b"\x04") == bytes.fromhex("3B80800101")
    finally:
        running.stop()
    assert vpcd.closed_by_card()  # stopping takes the card out
    assert (slot.apdus, slot.power_ons) == (6, 3)
    assert [command for command, _ in slot.history] == [SELECT_EP, GET_BALANCE, GET_BALANCE,
                                                        bytes.fromhex("FFCA000000"), bytes.fromhex("FFCA010000"),
                                                        GET_BALANCE]
    assert seen[1] == ("card", GET_BALANCE, bytes.fromhex("000030399000"))
    assert running.status[0] == f"card: connected to vpcd at 127.0.0.1:{vpcd.port} (ATR 3B80800101)"


def test_history_is_bounded(vpcd: FakeVpcd) -> None:
    slot = VpcdSlot(card(), vpcd.port)
    running = Running(slot)
    try:
        vpcd.accept()
        for _ in range(HISTORY + 3):
            vpcd.ask(GET_BALANCE)
    finally:
        running.stop()
    assert slot.apdus == HISTORY + 3 and len(slot.history) == HISTORY


def test_waits_for_vpcd_then_reconnects_when_it_goes(vpcd: FakeVpcd) -> None:
    absent = FakeVpcd(listen=False)  # the port is taken, nothing listens yet: connections are refused
    psam = demo_psam(t0=True)
    running = Running(VpcdSlot(card(), vpcd.port), VpcdSlot(psam, absent.port, name="PSAM"), retry_s=0.02)
    try:
        vpcd.accept()
        running.wait_status(f"PSAM: waiting for pcscd's vpcd to listen on 127.0.0.1:{absent.port}")
        absent.listen()
        absent.accept()
        assert absent.ask(b"\x04") == DEFAULT_ATR
        assert absent.ask(bytes.fromhex("00B0960006")) == bytes.fromhex("2000415999979000")
        vpcd.conn.close()  # type: ignore[union-attr]  # pcscd stops
        running.wait_status("card: vpcd closed the connection (pcscd stopped?); reconnecting")
        vpcd.accept()  # pcscd is back
        assert vpcd.ask(b"\x04") == bytes.fromhex("3B80800101")
    finally:
        running.stop()
        absent.close()
    assert sum("waiting for pcscd's vpcd" in line for line in running.status) == 1


class TearsOn:
    """Leaves the field when it receives ``command``."""

    def __init__(self, device, command: bytes) -> None:
        self.device, self.command = device, command

    def power_on(self) -> Activation:
        return self.device.power_on()

    def execute(self, apdu: bytes) -> bytes:
        if apdu == self.command:
            raise CardRemoved("torn")
        return self.device.execute(apdu)


def test_a_tearing_device_leaves_and_comes_back(vpcd: FakeVpcd) -> None:
    slot = VpcdSlot(TearsOn(card(), GET_BALANCE), vpcd.port)
    running = Running(slot, return_s=0.05)
    try:
        vpcd.accept()
        assert vpcd.ask(SELECT_EP)[-2:] == b"\x90\x00"
        vpcd.send(GET_BALANCE)
        assert vpcd.closed_by_card()  # unanswered: the card left with the command
        running.wait_status("card: the device left the field in the middle of an exchange; back in 0.05 s")
        vpcd.accept()
        assert vpcd.ask(b"\x04") == bytes.fromhex("3B80800101")
    finally:
        running.stop()
    assert slot.apdus == 1


def test_stop_before_any_connection() -> None:
    absent = FakeVpcd(listen=False)
    running = Running(VpcdSlot(card(), absent.port), retry_s=0.01)
    try:
        running.wait_status("waiting for pcscd's vpcd")
    finally:
        running.stop()
        absent.close()
    with pytest.raises(VpcdError, match="nothing to serve"):
        VpcdServer([])


def test_ykt_sim_vpcd_serves_echoes_and_saves(vpcd: FakeVpcd, tmp_path: Path) -> None:
    fixture = tmp_path / "card.json"
    save_fixture(card(balance=777), fixture)
    before = fixture.read_bytes()
    process = subprocess.Popen([sys.executable, "-c", "from sim.cli import main; main()", "sim", "vpcd", "--card",
                                str(fixture), "--port", str(vpcd.port), "--save", "-v"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        vpcd.accept()
        assert vpcd.ask(b"\x04") == bytes.fromhex("3B80800101")
        vpcd.send(b"\x01")
        assert vpcd.ask(SELECT_EP)[-2:] == b"\x90\x00"
        assert vpcd.ask(GET_BALANCE) == bytes.fromhex("000003099000")
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=TIMEOUT * 3)
    assert process.returncode == 0, err
    assert vpcd.closed_by_card()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"ykt sim vpcd: serving card 03103640000000000123 (balance 777 fen) from {fixture}"
    assert f"ykt sim vpcd: card: connected to vpcd at 127.0.0.1:{vpcd.port} (ATR 3B80800101)" in lines
    assert "card > 805C000204" in lines and "card < 000003099000" in lines
    assert lines[-2:] == ["ykt sim vpcd: stopped (card 2 APDUs); card balance 777 fen",
                          f"ykt sim vpcd: saved the card's state to {fixture}"]
    assert load_image(fixture).purse.balance == 777 and fixture.read_bytes() == before  # nothing changed, same bytes
