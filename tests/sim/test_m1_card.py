"""The simulated MIFARE Classic: authentication per sector and key, the access bits of every kind of block, trailers,
value blocks and the transfer buffer, silence after a failed AUTH, power-on; and the issued demo card's bytes."""

from __future__ import annotations

import pytest

from protocols.hexutil import parse_hex
from protocols.m1.layout import DIRECTORY, public_info
from protocols.mifare import (
    ACK,
    NO_ANSWER,
    AccessConditions,
    CardSize,
    KeyType,
    Nak,
    Read,
    Transfer,
    ValueBlock,
    ValueCommand,
    ValueOperation,
    Write,
)
from sim.card.m1_card import M1Card, M1Image

from .m1_support import UID, authenticate, key_of, new_m1

H = parse_hex
NAK_NO_BUFFER = bytes((Nak.INVALID_OPERATION_NO_BUFFER,))
NAK_BUFFER = bytes((Nak.INVALID_OPERATION,))
DATA = bytes(range(16))


def read(card: M1Card, block: int) -> bytes:
    return card.execute(Read(block).to_bytes())


def write(card: M1Card, block: int, data: bytes = DATA) -> bytes:
    return card.execute(Write(block, data).to_bytes())


def value(card: M1Card, operation: ValueOperation, block: int, operand: int = 0) -> bytes:
    return card.execute(ValueCommand(operation, block, operand).to_bytes())


def transfer(card: M1Card, block: int) -> bytes:
    return card.execute(Transfer(block).to_bytes())


@pytest.fixture
def card() -> M1Card:
    issued = new_m1()
    issued.power_on()
    return issued


def test_the_issued_demo_card_byte_for_byte() -> None:
    image = new_m1().image
    assert (image.uid, image.atqa, image.sak, image.size) == (UID, H("0004"), 0x08, CardSize.K1)
    expected = {
        0: "40C2AB5C 75 08 0400 594B542D53494D31",  # UID, BCC, SAK, ATQA low byte first, manufacturer data
        1: DIRECTORY.hex(),
        3: "A0A1A2A3A4A5 787788 69 E2C2F60F4CF4",
        4: "3640 0001 00000042 BE2F4CD5 02 01 01 00",
        5: "20200101 20200101 20401231 0000 0000",
        7: "2CF09352D53C 787788 69 88D83BBEB420",
        8: "0001 002710 20200101000000 00000000",  # issued with its balance: one load
        9: "10270000 EFD8FFFF 10270000 09F609F6",
        10: "10270000 EFD8FFFF 10270000 09F609F6",
        11: "1F734F80A0B0 18778E 69 30453F8C6D9F",
        12: "00" * 16,
        24: "08 0000 00 0000 00 00 FFFFFFFFFFFFFF F7",
        25: "08 0000 00 0000 00 00 FFFFFFFFFFFFFF F7",
        27: "A0CC66A61978 7F0788 69 45D18824ED0C",
    }
    for number, text in expected.items():
        assert image.block(number) == H(text), f"block {number}"


def test_a_4k_card_with_a_seven_byte_uid() -> None:
    image = new_m1(size=CardSize.K4, uid=H("04112233445566")).image
    assert (image.atqa, image.sak, len(image.memory)) == (H("0042"), 0x18, 4096)
    assert image.block(0) == H("04112233445566 18 4200 594B542D5349")
    assert image.block(255)[6:10] == H("78778869")  # the last sector's trailer (16-block sector 39)


def test_authentication_opens_one_sector(card: M1Card) -> None:
    assert authenticate(card, 4) == ACK
    assert card.authenticated == (1, KeyType.A)
    assert read(card, 4) == card.image.block(4)
    assert read(card, 8) == NAK_NO_BUFFER  # another sector
    assert authenticate(card, 10, KeyType.B) == ACK  # any block of the sector, any key
    assert card.authenticated == (2, KeyType.B)
    assert read(card, 4) == NAK_NO_BUFFER


def test_no_command_before_authentication(card: M1Card) -> None:
    assert read(card, 1) == NAK_NO_BUFFER
    assert write(card, 4) == NAK_NO_BUFFER


def test_a_failed_authentication_silences_the_card_until_power_on(card: M1Card) -> None:
    assert authenticate(card, 4, key=b"\xff" * 6) == NO_ANSWER
    assert authenticate(card, 4) == NO_ANSWER  # even the right key: the card is not listening
    assert read(card, 4) == NO_ANSWER
    card.power_on()
    assert authenticate(card, 4) == ACK


def test_authentication_checks_the_uid_and_the_block(card: M1Card) -> None:
    from protocols.mifare import Authenticate

    assert card.execute(Authenticate(KeyType.A, 4, key_of(card, 1), H("01020304")).to_bytes()) == NO_ANSWER
    card.power_on()
    assert card.execute(Authenticate(KeyType.A, 64, key_of(card, 1), UID).to_bytes()) == NO_ANSWER  # past a 1K


def test_power_on_loses_authentication_and_the_transfer_buffer(card: M1Card) -> None:
    authenticate(card, 8)
    assert value(card, ValueOperation.DECREMENT, 9, 1) == ACK
    card.power_on()
    assert card.authenticated is None
    authenticate(card, 8)
    assert transfer(card, 9) == NAK_NO_BUFFER


def test_a_card_that_is_not_selected_does_not_answer() -> None:
    assert new_m1().execute(Read(0).to_bytes()) == NO_ANSWER


def test_issuance_sector_read_with_either_key_written_with_key_b_only(card: M1Card) -> None:
    authenticate(card, 4, KeyType.A)
    assert write(card, 4) == NAK_NO_BUFFER
    authenticate(card, 4, KeyType.B)
    assert read(card, 5) == card.image.block(5)
    assert write(card, 6) == ACK and card.image.block(6) == DATA


def test_block_0_is_never_written(card: M1Card) -> None:
    authenticate(card, 0, KeyType.B)
    before = card.image.block(0)
    assert write(card, 0) == NAK_NO_BUFFER
    assert card.image.block(0) == before


def test_record_sectors_are_written_with_key_a(card: M1Card) -> None:
    authenticate(card, 12, KeyType.A)
    assert write(card, 13) == ACK and read(card, 13) == DATA


def test_trailer_reads_hide_key_a_and_key_b(card: M1Card) -> None:
    authenticate(card, 27, KeyType.A)
    assert read(card, 27) == bytes(6) + H("7F078869") + bytes(6)


def test_trailer_writes_change_only_what_the_key_may(card: M1Card) -> None:
    authenticate(card, 27, KeyType.A)
    assert write(card, 27, H("111111111111 FF0780 69 222222222222")) == NAK_NO_BUFFER  # key A may write nothing
    authenticate(card, 27, KeyType.B)
    new = H("111111111111 7F0788 42 222222222222")
    assert write(card, 27, new) == ACK and card.image.block(27) == new
    assert write(card, 27, H("111111111111 FFFFFF 69 222222222222")) == NAK_NO_BUFFER  # malformed access bits
    assert card.image.block(27) == new


def test_trailer_condition_010_lets_nothing_be_written() -> None:
    card = new_m1()
    trailer = bytearray(card.image.block(27))
    trailer[6:9] = AccessConditions((0, 0, 0, 0b010)).to_bytes()  # key B readable, everything read-only
    card.image.set_block(27, bytes(trailer))
    card.power_on()
    authenticate(card, 27, KeyType.A)
    assert read(card, 27)[10:] == trailer[10:]  # key B is readable: it is data
    assert write(card, 27, bytes(trailer)) == NAK_NO_BUFFER
    authenticate(card, 24, KeyType.B)  # key B authenticates, but a readable key B grants nothing
    assert read(card, 24) == NAK_NO_BUFFER


def test_the_purse_debited_with_key_a_and_topped_up_only_with_key_b(card: M1Card) -> None:
    authenticate(card, 8, KeyType.A)
    assert value(card, ValueOperation.DECREMENT, 9, 200) == ACK
    assert transfer(card, 9) == ACK
    assert card.image.block(9) == ValueBlock(9800, 9).to_bytes()
    assert value(card, ValueOperation.RESTORE, 9) == ACK and transfer(card, 10) == ACK
    assert card.image.block(10) == H("48260000 B7D9FFFF 48260000 09F609F6")  # the copy keeps address 09
    assert value(card, ValueOperation.INCREMENT, 9, 100) == NAK_NO_BUFFER
    assert write(card, 9, ValueBlock(99999, 9).to_bytes()) == NAK_NO_BUFFER
    authenticate(card, 8, KeyType.B)
    assert value(card, ValueOperation.INCREMENT, 9, 100) == ACK and transfer(card, 9) == ACK
    assert ValueBlock.parse(card.image.block(9)).value == 9900


def test_value_operations_need_a_value_block(card: M1Card) -> None:
    authenticate(card, 12)
    assert value(card, ValueOperation.DECREMENT, 12, 1) == NAK_NO_BUFFER  # a zero block is not a value block
    assert value(card, ValueOperation.DECREMENT, 15, 1) == NAK_NO_BUFFER  # nor a trailer
    write(card, 13, ValueBlock(5, 13).to_bytes())
    assert value(card, ValueOperation.DECREMENT, 13, 10) == ACK
    assert transfer(card, 12) == ACK
    assert card.image.block(12) == ValueBlock(-5, 13).to_bytes()  # signed, and the source's address


def test_the_transfer_buffer(card: M1Card) -> None:
    authenticate(card, 8)
    assert transfer(card, 9) == NAK_NO_BUFFER
    value(card, ValueOperation.DECREMENT, 9, 1)
    assert transfer(card, 8) == NAK_BUFFER  # block 8 is not decrement-writable: refused, buffer still valid
    assert transfer(card, 11) == NAK_BUFFER  # nor is the trailer
    assert read(card, 9) == card.image.block(9)  # nothing written yet
    assert transfer(card, 10) == ACK and transfer(card, 9) == ACK  # the buffer lasts until the next value command
    assert ValueBlock.parse(card.image.block(10)).value == 9999
    authenticate(card, 8)
    assert transfer(card, 9) == NAK_NO_BUFFER  # a new AUTH empties it


def test_value_overflow_is_refused(card: M1Card) -> None:
    authenticate(card, 8, KeyType.B)
    assert value(card, ValueOperation.INCREMENT, 9, 0x7FFF_FFFF) == NAK_NO_BUFFER
    assert value(card, ValueOperation.DECREMENT, 9, 10000) == ACK and transfer(card, 9) == ACK  # zero
    assert value(card, ValueOperation.DECREMENT, 9, 0x8000_0000) == ACK  # down to the least signed value
    assert value(card, ValueOperation.DECREMENT, 9, 0x8000_0001) == NAK_NO_BUFFER


def test_sixteen_block_sectors_of_a_4k() -> None:
    card = new_m1(size=CardSize.K4)
    card.power_on()
    assert authenticate(card, 200) == ACK  # sector 36: blocks 192..207
    assert card.authenticated == (36, KeyType.A)
    assert read(card, 192) == bytes(16) and read(card, 207) == bytes(6) + H("78778869") + bytes(6)
    assert read(card, 208) == NAK_NO_BUFFER


def test_garbage_gets_a_nak(card: M1Card) -> None:
    assert card.execute(H("5000")) == NAK_NO_BUFFER  # HLTA is not a data command here
    assert card.execute(H("30")) == NAK_NO_BUFFER
    assert card.internal_errors == 0


def test_purse_views(card: M1Card) -> None:
    assert card.serial == H("3640000100000042") and card.balance == 10000
    card.image.set_block(9, bytes(16))
    assert card.balance is None


def test_image_rules() -> None:
    with pytest.raises(Exception, match="1024 or 4096"):
        M1Image(UID, H("0004"), 8, bytearray(100))
    with pytest.raises(Exception, match="4- or 7-byte UID"):
        M1Image(bytes(10), H("0004"), 8, bytearray(1024))
    image = new_m1().image
    with pytest.raises(Exception, match="do not make a block"):
        image.set_block(64, bytes(16))
    with pytest.raises(Exception, match="do not make a block"):
        image.set_block(1, bytes(15))
    assert public_info(8, 0, 0) == image.block(24)
