"""Reading a card without keys, and making sense of a capture: what the card held as it came, or the exchange that
contradicts the rest.

Real answers come from Trip Reader's card emulator (domosekai/cardemulator, HCEService.kt), which plays back what real
cards of several schemes answer to card readers, and from T-Union Master's card-format notes
(tkerby/flipperzero-firmware-wPlugins, docs/card_data_format.md).
"""

from __future__ import annotations

import pytest

from protocols import card_files as cf
from protocols.hexutil import parse_hex
from protocols.schemes import SHENZHEN_TONG, T_UNION
from sim.issuing import issue_card, load_demo_keyset
from sim.reader import SimReader
from terminal.channel import Channel
from terminal.readout import Captured, CaptureError, interpret, read_card
from terminal.trace import ExchangeLog

# TRIP: a Beijing T-Union card.
BJ_FCI = ("6F318408A000000632010105A5259F0801029F0C1E01011000FFFFFFFF02010310517001017090798420190806204012310000"
          "9000")
BJ_15 = "01011000FFFFFFFF02010310517001017090798420190806204012310000"
BJ_17 = ("0000015610001000000101000000000000000000000000000000000000000000"
         "00000000000000000000000000000000000000000000000000000000")
BJ_18_1 = "001A000000000000A00900003101165220200301002723"
# TRIP: a Shenzhen Tong card, whose FCI and READ BINARY 0x15 disagree in one byte (E63C1D29 and D63C1D29).
SZT_FCI = ("6F3284075041592E535A54A5279F0801029F0C200000000000000000FD44000051800000E63C1D29201712012027120110100000"
           "9000")
SZT_15 = "0000000000000000FD44000051800000D63C1D292017120120271201101000009000"


def captured(*pairs: tuple[str, str | None]) -> list[Captured]:
    return [Captured(f"exchange {n}", parse_hex(command), None if answer is None else parse_hex(answer))
            for n, (command, answer) in enumerate(pairs, 1)]


def test_a_real_t_union_card_as_a_reader_saw_it():
    reading = interpret(captured(
        ("00A4040008A00000063201010500", BJ_FCI),
        ("00B0950000", BJ_15 + "9000"),
        ("00B097000B", BJ_17[:22] + "9000"),  # nfsee reads 11 bytes of 0x17
        ("805C000204", "00000B229000"),
        ("00B201C400", BJ_18_1 + "9000"),
        ("00B202C400", "6A83"),
    ))
    assert reading.scheme is T_UNION and reading.aid == parse_hex("A000000632010105")
    assert reading.serial == parse_hex("03105170010170907984")
    assert reading.files[cf.SFI_PUBLIC_APP_INFO] == parse_hex(BJ_15)
    assert reading.files[cf.SFI_MANAGEMENT] == parse_hex(BJ_17[:22])  # as read, never filled in
    assert reading.balance == 0x0B22 and reading.purchase_init is None
    assert reading.records == {0x18: {1: parse_hex(BJ_18_1)}}
    assert reading.sources["file 15"] == "exchange 1" and reading.sources["balance"] == "exchange 4"


def test_a_capture_that_contradicts_itself_names_the_exchange():
    with pytest.raises(CaptureError, match=r"^exchange 2: file 15 at byte 0 reads .*D63C1D29.*, but exchange 1 "
                                           r"read .*E63C1D29"):
        interpret(captured(("00A40400075041592E535A54", SZT_FCI), ("00B095001C", SZT_15)))


@pytest.mark.parametrize("pairs, message", [
    ([("00A4040008A000000632010105", BJ_FCI), ("805C000204", "00000B229000"),
      ("805003020B0100000000000000000000", "00000B230002000000010000112233 9000")],
     "exchange 3: INITIALIZE says the balance is 2851 fen, but exchange 2 gave 2850"),
    ([("00A4040008A000000632010105", BJ_FCI), ("00B201C400", BJ_18_1 + "9000"), ("00B201C400", "0019" + BJ_18_1[4:]
                                                                                  + "9000")],
     "exchange 3: record 1 of 18 is 0019.*, but exchange 2 gave 001A.*, and the card did not change between them"),
    ([("00A4040008A000000632010105", BJ_FCI),
      ("00A4040008A000000632010105", BJ_FCI.replace("0310517001017090798420", "0310517001017090798520"))],
     (r"exchange 2: another card \(serial 03105170010170907985\) than the one exchange 1 read \(serial "
      r"03105170010170907984\): a capture holds one card")),
    ([("00A4040008A000000632010105", BJ_FCI), ("00B201C400", BJ_18_1 + "9000"),
      ("805003020B0100000000000000000000", "00000B22001A000000010000112233 9000")],
     "exchange 2: record 1 of 0x18 is a purchase with ATC 26, but exchange 3 says the card's counter is 26"),
    ([("00A4040008A000000632010105", BJ_FCI),
      ("805003020B0100000000000000000000", "00000B22001B000000010000112233 9000"),
      ("805003020B0100000000000000000000", "00000B22001C000000010000112233 9000")],
     r"exchange 3: the offline ATC does not follow from exchange 2 \(27 as the card came, 28 now\)"),
])
def test_contradictions(pairs, message):
    with pytest.raises(CaptureError, match=message):
        interpret(captured(*pairs))


def test_a_debit_in_the_capture_moves_what_later_answers_must_say():
    before = "805003020B010000012C200041599997 0F"
    pairs = [("00A4040008A000000632010105", BJ_FCI),
             (before, "00000B22001B000000010000112233 9000"),
             ("805401000F0000005720240101120000AABBCCDD 08", "1122334455667788 9000"),  # debit of 3.00 answered
             ("805C000204", "000009F69000"),  # 2850 - 300
             ("00B201C400", BJ_18_1 + "9000")]
    reading = interpret(captured(*pairs))
    assert reading.balance == 2850 and reading.purchase_init is not None and reading.purchase_init.offline_atc == 27
    assert reading.records == {} and reading.notes == [
        "exchange 5: record 1 of 18 read after the card changed (exchange 3); left out"]
    pairs[3] = ("805C000204", "00000B229000")  # the balance the card had before: the debit is not in it
    with pytest.raises(CaptureError, match=r"^exchange 4: GET BALANCE says 2850 fen, but the card came with 2850 "
                                           r"\(exchange 2\) and -300 fen were committed since: 2550 was due$"):
        interpret(captured(*pairs))


def test_a_torn_debit_leaves_what_follows_unused():
    reading = interpret(captured(("00A4040008A000000632010105", BJ_FCI),
                                 ("805003020B010000012C2000415999970F", "00000B22001B000000010000112233 9000"),
                                 ("805401000F0000005720240101120000AABBCCDD08", None),
                                 ("805C000204", "000009F69000")))
    assert reading.balance == 2850  # the balance after the tear was not taken as the card's
    assert reading.notes[0].startswith("exchange 3: no answer (the exchange failed); whether the card committed it "
                                       "is unknown")


def test_other_schemes_and_answers_outside_the_purse():
    reading = interpret(captured(("00A4040008A000000632010105", "6A82"),
                                 ("00A40000021001", SZT_FCI),
                                 ("805C000204", "800000649000"),
                                 ("00A40000023F00", "9000"),
                                 ("00B0840020", "1000751136141285060200300000000000000000000000002018030920240309"
                                                "9000")))
    assert reading.scheme is SHENZHEN_TONG and reading.balance == 0x80000064
    assert reading.notes == ["exchange 1: the card has no T-Union purse (6A82)",
                             "exchange 5: read outside the purse application; left out"]


def test_read_card_reads_everything_without_keys_and_changes_nothing():
    card = issue_card(load_demo_keyset(), serial="03103640000000000042", balance=5000)
    log = ExchangeLog()
    channel = Channel(SimReader(card, timing=None), tracer=log)
    activation = channel.activate(1.0)
    before = repr(card.image)
    read_card(channel)
    assert repr(card.image) == before  # INITIALIZE opened nothing that stayed
    commands = [e.command.hex().upper() for e in log.exchanges]
    assert commands == ["00A404000E325041592E5359532E444446303100", "00A4040008A00000063201010500",
                        "00B0950000", "00B0960000", "00B0970000", "805C000204", "805C000104",
                        "805001020B01000000000000000000000F", "805000020B010000000100000000000010",
                        "00B201C400", "00B201D400", "00B202D400", "00B203D400", "00B201F400"]
    reading = interpret([Captured(f"exchange {n}", e.command, e.response) for n, e in enumerate(log.exchanges, 1)],
                        [activation])
    assert reading.files == {0x15: card.image.public_info, 0x16: card.image.cardholder, 0x17: card.image.management}
    assert reading.process_records == card.image.process_records and reading.balance == 5000
    assert reading.purchase_init is not None and reading.load_init is not None
    assert (reading.purchase_init.offline_atc, reading.load_init.online_atc) == (0, 0)
    assert reading.activation == activation and reading.notes == []


def test_read_card_without_initialize():
    card = issue_card(load_demo_keyset(), serial="03103640000000000042", balance=5000)
    log = ExchangeLog()
    channel = Channel(SimReader(card, timing=None), tracer=log)
    channel.activate(1.0)
    read_card(channel, initialize=False)
    assert not any(e.command.startswith(b"\x80\x50") for e in log.exchanges)
