"""PC/SC storage-card pseudo-APDUs for MIFARE Classic: the ACR122U API's examples both ways, the reader's refusals
with their status words, and exactly which MIFARE commands each pseudo-APDU becomes and what it answers."""

from __future__ import annotations

import pytest

from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex
from protocols.mifare import ACK, Nak
from protocols.pcsc_mifare import (
    GeneralAuthenticate,
    GetData,
    LegacyAuthenticate,
    LoadKey,
    MifareBridge,
    ReadBlock,
    ReadValueBlock,
    RestoreValueBlock,
    UpdateBlock,
    ValueBlockOperation,
    ValueOp,
    is_storage_atr,
    parse_storage_command,
    storage_atr,
)

H = parse_hex
UID = H("40C2AB5C")
KEY = H("A0CC66A61978")
BLOCK = bytes(range(16))
VALUE_200 = H("C8000000 37FFFFFF C8000000 09F609F6")

VECTORS = [
    # the ACR122U API's examples
    (GetData(), "FFCA000000"),
    (LoadKey(0, 0, b"\xff" * 6), "FF82000006FFFFFFFFFFFF"),
    (GeneralAuthenticate(4, 0x60, 0), "FF860000050100046000"),
    (LegacyAuthenticate(4, 0x60, 0), "FF8800046000"),
    (ValueBlockOperation(5, ValueOp.STORE, 1), "FFD7000505 00 00000001"),
    (ValueBlockOperation(5, ValueOp.INCREMENT, 5), "FFD7000505 01 00000005"),
    (RestoreValueBlock(5, 6), "FFD70005020306"),
    (ReadValueBlock(5), "FFB1000504"),
    # and the M1 purse's own
    (ReadBlock(24), "FFB0001810"),
    (UpdateBlock(12, BLOCK), "FFD6000C10 000102030405060708090A0B0C0D0E0F"),
    (ValueBlockOperation(9, ValueOp.DECREMENT, 200), "FFD7000905 02 000000C8"),
    (ValueBlockOperation(9, ValueOp.STORE, -4), "FFD7000905 00 FFFFFFFC"),
    (GeneralAuthenticate(8, 0x61, 1), "FF860000050100086101"),
]


@pytest.mark.parametrize("command,text", VECTORS, ids=[text.replace(" ", "")[:14] for _, text in VECTORS])
def test_pseudo_apdus_both_ways(command, text: str) -> None:
    assert command.to_bytes() == H(text)
    assert parse_storage_command(H(text)) == command


REFUSED = [
    ("FFB000", 0x6700),  # shorter than a header
    ("00B0001810", 0x6E00),  # an ISO class: a Classic takes none
    ("FF20000000", 0x6A81),  # VERIFY: not a storage command of this reader
    ("FFB0001810 00", 0x6700),
    ("FFD6000C0F" + "00" * 15, 0x6700),
    ("FFD7000904 0200000000", 0x6A81),  # FF D7 with an Lc neither 05 nor 02
]


@pytest.mark.parametrize("text,sw", REFUSED)
def test_refusals_carry_the_reader_status_word(text: str, sw: int) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_storage_command(H(text))
    assert caught.value.sw == sw


def test_storage_atr_of_the_pcsc_part_3_examples() -> None:
    assert storage_atr(0x08) == H("3B8F8001804F0CA000000306 03 0001 00000000 6A")
    assert storage_atr(0x18) == H("3B8F8001804F0CA000000306 03 0002 00000000 69")
    assert storage_atr(0x09)[13:15] == H("0026")  # MIFARE Mini
    assert storage_atr(0x28) == storage_atr(0x08)  # a smart card emulating a 1K
    assert all(is_storage_atr(storage_atr(sak)) for sak in (0x08, 0x18, 0x09))
    assert not is_storage_atr(H("3B8180018080"))  # an ISO 14443-4 card's contactless ATR
    with pytest.raises(ProtocolError):
        storage_atr(0x20)


class FakeCard:
    """Records the MIFARE commands it gets and answers from a script (ACK when the script runs out)."""

    def __init__(self, *answers: bytes) -> None:
        self.answers = list(answers)
        self.commands: list[bytes] = []

    def __call__(self, command: bytes) -> bytes:
        self.commands.append(command)
        return self.answers.pop(0) if self.answers else ACK


def run(bridge: MifareBridge, apdu: str, *answers: bytes) -> tuple[bytes, list[str]]:
    card = FakeCard(*answers)
    response = bridge.execute(H(apdu), card)
    return response, [command.hex().upper() for command in card.commands]


@pytest.fixture
def bridge() -> MifareBridge:
    reader = MifareBridge()
    reader.select(UID)
    return reader


def test_get_data(bridge: MifareBridge) -> None:
    assert run(bridge, "FFCA000000") == (UID + H("9000"), [])
    assert run(bridge, "FFCA000004") == (UID + H("9000"), [])
    assert run(bridge, "FFCA000002") == (H("6C04"), [])
    assert run(bridge, "FFCA000008") == (UID + H("6282"), [])
    assert run(bridge, "FFCA010000") == (H("6A81"), [])  # a Classic has no ATS
    assert run(MifareBridge(), "FFCA000000") == (H("6A81"), [])  # no card selected


def test_authentication_with_a_loaded_key(bridge: MifareBridge) -> None:
    assert run(bridge, "FF860000050100186000") == (H("6300"), [])  # no key in slot 0 yet
    assert run(bridge, "FF82000006" + KEY.hex()) == (H("9000"), [])
    assert run(bridge, "FF860000050100186000") == (H("9000"), ["6018" + KEY.hex().upper() + "40C2AB5C"])
    assert run(bridge, "FF8800186100") == (H("9000"), ["6118" + KEY.hex().upper() + "40C2AB5C"])
    assert run(bridge, "FF860000050100186000", b"") == (H("6300"), ["6018" + KEY.hex().upper() + "40C2AB5C"])
    assert run(bridge, "FF860000050100186200") == (H("6300"), [])  # key type 62
    assert run(bridge, "FF860000050100186002") == (H("6300"), [])  # key slot 02 does not exist
    assert run(bridge, "FF82200006" + KEY.hex()) == (H("6300"), [])  # non-volatile structure: not on this reader
    assert run(bridge, "FF82000206" + KEY.hex()) == (H("6300"), [])


def test_seven_byte_uid_authenticates_with_its_last_four_bytes() -> None:
    reader = MifareBridge()
    reader.select(H("04112233445566"))
    run(reader, "FF82000106" + KEY.hex())
    assert run(reader, "FF860000050100046001")[1] == ["6004" + KEY.hex().upper() + "33445566"]


def test_read_and_write(bridge: MifareBridge) -> None:
    assert run(bridge, "FFB0001810", BLOCK) == (BLOCK + H("9000"), ["3018"])
    assert run(bridge, "FFB0001800", BLOCK) == (BLOCK + H("9000"), ["3018"])
    assert run(bridge, "FFB0001804") == (H("6C10"), [])
    assert run(bridge, "FFB0001810", bytes((Nak.INVALID_OPERATION_NO_BUFFER,))) == (H("6300"), ["3018"])
    assert run(bridge, "FFB0001810", b"") == (H("6300"), ["3018"])
    write = "FFD6000C10" + BLOCK.hex()
    assert run(bridge, write) == (H("9000"), ["A00C" + BLOCK.hex().upper()])
    assert run(bridge, write, b"\x04") == (H("6300"), ["A00C" + BLOCK.hex().upper()])


def test_value_operations(bridge: MifareBridge) -> None:
    assert run(bridge, "FFD700090502000000C8") == (H("9000"), ["C009C8000000", "B009"])
    assert run(bridge, "FFD70009050100000005") == (H("9000"), ["C10905000000", "B009"])
    assert run(bridge, "FFD7000902030A") == (H("9000"), ["C20900000000", "B00A"])
    assert run(bridge, "FFD700090500000000C8") == (H("9000"), ["A009" + VALUE_200.hex().upper()])
    assert run(bridge, "FFD700090502000000C8", b"\x04") == (H("6300"), ["C009C8000000"])  # no TRANSFER after a NAK
    assert run(bridge, "FFD700090502000000C8", ACK, b"\x00") == (H("6300"), ["C009C8000000", "B009"])
    assert run(bridge, "FFD7000905 02 FFFFFFFF") == (H("6300"), [])  # a negative operand
    assert run(bridge, "FFD7000905 07 00000001") == (H("6300"), [])


def test_read_value(bridge: MifareBridge) -> None:
    assert run(bridge, "FFB1000904", VALUE_200) == (H("000000C8 9000"), ["3009"])
    assert run(bridge, "FFB1000900", H("FCFFFFFF 03000000 FCFFFFFF 09F609F6")) == (H("FFFFFFFC 9000"), ["3009"])
    assert run(bridge, "FFB1000904", BLOCK) == (H("6300"), ["3009"])  # not a value block
    assert run(bridge, "FFB1000910") == (H("6C04"), [])


def test_keys_stay_in_the_reader_between_cards(bridge: MifareBridge) -> None:
    run(bridge, "FF82000106" + KEY.hex())
    bridge.select(H("01020304"))
    assert run(bridge, "FF860000050100046101")[1] == ["6104" + KEY.hex().upper() + "01020304"]
