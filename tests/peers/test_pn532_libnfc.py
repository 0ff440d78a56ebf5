"""libnfc 1.8 (the ``pn532_uart`` driver) against the emulated PN532: ``nfc-list`` and ``nfc-poll`` see the simulated
card, and libnfc's own API, called through ctypes, exchanges APDUs with it byte for byte."""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from pathlib import Path

import pytest

from protocols.hexutil import parse_hex
from protocols.pn532 import CommandCode
from sim.card import SimCard
from sim.issuing import issue_card, load_demo_keyset
from sim.scripted import ApduPattern, ScriptedCard, Step

from .conftest import wait_until
from .pn532_fixtures import (
    emulated_pn532,
    libnfc_env,
    libnfc_hex,
    load_libnfc,
    require_nfc_tool,
    run,
)

pytestmark = pytest.mark.peers

SERIAL = parse_hex("03103640000000000042")
SELECT = parse_hex("00A4040008A000000632010105")
GET_BALANCE = parse_hex("805C000204")
NMT_ISO14443A, NBR_106 = 1, 1


def new_card() -> SimCard:
    return issue_card(load_demo_keyset(), serial=SERIAL, balance=5000)


def is_subsequence(wanted: list[int], seen: list[int]) -> bool:
    remaining = iter(seen)
    return all(code in remaining for code in wanted)


def test_nfc_list_shows_the_card(tmp_path: Path) -> None:
    tool = require_nfc_tool("nfc-list")
    card = new_card()
    image = card.image
    with emulated_pn532(card, tmp_path) as server:
        result = run([tool], env=libnfc_env(server.link))
        codes = [command[0] for command in server.chip.received]
    assert result.returncode == 0, result.stderr
    assert "1 ISO14443A passive target(s) found:" in result.stdout
    assert f"ATQA (SENS_RES): {libnfc_hex(image.atqa)}" in result.stdout
    assert f"UID (NFCID1): {libnfc_hex(image.uid)}" in result.stdout
    assert f"SAK (SEL_RES): {image.sak:02x}" in result.stdout
    assert f"ATS: {libnfc_hex(image.ats[1:])}" in result.stdout  # libnfc leaves out TL
    c = CommandCode
    # libnfc's order (real-peers §2): set-up, the listing loop ending on a listing that finds nothing, release
    assert is_subsequence([c.SAMConfiguration, c.Diagnose, c.GetFirmwareVersion, c.SetParameters,
                           c.ReadRegister, c.RFConfiguration, c.InListPassiveTarget, c.InDeselect,
                           c.InListPassiveTarget, c.InRelease, c.RFConfiguration, c.PowerDown], codes), codes


def test_nfc_list_of_type_a_only(tmp_path: Path) -> None:
    tool = require_nfc_tool("nfc-list")
    card = new_card()
    with emulated_pn532(card, tmp_path) as server:
        result = run([tool, "-t", "1"], env=libnfc_env(server.link))
        received = list(server.chip.received)
    assert result.returncode == 0, result.stderr
    assert f"UID (NFCID1): {libnfc_hex(card.image.uid)}" in result.stdout
    lists = [command for command in received if command[0] == CommandCode.InListPassiveTarget]
    assert lists == [parse_hex("4A0100")] * 2


def test_nfc_poll_sees_the_card_come_and_go(tmp_path: Path) -> None:
    tool = require_nfc_tool("nfc-poll")
    card = new_card()
    with emulated_pn532(card, tmp_path) as server:
        proc = subprocess.Popen([tool], env=libnfc_env(server.link), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        output = bytearray()

        def collect() -> None:
            assert proc.stdout is not None
            while chunk := os.read(proc.stdout.fileno(), 4096):
                output.extend(chunk)

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        try:
            wait_until(lambda: b"Waiting for card removing" in output or proc.poll() is not None,
                       "nfc-poll to find the card")
            server.take_card()  # its presence checks (InCommunicateThru B2) now time out
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reader.join(5)
        received = list(server.chip.received)
    text = output.decode()
    assert f"UID (NFCID1): {libnfc_hex(card.image.uid)}" in text
    assert f"ATS: {libnfc_hex(card.image.ats[1:])}" in text
    assert text.rstrip().endswith("done.")
    assert parse_hex("42B2") in received  # the presence check, an R(NAK) the chip sends through


# --- libnfc's API through ctypes --------------------------------------------------------------------------------------

class Modulation(ctypes.Structure):
    _fields_ = [("nmt", ctypes.c_int), ("nbr", ctypes.c_int)]


class Iso14443aInfo(ctypes.Structure):
    """``nfc_iso14443a_info``, the first member of ``nfc_target``; libnfc packs its structures to 1 byte."""

    _pack_ = 1
    _fields_ = [("atqa", ctypes.c_uint8 * 2), ("sak", ctypes.c_uint8), ("uid_len", ctypes.c_size_t),
                ("uid", ctypes.c_uint8 * 10), ("ats_len", ctypes.c_size_t), ("ats", ctypes.c_uint8 * 254)]


class Libnfc:
    """The few libnfc calls a host needs to send APDUs: open, select a type A target, transceive."""

    def __init__(self, link: Path) -> None:
        lib = self.lib = load_libnfc()
        lib.nfc_init.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        lib.nfc_init.restype = None
        lib.nfc_exit.argtypes = [ctypes.c_void_p]
        lib.nfc_exit.restype = None
        lib.nfc_open.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nfc_open.restype = ctypes.c_void_p
        lib.nfc_close.argtypes = [ctypes.c_void_p]
        lib.nfc_close.restype = None
        lib.nfc_initiator_init.argtypes = [ctypes.c_void_p]
        lib.nfc_initiator_select_passive_target.argtypes = [ctypes.c_void_p, Modulation, ctypes.c_void_p,
                                                            ctypes.c_size_t, ctypes.c_void_p]
        lib.nfc_initiator_transceive_bytes.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                                       ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.context = ctypes.c_void_p()
        lib.nfc_init(ctypes.byref(self.context))
        assert self.context.value, "nfc_init failed"
        self.device = lib.nfc_open(self.context, f"pn532_uart:{link}".encode())
        if not self.device:
            lib.nfc_exit(self.context)
            pytest.fail(f"nfc_open could not open the emulated PN532 on {link}")

    def close(self) -> None:
        self.lib.nfc_close(self.device)
        self.lib.nfc_exit(self.context)

    def select(self) -> Iso14443aInfo:
        assert self.lib.nfc_initiator_init(self.device) == 0
        target = ctypes.create_string_buffer(2048)  # larger than any nfc_target
        found = self.lib.nfc_initiator_select_passive_target(self.device, Modulation(NMT_ISO14443A, NBR_106),
                                                             None, 0, target)
        assert found == 1
        return Iso14443aInfo.from_buffer_copy(target.raw[:ctypes.sizeof(Iso14443aInfo)])

    def transceive(self, apdu: bytes) -> bytes:
        answer = ctypes.create_string_buffer(512)
        size = self.lib.nfc_initiator_transceive_bytes(self.device, apdu, len(apdu), answer, len(answer), 2000)
        assert size >= 0, f"nfc_initiator_transceive_bytes failed with {size}"
        return answer.raw[:size]


@pytest.fixture
def libnfc_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    require_nfc_tool("nfc-list")
    for name, value in libnfc_env(Path("/dev/null")).items():
        if name.startswith("LIBNFC_") and name != "LIBNFC_DEVICE":
            monkeypatch.setenv(name, value)


def test_libnfc_api_selects_the_card_and_reads_its_balance(tmp_path: Path, libnfc_settings: None) -> None:
    card, twin = new_card(), new_card()
    twin.power_on()
    with emulated_pn532(card, tmp_path) as server:
        nfc = Libnfc(server.link)
        try:
            info = nfc.select()
            select = nfc.transceive(SELECT)
            balance = nfc.transceive(GET_BALANCE)
        finally:
            nfc.close()
    image = card.image
    assert bytes(info.atqa) == image.atqa and info.sak == image.sak
    assert bytes(info.uid[:info.uid_len]) == image.uid
    assert bytes(info.ats[:info.ats_len]) == image.ats[1:]
    assert select == twin.execute(SELECT)  # the FCI with file 0x15, and 9000
    assert select[-2:] == b"\x90\x00" and parse_hex("A000000632010105") in select
    assert balance == (5000).to_bytes(4, "big") + b"\x90\x00"


def test_libnfc_api_long_command_and_answer_in_extended_frames(tmp_path: Path, libnfc_settings: None) -> None:
    command = parse_hex("00D60000FF") + bytes(range(255))  # 260 bytes: InDataExchange of 262, an extended frame
    answer = bytes(range(256)) + b"\x90\x00"  # 258 bytes back, an extended frame too
    card = ScriptedCard([Step(ApduPattern.exact(command), answer)])
    with emulated_pn532(card, tmp_path) as server:
        nfc = Libnfc(server.link)
        try:
            nfc.select()
            assert nfc.transceive(command) == answer
        finally:
            nfc.close()
    card.check()
