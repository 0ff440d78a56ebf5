"""An M1 card behind every simulated reader: the simulated reader (pseudo-APDUs, the PC/SC ATR, the MIFARE timing
model, tears), the emulated PN532 (InListPassiveTarget, MIFARE commands in InDataExchange, a failed AUTH), the vpcd
slot (the storage-card ATR, pseudo-APDUs from pcscd's clients); and the PSAM's M1 commands behind the terminal's
PSAM, against the back office's own computation."""

from __future__ import annotations

import datetime as dt

import pytest

from protocols.hexutil import parse_hex
from protocols.iso14443 import FC_HZ
from protocols.m1.crypto import (
    PURCHASE_MAC_DATA,
    PurchaseMacData,
    auth_code_data,
    purchase_mac,
)
from protocols.mifare import CardSize, KeyType
from protocols.pcsc_mifare import storage_atr
from protocols.psam_commands import M1KeyType
from sim.pn532 import Pn532Chip
from sim.psam import SimPsam
from sim.reader import SimReader, SimSamSlot, Tear
from sim.timing import MifareTiming
from sim.vpcd import VpcdSlot, device_atr
from terminal.channel import Channel
from terminal.errors import CardRemoved, OutOfService
from terminal.keyset import KeyUsage
from terminal.psam import Psam

from .m1_support import KEYSET, UID, key_of, new_m1
from .test_pn532_emulator import Host

H = parse_hex
KEY6 = KEYSET.m1_sector_key(KeyType.A, UID, 6, 1)
PUBLIC = H("0800000000000000FFFFFFFFFFFFFFF7")
ATR_1K = H("3B8F8001804F0CA000000306030001000000006A")


# --- the simulated reader ------------------------------------------------------------------------------------------

def test_the_simulated_reader_serves_pseudo_apdus() -> None:
    card = new_m1()
    reader = SimReader(card)
    activation = reader.activate(1.0)
    assert activation is not None
    assert (activation.protocol, activation.uid, activation.atqa, activation.sak, activation.ats, activation.atr) == (
        "MIFARE", UID, H("0004"), 0x08, None, ATR_1K)
    assert reader.transceive(H("FFCA000000"), 1.0) == UID + H("9000")
    assert reader.transceive(H("FF82000006") + KEY6, 1.0) == H("9000")
    assert reader.transceive(H("FF860000050100186000"), 1.0) == H("9000")
    assert reader.transceive(H("FFB0001810"), 1.0) == PUBLIC + H("9000")
    assert reader.transceive(H("FFB0000410"), 1.0) == H("6300")  # sector 1 is not open


def test_keys_stay_loaded_across_taps_but_authentication_does_not() -> None:
    reader = SimReader(new_m1())
    reader.activate(1.0)
    reader.transceive(H("FF82000106") + KEY6, 1.0)
    reader.transceive(H("FF860000050100186001"), 1.0)
    reader.deactivate()
    reader.activate(1.0)
    assert reader.transceive(H("FFB0001810"), 1.0) == H("6300")  # a new selection: not authenticated
    assert reader.transceive(H("FF860000050100186001"), 1.0) == H("9000")  # the key is still in slot 01
    assert reader.transceive(H("FFB0001810"), 1.0) == PUBLIC + H("9000")


def test_a_failed_authentication_needs_a_new_activation() -> None:
    reader = SimReader(new_m1())
    reader.activate(1.0)
    reader.transceive(H("FF82000006FFFFFFFFFFFF"), 1.0)
    assert reader.transceive(H("FF860000050100186000"), 1.0) == H("6300")
    reader.transceive(H("FF82000006") + KEY6, 1.0)
    assert reader.transceive(H("FF860000050100186000"), 1.0) == H("6300")  # the card is silent
    reader.activate(1.0)
    assert reader.transceive(H("FF860000050100186000"), 1.0) == H("9000")


def test_the_mifare_timing_model() -> None:
    """Each pseudo-APDU priced by its MIFARE commands: 106 kbit/s frames, 9 etu a byte, 6 etu for an ACK, the FDT."""
    reader = SimReader(new_m1())
    reader.activate(1.0)
    etu, fdt = 128 / FC_HZ * 1e6, 1172 / FC_HZ * 1e6

    def reader_frame(n: int) -> float:
        return (3 + 9 * n) * etu + fdt

    def card_frame(n: int) -> float:
        return (2 + 9 * n) * etu + fdt

    ack = 6 * etu + fdt
    reader.transceive(H("FF82000006") + KEY6, 1.0)
    assert reader.last_model is not None and reader.last_model.total_us == 0  # never reaches the card
    reader.transceive(H("FF860000050100186000"), 1.0)
    assert reader.last_model.line_us == pytest.approx(reader_frame(4) + card_frame(4) + reader_frame(8) + card_frame(4))
    assert reader.last_model.device_us == 100.0
    reader.transceive(H("FFB0001810"), 1.0)
    assert reader.last_model.line_us == pytest.approx(reader_frame(4) + card_frame(18))
    reader.transceive(H("FFD6001A10") + bytes(16), 1.0)
    assert reader.last_model.line_us == pytest.approx(reader_frame(4) + ack + reader_frame(18) + ack)
    assert reader.last_model.device_us == 2500.0
    reader.transceive(H("FF82000006") + key_of(reader.device, 2), 1.0)  # type: ignore[arg-type]
    reader.transceive(H("FF860000050100086000"), 1.0)
    reader.transceive(H("FFD700090502000000C8"), 1.0)  # DECREMENT, operand, wait; TRANSFER
    assert reader.last_model.line_us == pytest.approx(reader_frame(4) + ack + reader_frame(6) + 1000 + reader_frame(4)
                                                      + ack)
    assert reader.last_model.device_us == 2500.0
    assert reader.activation_model is not None and reader.activation_model.line_us > 0
    slow = SimReader(new_m1(), mifare_timing=MifareTiming(eeprom_write_us=4000))
    slow.activate(1.0)
    slow.transceive(H("FF82000006") + KEY6, 1.0)
    slow.transceive(H("FF860000050100186000"), 1.0)
    slow.transceive(H("FFD6001A10") + bytes(16), 1.0)
    assert slow.last_model is not None and slow.last_model.device_us == 4000


def test_tears_between_pseudo_apdus() -> None:
    card = new_m1()
    reader = SimReader(card, tears=[Tear.after("FFD6001A"), Tear.before("FFD6001A")])  # counted per activation
    reader.activate(1.0)
    reader.transceive(H("FF82000006") + KEY6, 1.0)
    reader.transceive(H("FF860000050100186000"), 1.0)
    with pytest.raises(CardRemoved):
        reader.transceive(H("FFD6001A10") + H("11") * 16, 1.0)
    assert card.image.block(26) == H("11") * 16  # written, the answer lost
    assert reader.torn[0].response == H("9000") and reader.last_model is not None
    reader.put_back()
    reader.activate(1.0)
    reader.transceive(H("FF860000050100186000"), 1.0)
    with pytest.raises(CardRemoved):
        reader.transceive(H("FFD6001A10") + H("22") * 16, 1.0)
    assert card.image.block(26) == H("11") * 16  # never reached the card


# --- the emulated PN532 ------------------------------------------------------------------------------------------

def test_the_pn532_lists_an_m1_card_and_carries_mifare_commands() -> None:
    card = new_m1()
    host = Host(Pn532Chip(card))
    assert host.answer("4A0100") == H("4B01 01 0004 08 04") + UID
    key = KEY6.hex()
    assert host.answer("40016018" + key + UID.hex()) == H("4100")  # AUTH: status 00, no data
    assert host.answer("40013018") == H("4100") + PUBLIC  # READ: the 16 bytes
    assert host.answer("4001A01A" + "33" * 16) == H("4100")  # WRITE
    assert card.image.block(26) == H("33") * 16
    assert host.answer("4001C01A01000000") == H("4105")  # a NAK: block 26 is not a value block
    assert host.answer("40016118" + "00" * 6 + UID.hex()) == H("4114")  # AUTH failed
    assert host.answer("40013018") == H("4101")  # the card is silent now
    assert host.answer("4A0100") == H("4B01 01 0004 08 04") + UID  # and listed again, awake


def test_the_pn532_value_operations() -> None:
    card = new_m1()
    host = Host(Pn532Chip(card))
    host.answer("4A0100")
    host.answer("40016008" + key_of(card, 2).hex() + UID.hex())
    assert host.answer("4001C009C8000000") == H("4100")
    assert host.answer("4001B009") == H("4100")
    assert card.balance == 9800


def test_a_rats_to_a_classic_times_out_and_the_card_is_listed_again() -> None:
    host = Host(Pn532Chip(new_m1()))
    host.answer("4A0100")
    assert host.answer("4201E050") == H("4301")
    assert host.answer("40013000") == H("4127")  # no target any more
    assert host.answer("4A0100")[:3] == H("4B0101")


# --- vpcd -------------------------------------------------------------------------------------------------------

def test_vpcd_shows_the_storage_atr_and_serves_pseudo_apdus() -> None:
    card = new_m1()
    assert device_atr(card) == (ATR_1K, None)
    slot = VpcdSlot(card, 35963)
    assert slot.atr == ATR_1K and slot.uid is None
    assert slot.answer(b"\x01") is None  # power on
    assert slot.answer(H("FFCA000000")) == UID + H("9000")
    assert slot.answer(H("FF82000006") + KEY6) == H("9000")
    assert slot.answer(H("FF860000050100186000")) == H("9000")
    assert slot.answer(H("FFB0001810")) == PUBLIC + H("9000")
    assert slot.answer(b"\x02") is None  # reset: authentication gone, keys kept
    assert slot.answer(H("FFB0001810")) == H("6300")
    assert slot.answer(H("FF860000050100186000")) == H("9000")
    assert slot.answer(H("00A4040008A000000632010105")) == H("6E00")  # an ISO APDU to a Classic
    assert VpcdSlot(new_m1(size=CardSize.K4), 35963).atr == storage_atr(0x18)


# --- the PSAM -------------------------------------------------------------------------------------------------

@pytest.fixture
def psam() -> Psam:
    started = Psam(Channel(SimSamSlot(SimPsam(KEYSET, H("200041599997"), t0=True)), peer="sam", t0=True))
    started.start()
    return started


def test_m1_sector_keys_from_the_psam(psam: Psam) -> None:
    card = new_m1()
    keys = psam.m1_sector_keys(UID, (0, 1, 2, 3, 6), key_version=1)
    assert keys == {0: H("A0A1A2A3A4A5"), 1: H("2CF09352D53C"), 2: H("1F734F80A0B0"), 3: H("CAC555B3384B"),
                    6: H("A0CC66A61978")}
    assert all(keys[sector] == key_of(card, sector) for sector in keys)
    keys_b = psam.m1_sector_keys(UID, (1, 2), key_version=1, key_type=M1KeyType.B)
    assert keys_b == {1: key_of(card, 1, KeyType.B), 2: key_of(card, 2, KeyType.B)}
    with pytest.raises(Exception, match="6A88"):
        psam.m1_sector_keys(UID, (2,), key_version=7)  # the key set has no version 07 masters


def test_m1_sector_keys_need_the_application_selected() -> None:
    sam = SimPsam(KEYSET, H("200041599997"))
    sam.power_on()
    assert sam.execute(H("80FC010105 40C2AB5C 02")) == H("6985")
    sam.execute(H("00A40000028011"))
    assert sam.execute(H("80FC01010540C2AB5C02")) == H("1F734F80A0B09000")


def test_the_auth_code_and_the_transaction_mac_from_the_psam() -> None:
    card = new_m1()
    image = card.image
    sam = SimPsam(KEYSET, H("200041599997"), t0=True, tsn=0x57)
    psam = Psam(Channel(SimSamSlot(sam), peer="sam", t0=True))
    psam.start()
    data = auth_code_data(UID, image.block(4), image.block(5))
    assert psam.m1_auth_code(card.serial, 1, data) == image.block(4)[8:12] == H("BE2F4CD5")
    when = dt.datetime(2025, 3, 14, 8, 30)
    mac_data = PURCHASE_MAC_DATA.build(PurchaseMacData(card.serial, UID, 1, 10000, 200, 0x06, psam.terminal_id, 0x57,
                                                       when))
    back_office = purchase_mac(KEYSET.m1_card_key(KeyUsage.M1_TAC, 1, card.serial), mac_data)
    debit = {"key_version": 1, "card_number": card.serial, "uid": UID, "counter": 1, "balance_before": 10000,
             "amount": 200, "transaction_type": 0x06, "when": when}
    assert psam.m1_purchase_mac(**debit) == (0x57, back_office) == (0x57, H("B67AFE80"))
    # the PSAM counts its one serial for M1 debits and CPU purchases alike
    assert psam.m1_purchase_mac(**debit)[0] == 0x58 and sam.tsn == 0x59
    fresh = SimPsam(KEYSET, H("200041599997"))
    fresh.power_on()  # the purchase application not selected
    assert fresh.execute(H("807C00011E 3640000100000042 40C2AB5C 0001 00002710 000000C8 06 20250314083000")) == \
        H("6985")


def test_a_psam_without_m1_masters() -> None:
    from terminal.keyset import Keyset

    keys = {(usage, 1): bytes(16) for usage in (KeyUsage.PURCHASE, KeyUsage.TAC)}
    bare = Keyset(algorithm=KEYSET.algorithm, levels=2, keys=keys, test_only=True)
    psam = Psam(Channel(SimSamSlot(SimPsam(bare, H("200041599997"))), peer="sam"))
    psam.start()
    with pytest.raises(Exception, match="6A88"):
        psam.m1_purchase_mac(key_version=1, card_number=H("3640000100000042"), uid=UID, counter=1,
                             balance_before=100, amount=1, transaction_type=6, when=dt.datetime(2025, 1, 1))
    with pytest.raises(OutOfService):
        Psam(Channel(SimSamSlot(None), peer="sam")).start()


# --- no key in a log ------------------------------------------------------------------------------------------------

def test_keys_are_left_out_of_what_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    from protocols.mifare import without_key as auth_without_key
    from protocols.pcsc_mifare import without_key

    assert without_key(H("FF82000006") + KEY6) == H("FF82000006 000000000000")
    assert without_key(H("FFB0001810")) == H("FFB0001810")
    assert auth_without_key(H("6018") + KEY6 + UID) == H("6018 000000000000") + UID
    assert auth_without_key(H("3018")) == H("3018")
    seen: list[bytes] = []
    slot = VpcdSlot(new_m1(), 35963, on_exchange=lambda name, command, response: seen.append(command))
    slot.answer(H("FF82000006") + KEY6)
    assert seen == [H("FF82000006000000000000")] and slot.history[0][0] == H("FF82000006") + KEY6
    host = Host(Pn532Chip(new_m1()))
    with caplog.at_level("DEBUG", logger="sim.pn532"):
        host.answer("4A0100")
        host.answer("40016018" + KEY6.hex() + UID.hex())
    assert KEY6.hex().upper() not in caplog.text and "40016018000000000000" + UID.hex().upper() in caplog.text
