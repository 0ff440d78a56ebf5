"""The PC/SC driver without a daemon: pyscard's module replaced by a scripted fake, to pin down error mapping, reader
choice, activation, the worker thread's timeouts and the PC/SC part 3 ATR. The same driver against the real pcscd is
tested in tests/peers/test_pcsc_link.py."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from terminal.drivers import pcsc
from terminal.drivers.pcsc import (
    ERRORS,
    INSTALL_HINT,
    PcscLink,
    choose_reader,
    contactless_atr,
    is_contactless_atr,
    list_readers,
    load_scard,
    pcsc_error,
)
from terminal.errors import CardRemoved, ConfigError, LinkTimeout, ReaderGone
from terminal.link import Activation

READERS = ["ACS ACR122U PICC Interface 00 00", "Identiv uTrust 2700 R [CCID Interface] 01 00",
           "Identiv uTrust 2700 R [CCID Interface] 01 01"]
PSAM_ATR = bytes.fromhex("3B6C0000594B542D5053414D2D53494D")
T1_ATR = bytes.fromhex("3BDB960080B1FE451F830031C064C7FC100001900074")
CL_ATR = bytes.fromhex("3B8180018080")  # a DESFire EV1 behind a PC/SC contactless reader
UID = bytes.fromhex("04A1B2C3D4E5F6")
REMOVED, NO_SERVICE, SHARING = 0x80100069, 0x8010001D, 0x8010000B
PRESENT, EMPTY, MUTE, UNAVAILABLE = 0x20, 0x10, 0x200, 0x8


class FakeScard:
    """pyscard's ``smartcard.scard`` as far as the driver uses it: readers with states, scripted status codes and
    answers, and a record of every call. ``events`` are the states the reader takes next, one per wait; a wait with
    nothing to come sleeps its timeout and times out, as pcscd does."""

    def __init__(self, readers: list[str] = READERS) -> None:
        self.readers = list(readers)
        self.state = EMPTY
        self.events: list[int] = []
        self.atr = b""
        self.protocol = pcsc.PROTOCOL_T1
        self.answers: list[tuple[int, list[int]]] = []
        self.codes: dict[str, list[int]] = {}
        self.raises: dict[str, BaseException] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.hold: threading.Event | None = None
        self.handles = 0

    def _code(self, name: str, *call: Any) -> int:
        self.calls.append((name, *call))
        if name in self.raises:
            raise self.raises.pop(name)
        waiting = self.codes.get(name)
        return waiting.pop(0) if waiting else 0

    def present(self, atr: bytes, *, events: int = 1, protocol: int = pcsc.PROTOCOL_T1) -> None:
        self.state, self.atr, self.protocol = (events << 16) | PRESENT, atr, protocol

    def SCardEstablishContext(self, scope: int) -> list[Any]:
        self.handles += 1
        return [self._code("SCardEstablishContext", scope), 1000 + self.handles]

    def SCardReleaseContext(self, context: int) -> int:
        return self._code("SCardReleaseContext", context)

    def SCardListReaders(self, context: int, groups: list[str]) -> list[Any]:
        code = self._code("SCardListReaders", context)
        return [code, [] if code else list(self.readers)]

    def SCardGetStatusChange(self, context: int, timeout_ms: int, states: list[tuple[str, int]]) -> list[Any]:
        code = self._code("SCardGetStatusChange", timeout_ms, states[0][1])
        if code:
            return [code, states]
        reader, known = states[0]
        if self.state != known:
            return [0, [(reader, self.state | pcsc.STATE_CHANGED, list(self.atr))]]
        if self.events:
            self.state = self.events.pop(0)
            return [0, [(reader, self.state | pcsc.STATE_CHANGED, list(self.atr))]]
        time.sleep(timeout_ms / 1000)
        return [pcsc.E_TIMEOUT, states]

    def SCardConnect(self, context: int, reader: str, share: int, protocols: int) -> list[Any]:
        self.handles += 1
        return [self._code("SCardConnect", reader, share, protocols), 5000 + self.handles, self.protocol]

    def SCardStatus(self, card: int) -> list[Any]:
        return [self._code("SCardStatus", card), "reader", self.state, self.protocol, list(self.atr)]

    def SCardTransmit(self, card: int, protocol: int, apdu: list[int]) -> list[Any]:
        code = self._code("SCardTransmit", card, protocol, bytes(apdu))
        if self.hold is not None:
            self.hold.wait(10)
        if code:
            return [code, list(range(200))]  # pcsc-lite leaves garbage in a failed call's buffer
        return list(self.answers.pop(0)) if self.answers else [0, [0x90, 0x00]]

    def SCardDisconnect(self, card: int, disposition: int) -> int:
        return self._code("SCardDisconnect", card, disposition)

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [call[1:] for call in self.calls if call[0] == name]


@pytest.fixture
def fake() -> FakeScard:
    return FakeScard()


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


# --- constants, errors, ATRs ------------------------------------------------------------------------------------------

def test_constants_are_pyscards() -> None:
    scard = pytest.importorskip("smartcard.scard")
    for name in ("SCOPE_USER", "SHARE_EXCLUSIVE", "PROTOCOL_T0", "PROTOCOL_T1", "LEAVE_CARD", "RESET_CARD",
                 "UNPOWER_CARD", "STATE_UNAWARE", "STATE_CHANGED", "STATE_UNKNOWN", "STATE_UNAVAILABLE",
                 "STATE_EMPTY", "STATE_PRESENT", "STATE_MUTE", "S_SUCCESS", "E_TIMEOUT", "E_NO_READERS_AVAILABLE"):
        assert getattr(pcsc, name) == getattr(scard, f"SCARD_{name}") & 0xFFFFFFFF, name
    for code, (_, name, _) in ERRORS.items():
        if hasattr(scard, name):
            assert getattr(scard, name) & 0xFFFFFFFF == code, name


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_every_status_code_becomes_its_typed_error(code: int) -> None:
    kind, name, text = ERRORS[code]
    error = pcsc_error(code, "reader X: transmit")
    assert type(error) is kind
    assert str(error) == f"reader X: transmit: {text} ({name})"


def test_unknown_and_signed_status_codes() -> None:
    error = pcsc_error(0x801000FF, "here")
    assert type(error) is ReaderGone and str(error) == "here: PC/SC call failed (0x801000FF)"
    signed = pcsc_error(REMOVED - (1 << 32), "here")  # some pyscard builds give codes as signed 32-bit integers
    assert type(signed) is CardRemoved and str(signed) == "here: the card was removed (SCARD_W_REMOVED_CARD)"


def test_contactless_atr_examples() -> None:
    assert contactless_atr(b"") == bytes.fromhex("3B80800101")
    assert contactless_atr(b"\x80") == CL_ATR
    # at most 15 historical bytes; TCK = 8F ^ 80 ^ 01 ^ (01 ^ 02 ^ ... ^ 0F = 00) = 0E
    assert contactless_atr(bytes(range(1, 21))) == bytes.fromhex("3B8F8001") + bytes(range(1, 16)) + b"\x0e"
    assert is_contactless_atr(CL_ATR) and is_contactless_atr(bytes.fromhex("3B80800101"))
    for atr in (PSAM_ATR, T1_ATR, CL_ATR[:-1], CL_ATR[:-1] + b"\x81", CL_ATR + b"\x00", b"", b"\x3b\x80\x80\x01"):
        assert not is_contactless_atr(atr), atr.hex()


@given(st.binary(max_size=15))
def test_contactless_atr_is_recognised(historical: bytes) -> None:
    atr = contactless_atr(historical)
    assert is_contactless_atr(atr) and atr[4:-1] == historical


@given(st.binary(max_size=40))
def test_is_contactless_atr_never_raises(atr: bytes) -> None:
    assert is_contactless_atr(atr) in (True, False)


# --- reader choice ----------------------------------------------------------------------------------------------------

def test_choose_reader() -> None:
    assert choose_reader(READERS, "0") == READERS[0]
    assert choose_reader(READERS, "2") == READERS[2]
    assert choose_reader(READERS, "acr122") == READERS[0]
    assert choose_reader(READERS, "*01 01") == READERS[2]
    assert choose_reader(READERS, "identiv*00") == READERS[1]
    assert choose_reader(["Reader 1", "Reader 10"], "Reader 1") == "Reader 1"  # the exact name wins
    with pytest.raises(ConfigError, match=r"pattern 'identiv' matches 2 readers \('Identiv"):
        choose_reader(READERS, "identiv")
    with pytest.raises(ReaderGone, match=r"no PC/SC reader 3: readers are 'ACS ACR122U PICC Interface 00 00', "):
        choose_reader(READERS, "3")
    with pytest.raises(ReaderGone, match=r"no PC/SC reader matches 'omnikey'"):
        choose_reader(READERS, "omnikey")
    with pytest.raises(ReaderGone, match=r"no PC/SC reader 0: readers are none"):
        choose_reader([], "0")


def test_missing_pyscard_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "smartcard", None)
    with pytest.raises(ReaderGone) as raised:
        load_scard()
    assert str(raised.value) == INSTALL_HINT
    assert "libpcsclite-dev" in INSTALL_HINT and "pcscd" in INSTALL_HINT and "yikatong[pcsc]" in INSTALL_HINT
    with pytest.raises(ReaderGone, match="pip install 'yikatong\\[pcsc\\]'"):
        PcscLink("0")


def test_list_readers(fake: FakeScard) -> None:
    assert list_readers(scard=fake) == READERS
    assert fake.named("SCardReleaseContext") == [(1001,)]
    fake.codes["SCardListReaders"] = [pcsc.E_NO_READERS_AVAILABLE]
    assert list_readers(scard=fake) == []
    fake.codes["SCardEstablishContext"] = [NO_SERVICE]
    with pytest.raises(ReaderGone, match=r"connecting to pcscd: pcscd is not running \(SCARD_E_NO_SERVICE\)"):
        list_readers(scard=fake)


def test_a_bad_reader_releases_the_context(fake: FakeScard) -> None:
    with pytest.raises(ReaderGone, match="no PC/SC reader matches 'gemalto'"):
        PcscLink("gemalto", scard=fake)
    assert fake.named("SCardReleaseContext") == [(1001,)]


# --- activation -------------------------------------------------------------------------------------------------------

def test_activation_of_a_contact_card(fake: FakeScard) -> None:
    fake.present(T1_ATR)
    with PcscLink("2", scard=fake) as link:
        assert link.name == f"pcsc:{READERS[2]}"
        assert link.activate(1.0) == Activation("T=1", atr=T1_ATR)
        assert link.active
    assert fake.named("SCardConnect") == [(READERS[2], pcsc.SHARE_EXCLUSIVE, pcsc.PROTOCOL_T0 | pcsc.PROTOCOL_T1)]
    assert fake.named("SCardDisconnect") == [(5002, pcsc.UNPOWER_CARD)]  # close powers the card down
    assert fake.named("SCardReleaseContext") == [(1001,)]


def test_activation_of_a_t0_psam(fake: FakeScard) -> None:
    fake.present(PSAM_ATR, protocol=pcsc.PROTOCOL_T0)
    with PcscLink("1", scard=fake) as link:
        assert link.activate(1.0) == Activation("T=0", atr=PSAM_ATR)
        fake.answers = [(0, list(bytes.fromhex("6108")))]
        assert link.transceive(bytes.fromhex("80700000"), 1.0) == bytes.fromhex("6108")  # no T=0 procedure here
    assert fake.named("SCardTransmit") == [(5002, pcsc.PROTOCOL_T0, bytes.fromhex("80700000"))]


def test_activation_of_a_contactless_card_asks_the_reader_for_the_uid(fake: FakeScard) -> None:
    fake.present(CL_ATR)
    fake.answers = [(0, list(UID + b"\x90\x00"))]
    with PcscLink("acr122", scard=fake) as link:
        assert link.activate(1.0) == Activation("T=CL", uid=UID, atr=CL_ATR)
        fake.answers = [(0, [0x6A, 0x81])]
        assert link.activate(1.0) == Activation("T=CL", uid=b"", atr=CL_ATR)
    assert [call[2] for call in fake.named("SCardTransmit")] == [bytes.fromhex("FFCA000000")] * 2
    # the second activation first powered the first session's card down
    assert fake.named("SCardDisconnect")[0] == (5002, pcsc.UNPOWER_CARD)


def test_a_mifare_classic_behind_a_pcsc_reader_is_a_mifare_activation(fake: FakeScard) -> None:
    """The storage-card ATR (which has the frame of a contactless card's) names a MIFARE Classic: the activation says
    MIFARE, with the UID the reader gives and the SAK of the card name; pseudo-APDUs then go through unchanged."""
    for sak, atr in ((0x08, "3B8F8001804F0CA000000306030001000000006A"),
                     (0x18, "3B8F8001804F0CA0000003060300020000000069")):
        fake.present(bytes.fromhex(atr))
        fake.answers = [(0, list(bytes.fromhex("40C2AB5C9000")))]
        with PcscLink("acr122", scard=fake) as link:
            assert link.activate(1.0) == Activation("MIFARE", uid=bytes.fromhex("40C2AB5C"), sak=sak,
                                                    atr=bytes.fromhex(atr))
            fake.answers = [(0, list(bytes.fromhex("9000")))]
            assert link.transceive(bytes.fromhex("FF860000050100086000"), 1.0) == bytes.fromhex("9000")
    assert [call[2][:2] for call in fake.named("SCardTransmit")] == [b"\xff\xca", b"\xff\x86"] * 2


def test_activation_waits_for_the_card(fake: FakeScard) -> None:
    fake.events = [EMPTY | (1 << 16), PRESENT | (2 << 16)]
    fake.atr = T1_ATR
    with PcscLink("0", scard=fake) as link:
        assert link.activate(5.0) == Activation("T=1", atr=T1_ATR)
    waits = fake.named("SCardGetStatusChange")
    assert [known for _, known in waits] == [pcsc.STATE_UNAWARE, EMPTY, EMPTY | (1 << 16)]
    assert all(4000 <= timeout_ms <= 5000 for timeout_ms, _ in waits)


def test_an_empty_reader_activates_nothing_after_the_timeout(fake: FakeScard) -> None:
    with PcscLink("0", scard=fake) as link:
        start = time.monotonic()
        assert link.activate(0.2) is None
        assert 0.15 < time.monotonic() - start < 2.0
        assert link.activate(0.0) is None
    assert not fake.named("SCardConnect")


def test_a_mute_card_is_not_activated(fake: FakeScard) -> None:
    fake.state = PRESENT | MUTE | (1 << 16)
    with PcscLink("0", scard=fake) as link:
        assert link.activate(0.1) is None
    assert not fake.named("SCardConnect")


def test_a_vanished_reader_is_reader_gone(fake: FakeScard) -> None:
    fake.state = UNAVAILABLE
    with PcscLink("0", scard=fake) as link, pytest.raises(ReaderGone, match="the reader is gone"):
        link.activate(1.0)


def test_a_card_that_cannot_be_connected_to_is_tried_again(fake: FakeScard) -> None:
    fake.present(T1_ATR)
    fake.codes["SCardConnect"] = [REMOVED, 0x80100066]
    with PcscLink("0", scard=fake) as link:
        assert link.activate(5.0) == Activation("T=1", atr=T1_ATR)
    assert len(fake.named("SCardConnect")) == 3


def test_a_reader_held_by_another_program(fake: FakeScard) -> None:
    fake.present(T1_ATR)
    fake.codes["SCardConnect"] = [SHARING]
    refused = r"connecting to the card: another application holds the reader \(SCARD_E_SHARING_VIOLATION\)"
    with PcscLink("0", scard=fake) as link, pytest.raises(ReaderGone, match=refused):
        link.activate(1.0)


def test_new_cards_only_skips_a_resting_card(fake: FakeScard) -> None:
    fake.present(T1_ATR, events=3)
    with PcscLink("0", new_cards_only=True, scard=fake) as link:
        assert link.activate(1.0) is not None
        link.deactivate()
        assert link.activate(0.1) is None  # the same card, still there
        fake.events = [EMPTY | (4 << 16), PRESENT | (5 << 16)]  # it leaves and comes back
        assert link.activate(1.0) == Activation("T=1", atr=T1_ATR)
    with PcscLink("0", scard=fake) as plain:
        assert plain.activate(0.1) is not None
        plain.deactivate()
        assert plain.activate(0.1) is not None


# --- exchanges --------------------------------------------------------------------------------------------------------

def test_transceive(fake: FakeScard) -> None:
    fake.present(T1_ATR)
    fake.answers = [(0, list(bytes.fromhex("000013889000")))]
    with PcscLink("0", scard=fake) as link:
        with pytest.raises(CardRemoved, match="no card activated"):
            link.transceive(b"\x80\x5c\x00\x02\x04", 1.0)
        link.activate(1.0)
        assert link.transceive(b"\x80\x5c\x00\x02\x04", 1.0) == bytes.fromhex("000013889000")
        link.deactivate()
        assert not link.active
        with pytest.raises(CardRemoved, match="no card activated"):
            link.transceive(b"\x80\x5c\x00\x02\x04", 1.0)
    assert fake.named("SCardDisconnect") == [(5002, pcsc.UNPOWER_CARD)]


@pytest.mark.parametrize("code", sorted(c for c in ERRORS if c != pcsc.E_TIMEOUT))
def test_a_failed_exchange_is_typed_and_its_buffer_ignored(fake: FakeScard, code: int) -> None:
    kind, name, _ = ERRORS[code]
    fake.present(T1_ATR)
    with PcscLink("0", scard=fake) as link:
        link.activate(1.0)
        fake.codes["SCardTransmit"] = [code]
        with pytest.raises(kind, match=f"transmit: .*\\({name}\\)"):
            link.transceive(b"\x00\xa4\x04\x00", 1.0)
        assert link.active is (kind is ProtocolError or kind is LinkTimeout)


def test_a_card_answering_nothing_is_removed_and_its_handle_left(fake: FakeScard) -> None:
    fake.present(T1_ATR)
    fake.answers = [(0, [])]
    with PcscLink("0", scard=fake) as link:
        link.activate(1.0)
        with pytest.raises(CardRemoved, match="the card answered nothing"):
            link.transceive(b"\x00\xa4\x04\x00", 1.0)
        assert not link.active
        wait_for(lambda: fake.named("SCardDisconnect") == [(5002, pcsc.LEAVE_CARD)])


def test_pcscd_gone_then_back(fake: FakeScard) -> None:
    fake.present(T1_ATR)
    with PcscLink("0", scard=fake) as link:
        link.activate(1.0)
        fake.codes["SCardTransmit"] = [NO_SERVICE]
        with pytest.raises(ReaderGone, match=r"pcscd is not running \(SCARD_E_NO_SERVICE\)"):
            link.transceive(b"\x00\xa4\x04\x00", 1.0)
        fake.codes["SCardEstablishContext"] = [NO_SERVICE]
        with pytest.raises(ReaderGone, match="connecting to pcscd: pcscd is not running"):
            link.activate(0.1)
        assert link.activate(1.0) is not None  # pcscd is back: a new context
    assert [call[0] for call in fake.calls if call[0].endswith("Context")] == [
        "SCardEstablishContext", "SCardReleaseContext", "SCardEstablishContext", "SCardEstablishContext",
        "SCardReleaseContext"]


def test_an_exception_from_pyscard_is_reader_gone(fake: FakeScard) -> None:
    fake.present(T1_ATR)
    with PcscLink("0", scard=fake) as link:
        link.activate(1.0)
        fake.raises["SCardTransmit"] = TypeError("in method 'SCardTransmit', argument 3")
        with pytest.raises(ReaderGone, match="SCardTransmit: pyscard failed: TypeError: in method"):
            link.transceive(b"\x00\xa4\x04\x00", 1.0)


def test_a_reader_that_never_answers_costs_the_timeout_and_no_more(fake: FakeScard) -> None:
    fake.present(T1_ATR)
    with PcscLink("0", scard=fake) as link:
        link.activate(1.0)
        fake.hold = threading.Event()
        start = time.monotonic()
        with pytest.raises(LinkTimeout, match=r"no answer from the PC/SC layer within 0\.2 s"):
            link.transceive(b"\x80\x54\x01\x00\x0f", 0.2)
        with pytest.raises(LinkTimeout):
            link.transceive(b"\x00\xb0\x95\x00\x00", 0.2)  # waits for the stuck call first, in vain
        link.deactivate()  # does not wait
        assert time.monotonic() - start < 3.0
        fake.hold.set()
        fake.hold = None
        assert link.activate(1.0) is not None  # once the stuck call returned, the link works again
        assert link.transceive(b"\x00\xb0\x95\x00\x00", 1.0) == b"\x90\x00"
    assert (5002, pcsc.UNPOWER_CARD) in fake.named("SCardDisconnect")


def test_closed_link(fake: FakeScard) -> None:
    link = PcscLink("0", scard=fake)
    link.close()
    link.close()
    with pytest.raises(ReaderGone, match="is closed"):
        link.activate(1.0)
    assert fake.named("SCardReleaseContext") == [(1001,)]
