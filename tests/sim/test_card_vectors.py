"""The simulated card and PSAM driven with the protocols codecs reproduce the spec's vectors (§3.5) byte for byte:
BLOG-P's purchase, BLOG-L's load, the two-level end-to-end example (SK, MAC1, MAC2, TAC) as a complete composite
purchase, and the line-protection MAC of APPLICATION BLOCK."""

from __future__ import annotations

import datetime as dt

from protocols import card_commands as cc
from protocols import psam_commands as pc
from protocols.card_files import BUS_PROCESS_RECORD, TRANSACTION_LOG_RECORD, TRANSIT_RECORD, TransactionLogRecord
from protocols.crypto import Algorithm, TdesKey, line_protection_mac, purchase_session_key
from protocols.hexutil import parse_hex as h
from sim.card import KeySlot, PurseState, SimCard
from sim.issuing import personalise

from .card_support import SELECT_EP, TERMINAL, call, e2e_card, e2e_psam, fixed_random, sw

BLOG_KEY = h("11223344556677888877665544332211")  # BLOG-P's DPK, BLOG-L's DLK
BLOG_TAC_KEY = h("00112233445566778899AABBCCDDEEFF")  # BLOG-P: L xor R = 8888888888888888
BLOG_TERMINAL = h("001122334455")
BUS_RECORD = h(BUS_PROCESS_RECORD.examples[0][0])  # a real 0x1A bus record (Zibo validator source)
TRANSIT = h(TRANSIT_RECORD.examples[0][0])  # a real 0x1E record (Shenzhen UWB gate tool)


def blog_card(*, keys: dict[int, KeySlot], balance: int = 0, passbook: PurseState | None = None) -> SimCard:
    image = personalise(issuer_id=h("02403640FFFFFFFF"), serial="03104991585000011383", algorithm=Algorithm.TDES,
                        keys=keys, balance=balance, passbook=passbook)
    card = SimCard(image, randbytes=fixed_random())
    card.power_on()
    assert sw(card, SELECT_EP) == 0x9000
    return card


def test_blog_p_purchase() -> None:
    # BLOG-P's card answers balance 0; a card that refuses amounts above balance + overdraft (9401) needs 0x1000 fen to
    # be debited 0x1000. The session key, MAC1, MAC2 and TAC depend on none of that.
    card = blog_card(keys={1: KeySlot(1, purchase=TdesKey(BLOG_KEY), tac=TdesKey(BLOG_TAC_KEY))}, balance=0x1000)
    init = card.execute(h("805001020B 01 00001000 001122334455 0F"))
    assert init == h("00001000 0000 000000 01 00 11223344 9000")
    assert purchase_session_key(TdesKey(BLOG_KEY), h("11223344"), 0, 1).export() == h("003238ABC57659DD")
    # MAC1 F15CAB75 over 00001000 06 001122334455 20120229135100, TSN 00000001: TAC ‖ MAC2 56988A13
    assert card.execute(h("805401000F 00000001 20120229135100 F15CAB75 08")) == h("B3A0D49C 56988A13 9000")
    assert card.balance == 0 and card.image.purse.offline_atc == 1
    assert card.image.transaction_log == [h("0000 000000 00001000 06 001122334455 20120229 135100")]
    assert card.execute(h("805A000602 0001 08")) == h("56988A13 B3A0D49C 9000")


def test_blog_p_balance_zero_is_insufficient() -> None:
    card = blog_card(keys={1: KeySlot(1, purchase=TdesKey(BLOG_KEY), tac=TdesKey(BLOG_TAC_KEY))})
    assert card.execute(h("805001020B 01 00001000 001122334455 0F")) == h("9401")


def test_blog_l_load_on_the_passbook() -> None:
    # BLOG-L loads the passbook (P2 01, type 01) with key index 01 answering key version 02.
    card = blog_card(keys={1: KeySlot(2, load=TdesKey(BLOG_KEY), tac=TdesKey(BLOG_TAC_KEY))}, passbook=PurseState())
    assert card.execute(h("805000010B 01 00001000 001122334455 10")) == h("00000000 0000 02 00 11223344 2988AE5A 9000")
    # CREDIT_RESPONSE's example: the FM TAC layout with BLOG-P's TAC key (self-computed)
    assert card.execute(h("805200000B 20111221 214822 3A845BF0 04")) == h("6314E5F5 9000")
    assert card.image.passbook == PurseState(0x1000, 0, 0, 1)
    assert card.image.purse == PurseState()
    assert card.execute(h("805C000104")) == h("00001000 9000")
    assert card.image.transaction_log == [h("0000 000000 00001000 01 001122334455 20111221 214822")]
    assert card.execute(h("805A000102 0001 08")) == h("3A845BF0 6314E5F5 9000")


def test_blog_l_wrong_mac2_is_refused() -> None:
    card = blog_card(keys={1: KeySlot(2, load=TdesKey(BLOG_KEY), tac=TdesKey(BLOG_TAC_KEY))}, passbook=PurseState())
    card.execute(h("805000010B 01 00001000 001122334455 10"))
    assert card.execute(h("805200000B 20111221 214822 3A845BF1 04")) == h("9302")
    assert card.image.passbook == PurseState() and card.image.transaction_log == []


def test_two_level_end_to_end_composite_purchase_exact_bytes() -> None:
    """§3.5's made-up example run as §5.2's composite purchase; every exchange as bytes."""
    card, psam = e2e_card(balance=10000), e2e_psam(tsn=0x57)
    card.power_on()
    psam.power_on()
    exchanges = [
        (psam, "00B0960006", "200041599997 9000"),
        (psam, "00A4000002 8011", "6F04 83028011 9000"),
        (psam, "00B0970001", "01 9000"),
        (card, "00A4040008 A000000632010105 00",
         "6F31 8408A000000632010105 A525 9F080102 9F0C1E 02403640FFFFFFFF 02 01 03104991585000011383 20200101 20401231"
         " 0000 9000"),
        (card, "00B097003C", "00000156 3600 3640 0001 01 00000000" + "00" * 45 + "9000"),
        (card, "00B202D480", "27027D0101" + "00" * 123 + "9000"),
        (card, "805003020B 01 000000C8 200041599997 0F", "00002710 0036 000000 01 00 11223344 9000"),
        (psam, "8070000024 11223344 0036 000000C8 09 20180313164329 01 00 4991585000011383 02403640FFFFFFFF 08",
         "00000057 2B1D974F 9000"),
        (card, "80DC02D080" + BUS_RECORD.hex(), "9000"),
        (card, "80DC00F030" + TRANSIT.hex(), "9000"),
        (card, "805401000F 00000057 20180313164329 2B1D974F 08", "F252E12F CAEC0601 9000"),
        (psam, "8072000004 CAEC0601", "9000"),
        (card, "805C000204", "00002648 9000"),
        (card, "805A000902 0037 08", "CAEC0601 F252E12F 9000"),
    ]
    for device, command, answer in exchanges:
        assert device.execute(h(command)) == h(answer), command
    image = card.image
    assert image.purse == PurseState(9800, 0, 0x37, 0)
    assert image.transaction_log == [TRANSACTION_LOG_RECORD.build(TransactionLogRecord(
        0x36, 0, 200, 0x09, TERMINAL, dt.date(2018, 3, 13), dt.time(16, 43, 29)))]
    assert image.process_records[2] == BUS_RECORD and image.transit_log == [TRANSIT]
    assert psam.tsn == 0x58
    assert card.internal_errors == psam.internal_errors == 0


def test_two_level_example_through_the_codecs() -> None:
    card, psam = e2e_card(balance=10000), e2e_psam(tsn=0x57)
    card.power_on()
    assert sw(card, SELECT_EP) == 0x9000
    init = cc.PURCHASE_INIT_RESPONSE.parse(call(card, cc.InitializeForCappPurchase(1, 200, TERMINAL).to_bytes()).data)
    assert init == cc.PurchaseInitResponse(10000, 0x36, 0, 1, 0, h("11223344"))
    when = dt.datetime(2018, 3, 13, 16, 43, 29)
    sam = call(psam, pc.InitSamForPurchase(init.random, init.offline_atc, 200, 0x09, when, init.key_version,
                                           init.algorithm_id, card.serial[2:], card.issuer_id).to_bytes())
    assert pc.SAM_PURCHASE_RESPONSE.parse(sam.data) == pc.SamPurchaseResponse(0x57, h("2B1D974F"))
    debit = call(card, cc.DebitForPurchase(0x57, when, h("2B1D974F")).to_bytes())
    assert cc.DEBIT_RESPONSE.parse(debit.data) == cc.DebitResponse(h("F252E12F"), h("CAEC0601"))
    assert sw(psam, pc.CreditSamForPurchase(h("CAEC0601")).to_bytes()) == 0x9000
    prove = call(card, cc.GetTransactionProve(0x09, 0x37).to_bytes())
    assert cc.PROVE_RESPONSE.parse(prove.data) == cc.ProveResponse(h("CAEC0601"), h("F252E12F"))


def test_line_protection_vector_blocks_and_unblock_reverses() -> None:
    # §3.5: retail MAC under DAMK 404142..4F with IV AABBCCDD00000000 over 841E000004 is 9445D2D6
    card = blog_card(keys={1: KeySlot(1, purchase=TdesKey(BLOG_KEY), tac=TdesKey(BLOG_TAC_KEY))})
    card.image.maintenance_key = TdesKey(h("404142434445464748494A4B4C4D4E4F"))
    card.randbytes = fixed_random(h("AABBCCDD"))
    assert card.execute(h("0084000004")) == h("AABBCCDD 9000")
    assert card.execute(h("841E000004 9445D2D6")) == h("9000")
    assert card.image.blocked
    assert card.execute(SELECT_EP) == h("6283")
    assert card.execute(h("805C000204")) == h("6985")
    # UNBLOCK (PBOC convention): the same MAC scheme over its own header 8418000004
    mac = line_protection_mac(card.image.maintenance_key, h("AABBCCDD"), h("8418000004"))
    assert card.execute(h("0084000004")) == h("AABBCCDD 9000")
    assert card.execute(h("8418000004") + mac) == h("9000")
    assert not card.image.blocked
    assert call(card, SELECT_EP).sw == 0x9000
