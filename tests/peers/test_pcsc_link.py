"""The PC/SC driver against the real daemon: activation, exclusivity, a card that leaves, a daemon that stops and comes
back, an empty reader, and a T=0 PSAM whose 61xx answers the channel resolves."""

from __future__ import annotations

import time

import pytest

from protocols import psam_commands as pc
from sim.issuing import issue_card, load_demo_keyset
from sim.psam import DEFAULT_ATR, SimPsam
from terminal.channel import Channel
from terminal.drivers.pcsc import PcscLink, list_readers
from terminal.errors import CardRemoved, ConfigError, ReaderGone
from terminal.link import Activation

from .conftest import CARD_READER, SAM_READER, wait_reader, wait_until

pytestmark = pytest.mark.peers

SELECT_EP = bytes.fromhex("00A4040008A000000632010105")
GET_BALANCE = bytes.fromhex("805C000204")
CONTACTLESS_ATR = bytes.fromhex("3B80800101")  # PC/SC part 3 ATR of a card whose ATS has no historical bytes


def new_card(balance: int = 5000):
    return issue_card(load_demo_keyset(), serial="03103640000000000099", balance=balance)


class LeavesOn:
    """A device that leaves the reader when it receives a command starting with ``prefix`` (a tear)."""

    def __init__(self, device, prefix: bytes) -> None:
        self.device = device
        self.prefix = prefix

    def power_on(self) -> Activation:
        return self.device.power_on()

    def execute(self, apdu: bytes) -> bytes:
        if apdu.startswith(self.prefix):
            self.prefix = b"\xff\xff\xff"  # once
            raise CardRemoved("torn")
        return self.device.execute(apdu)


def test_readers_by_index_and_pattern(pcscd) -> None:
    assert list_readers() == [CARD_READER, SAM_READER]
    with PcscLink("1") as by_index, PcscLink("*pcd 00 01") as by_glob, PcscLink("PCD 00 00") as by_text:
        assert (by_index.reader, by_glob.reader, by_text.reader) == (SAM_READER, SAM_READER, CARD_READER)
        assert by_text.name == f"pcsc:{CARD_READER}"
    with pytest.raises(ConfigError, match="matches 2 readers"):
        PcscLink("virtual pcd")
    with pytest.raises(ReaderGone, match="no PC/SC reader 2: readers are 'Virtual PCD 00 00', 'Virtual PCD 00 01'"):
        PcscLink("2")


def test_activation_of_card_and_psam(serve) -> None:
    card = new_card()
    serve(card, SimPsam(load_demo_keyset(), bytes.fromhex("200041599997"), t0=True))
    with PcscLink(CARD_READER) as card_link, PcscLink(SAM_READER) as sam_link:
        assert card_link.activate(10.0) == Activation("T=CL", uid=card.image.uid, atr=CONTACTLESS_ATR)
        assert sam_link.activate(10.0) == Activation("T=0", atr=DEFAULT_ATR)
        assert card_link.transceive(GET_BALANCE, 1.0) == bytes.fromhex("6985")  # no application selected yet
        assert card_link.transceive(SELECT_EP, 1.0)[-2:] == b"\x90\x00"
        assert card_link.transceive(GET_BALANCE, 1.0) == bytes.fromhex("000013889000")


def test_exclusive_connection(serve) -> None:
    serve(new_card())
    with PcscLink(CARD_READER) as first, PcscLink(CARD_READER) as second:
        assert first.activate(10.0) is not None
        with pytest.raises(ReaderGone, match="another application holds the reader"):
            second.activate(1.0)


def test_empty_reader_activates_nothing_after_the_timeout(pcscd) -> None:
    with PcscLink(CARD_READER) as link:
        start = time.monotonic()
        assert link.activate(0.5) is None
        elapsed = time.monotonic() - start
    assert 0.45 <= elapsed < 5.0


def test_card_removed_between_commands(serve) -> None:
    served = serve(new_card())
    with PcscLink(CARD_READER) as link:
        assert link.activate(10.0) is not None
        assert link.transceive(SELECT_EP, 1.0)[-2:] == b"\x90\x00"
        served.stop()  # the virtual card's connection closes: the card leaves the reader
        with pytest.raises(CardRemoved):
            link.transceive(GET_BALANCE, 1.0)
        assert not link.active
        served.wait_gone()
        with pytest.raises(CardRemoved, match="no card activated"):
            link.transceive(GET_BALANCE, 1.0)
        assert link.activate(0.2) is None


def test_card_leaving_mid_exchange(serve) -> None:
    served = serve(LeavesOn(new_card(), GET_BALANCE[:2]))
    with PcscLink(CARD_READER) as link:
        assert link.activate(10.0) is not None
        assert link.transceive(SELECT_EP, 1.0)[-2:] == b"\x90\x00"
        with pytest.raises(CardRemoved, match=r"answered nothing|removed"):
            link.transceive(GET_BALANCE, 1.0)
        # pcscd sees the card leave; the server puts it back a second later, as a rider tapping again
        wait_reader(CARD_READER, present=False)
        wait_reader(CARD_READER, present=True)
        assert link.activate(10.0) is not None
        assert link.transceive(SELECT_EP, 1.0)[-2:] == b"\x90\x00"
        assert link.transceive(GET_BALANCE, 1.0) == bytes.fromhex("000013889000")
    assert any("left the field in the middle of an exchange" in line for line in served.status)


def test_pcscd_stopping_is_reader_gone_and_the_link_recovers(pcscd, serve) -> None:
    served = serve(new_card())
    with PcscLink(CARD_READER) as link:
        assert link.activate(10.0) is not None
        try:
            pcscd.stop()
            with pytest.raises(ReaderGone, match="SCARD_E_NO_SERVICE"):
                link.transceive(SELECT_EP, 1.0)
            with pytest.raises(ReaderGone, match="pcscd is not running"):
                link.activate(0.2)
        finally:
            if not pcscd.running:
                pcscd.start()
        # the card server reconnects to the new daemon by itself; the link makes a new PC/SC context
        assert link.activate(10.0) is not None
        assert link.transceive(SELECT_EP, 1.0)[-2:] == b"\x90\x00"
    assert any("reconnecting" in line for line in served.status)


def test_deactivate_powers_down_and_new_cards_only_skips_a_resting_card(serve) -> None:
    served = serve(new_card())
    slot = served.card_slot
    with PcscLink(CARD_READER) as link, PcscLink(CARD_READER, new_cards_only=True) as validator_link:
        assert link.activate(10.0) is not None
        assert link.transceive(SELECT_EP, 1.0)[-2:] == b"\x90\x00"
        power_ons = slot.power_ons
        link.deactivate()
        wait_until(lambda: not slot.powered, "the card to be powered down")
        assert link.activate(1.0) is not None  # the same resting card, powered up afresh
        assert slot.power_ons > power_ons
        assert link.transceive(GET_BALANCE, 1.0) == bytes.fromhex("6985")  # fresh: nothing selected
        link.deactivate()

        assert validator_link.activate(1.0) is not None
        validator_link.deactivate()
        assert validator_link.activate(0.5) is None  # still the same card, not a new tap
        served.stop()
        served.wait_gone()
    again = serve(new_card())
    with PcscLink(CARD_READER, new_cards_only=True) as validator_link:
        assert validator_link.activate(10.0) is not None
    assert again.card_slot.apdus == 1  # GET DATA for the UID


def test_t0_psam_answers_by_get_response_through_the_channel(serve) -> None:
    served = serve(None, SimPsam(load_demo_keyset(), bytes.fromhex("200041599997"), t0=True))
    with PcscLink(SAM_READER) as link:
        channel = Channel(link, peer="PSAM")
        assert channel.activate(10.0) == Activation("T=0", atr=DEFAULT_ATR)
        assert channel.t0
        answer = channel.transmit(pc.select_application().to_bytes())
    assert (answer.data, answer.sw) == (bytes.fromhex("6F0483028011"), 0x9000)
    assert list(served.sam_slot.history) == [
        (bytes.fromhex("00A40000028011"), bytes.fromhex("6106")),
        (bytes.fromhex("00C0000006"), bytes.fromhex("6F04830280119000")),
    ]
