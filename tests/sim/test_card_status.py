"""Every status word the simulated card answers, provoked: selection, reads and their Le rules, the purse's refusals,
the order of a transaction, line protection, and what the codecs refuse (wrong length, P1-P2, INS, CLA, Le)."""

from __future__ import annotations


import pytest

from protocols import card_commands as cc
from protocols.card_commands import Purse, RecordMode
from protocols.crypto import Algorithm, Sm4Key, line_protection_mac, purchase_mac1, purchase_session_key
from protocols.fci import PPSE_NAME
from protocols.hexutil import parse_hex as h
from sim.card import MAX_BALANCE, KeySlot, PurseState, SimCard
from sim.issuing import personalise

from .card_support import SELECT_EP, SERIAL, TERMINAL, WHEN, call, e2e_card, fixed_random, sw

INIT_CAPP = cc.InitializeForCappPurchase(1, 200, TERMINAL).to_bytes()
INIT_PURCHASE = cc.InitializeForPurchase(1, 200, TERMINAL).to_bytes()
BUS = h("27027D0101") + bytes(123)


@pytest.fixture
def card() -> SimCard:
    card = e2e_card(balance=1000)
    card.power_on()
    assert sw(card, SELECT_EP) == 0x9000
    return card


def valid_debit(card: SimCard, init: bytes, kind: int = 0x09, tsn: int = 0x57) -> bytes:
    """The DEBIT a PSAM would authorise for the INITIALIZE answer ``init`` (amount 200 at TERMINAL)."""
    answer = cc.PURCHASE_INIT_RESPONSE.parse(init[:-2])
    session = purchase_session_key(card.image.keys[1].purchase, answer.random, answer.offline_atc, tsn)
    mac1 = purchase_mac1(session, 200, kind, TERMINAL, h("20180313164329"))
    return cc.DebitForPurchase(tsn, WHEN, mac1).to_bytes()


# --- selection ------------------------------------------------------------------------------------------------------

def test_select_answers() -> None:
    card = e2e_card()
    card.power_on()
    assert sw(card, cc.SelectByName(h("A000000632010106")).to_bytes()) == 0x6A82
    assert sw(card, cc.SelectByName(PPSE_NAME, le=256).to_bytes()) == 0x6A82  # no PPSE on this card
    assert sw(card, cc.SelectByFid(0x3F01).to_bytes()) == 0x6A82
    assert card.execute(cc.SelectByFid(0x3F00).to_bytes()) == h("9000")
    assert card.execute(cc.SelectByName(h("A000000632010105"), p2=0x0C).to_bytes()) == h("9000")
    assert call(card, cc.SelectByFid(0x1001).to_bytes()).data == call(card, SELECT_EP).data


def test_ppse_when_personalised_with_one() -> None:
    card = e2e_card(ppse=True)
    card.power_on()
    # 6F{84 "2PAY.SYS.DDF01", A5{BF0C{61{4F AID, 50 "MOT_T_EP", 87 02}}}}
    assert card.execute(cc.SelectByName(PPSE_NAME, le=256).to_bytes()) == h(
        "6F2E 840E325041592E5359532E4444463031 A51C BF0C19 6117 4F08A000000632010105 50084D4F545F545F4550 870102"
        " 9000")
    # files of the application are not reachable from the PPSE
    assert sw(card, cc.ReadBinary(0x15, 0, 30).to_bytes()) == 0x6A82


def test_blocked_application_selects_with_6283(card: SimCard) -> None:
    card.image.blocked = True
    assert card.execute(SELECT_EP) == h("6283")
    assert card.execute(cc.SelectByFid(0x1001).to_bytes()) == h("6283")
    # files stay readable; the purse does not
    assert call(card, cc.ReadBinary(0x15, 0, 30).to_bytes()).sw == 0x9000
    for command in (cc.GetBalance().to_bytes(), INIT_CAPP, cc.GetTransactionProve(9, 1).to_bytes(),
                    cc.InitializeForLoad(1, 100, TERMINAL).to_bytes()):
        assert sw(card, command) == 0x6985


# --- reads ----------------------------------------------------------------------------------------------------------

def test_reads_need_the_application() -> None:
    card = e2e_card()
    card.power_on()
    assert sw(card, cc.ReadBinary(0x15, 0, 30).to_bytes()) == 0x6A82
    assert sw(card, cc.ReadRecord(0x1A, 2, le=0x80).to_bytes()) == 0x6A82
    card.execute(cc.SelectByFid(0x3F00).to_bytes())
    assert sw(card, cc.ReadBinary(0x17, 0, 60).to_bytes()) == 0x6A82


def test_read_binary_le_and_offsets(card: SimCard) -> None:
    file15 = card.image.public_info
    assert card.execute(h("00B095001E")) == file15 + h("9000")
    assert card.execute(h("00B0950000")) == file15 + h("9000")  # Le 00: all there is
    assert card.execute(h("00B0950020")) == h("6C1E")
    assert card.execute(h("00B0951010")) == h("6C0E")  # 14 bytes left at offset 16
    assert card.execute(h("00B0951000")) == file15[16:] + h("9000")
    assert card.execute(h("00B097000B")) == card.image.management[:11] + h("9000")  # NF reads 11 bytes
    assert card.execute(h("00B0961000")) == card.image.cardholder[16:] + h("9000")
    assert card.execute(h("00B0951E01")) == h("6B00")
    assert card.execute(h("00B095FF01")) == h("6B00")
    assert card.execute(h("00B0810001")) == h("6A82")  # no file 01
    assert card.execute(h("00B0980017")) == h("6981")  # 0x18 is a record file


def test_read_record_rules(card: SimCard) -> None:
    assert card.execute(h("00B201C417")) == h("6A83")  # no transaction yet
    assert card.execute(h("00B201F430")) == h("6A83")
    assert card.execute(h("00B202D480")) == BUS + h("9000")
    assert card.execute(h("00B202D400")) == BUS + h("9000")
    assert card.execute(h("00B201D400")) == h("27017D0101") + bytes(123) + h("9000")
    assert card.execute(h("00B202D000")) == BUS + h("9000")  # by id 02
    assert card.execute(h("00B203D480")) == h("6A83")
    assert card.execute(h("00B205D000")) == h("6A83")
    assert card.execute(h("00B200D480")) == h("6A86")  # no current record
    assert card.execute(h("00B202D47F")) == h("6C80")
    assert card.execute(h("00B201C017")) == h("6A86")  # 0x18 by identifier
    assert card.execute(h("00B201AC00")) == h("6981")  # 0x15 is transparent
    assert card.execute(h("00B2010C00")) == h("6A82")  # no file 01


def test_records_newest_first_and_wrong_le(card: SimCard) -> None:
    card.image.transaction_log[:] = [bytes([i]) * 23 for i in range(1, 4)]
    assert card.execute(h("00B201C417")) == bytes([1]) * 23 + h("9000")
    assert card.execute(h("00B203C400")) == bytes([3]) * 23 + h("9000")
    assert card.execute(h("00B204C417")) == h("6A83")
    assert card.execute(h("00B201C418")) == h("6C17")


# --- the purse ------------------------------------------------------------------------------------------------------

def test_purse_commands_need_the_application() -> None:
    card = e2e_card()
    card.power_on()
    for command in (cc.GetBalance().to_bytes(), INIT_CAPP, cc.GetTransactionProve(9, 1).to_bytes()):
        assert sw(card, command) == 0x6985


def test_initialize_refusals(card: SimCard) -> None:
    assert sw(card, cc.InitializeForPurchase(2, 200, TERMINAL).to_bytes()) == 0x9403  # no key index 02
    assert sw(card, cc.InitializeForCappPurchase(1, 1001, TERMINAL).to_bytes()) == 0x9401
    assert sw(card, cc.InitializeForCappPurchase(1, 1000, TERMINAL).to_bytes()) == 0x9000
    assert sw(card, cc.InitializeForCappPurchase(1, 0, TERMINAL).to_bytes()) == 0x9000  # 0: an entry record
    assert sw(card, cc.InitializeForPurchase(1, 1, TERMINAL, Purse.ED).to_bytes()) == 0x6A86  # no passbook
    assert sw(card, cc.GetBalance(Purse.ED).to_bytes()) == 0x6A86
    card.image.purse.offline_atc = 0xFFFF
    assert sw(card, INIT_CAPP) == 0x9402
    card.image.purse.online_atc = 0xFFFF
    assert sw(card, cc.InitializeForLoad(1, 1, TERMINAL).to_bytes()) == 0x9402
    card.image.purse.online_atc = 0
    assert sw(card, cc.InitializeForLoad(1, MAX_BALANCE - 999, TERMINAL).to_bytes()) == 0x6A80
    assert sw(card, cc.InitializeForLoad(1, MAX_BALANCE - 1000, TERMINAL).to_bytes()) == 0x9000


def test_capp_on_the_passbook_and_missing_keys() -> None:
    card = e2e_card(passbook=PurseState(500))
    card.power_on()
    card.execute(SELECT_EP)
    assert sw(card, cc.InitializeForCappPurchase(1, 1, TERMINAL, Purse.ED).to_bytes()) == 0x6A86
    assert card.execute(cc.GetBalance(Purse.ED).to_bytes()) == h("000001F4 9000")
    card.image.keys[1].load = None
    assert sw(card, cc.InitializeForLoad(1, 1, TERMINAL).to_bytes()) == 0x9403
    card.image.keys[1].tac = None
    assert sw(card, INIT_CAPP) == 0x9403


def test_overdraft_goes_negative_as_twos_complement() -> None:
    card = e2e_card(balance=100, overdraft=300)
    card.power_on()
    card.execute(SELECT_EP)
    assert sw(card, cc.InitializeForCappPurchase(1, 401, TERMINAL).to_bytes()) == 0x9401
    init = card.execute(INIT_CAPP)
    assert init[:4] == h("00000064") and init[6:9] == h("00012C")
    assert call(card, valid_debit(card, init)).sw == 0x9000
    assert card.balance == -100
    assert card.execute(cc.GetBalance().to_bytes()) == h("FFFFFF9C 9000")
    assert card.execute(INIT_CAPP)[:4] == h("FFFFFF9C")
    assert sw(card, cc.InitializeForCappPurchase(1, 201, TERMINAL).to_bytes()) == 0x9401
    # the 0x18 record: ATC 0036 (the card's), the overdraft limit, amount 200, type 09, the terminal, DEBIT's date-time
    assert card.image.transaction_log[0] == h("0036 00012C 000000C8 09 200041599997 20180313 164329")


def test_update_capp_data_cache_rules(card: SimCard) -> None:
    update_1a = cc.UpdateCappDataCache(0x1A, 2, BUS).to_bytes()
    update_1e = cc.UpdateCappDataCache(0x1E, 0, bytes(48)).to_bytes()
    assert sw(card, update_1a) == 0x6985  # no transaction
    card.execute(INIT_PURCHASE)
    assert sw(card, update_1a) == 0x6985  # a simple purchase takes no CAPP data
    cases = [
        (update_1a, 0x9000),
        (update_1e, 0x9000),
        (cc.UpdateCappDataCache(0x1A, 7, h("2707") + BUS[2:]).to_bytes(), 0x6A83),
        (cc.UpdateCappDataCache(0x1A, 2, BUS[:127]).to_bytes(), 0x6700),
        (cc.UpdateCappDataCache(0x1A, 2, h("2701") + BUS[2:]).to_bytes(), 0x6A80),
        (cc.UpdateCappDataCache(0x1A, 2, h("2602") + BUS[2:]).to_bytes(), 0x6A80),
        (cc.UpdateCappDataCache(0x1A, 2, BUS, RecordMode.NUMBER).to_bytes(), 0x6A86),
        (cc.UpdateCappDataCache(0x1E, 1, bytes(48)).to_bytes(), 0x6A86),
        (cc.UpdateCappDataCache(0x1E, 0, bytes(47)).to_bytes(), 0x6700),
        (cc.UpdateCappDataCache(0x18, 0, bytes(23)).to_bytes(), 0x6981),
        (cc.UpdateCappDataCache(0x15, 0, bytes(30)).to_bytes(), 0x6981),
        (cc.UpdateCappDataCache(0x05, 0, bytes(30)).to_bytes(), 0x6A82),
    ]
    for command, expected in cases:
        init = card.execute(INIT_CAPP)
        assert init[-2:] == h("9000")
        assert sw(card, command) == expected, command.hex()
        # a failed update ends the transaction; a good one keeps it for the debit
        debit = valid_debit(card, init) if expected == 0x9000 else cc.DebitForPurchase(1, WHEN, bytes(4)).to_bytes()
        assert sw(card, debit) == (0x9000 if expected == 0x9000 else 0x6985)


def test_debit_order_and_mac(card: SimCard) -> None:
    stray = cc.DebitForPurchase(0x57, WHEN, h("2B1D974F")).to_bytes()
    assert sw(card, stray) == 0x6985  # no INITIALIZE
    init = card.execute(INIT_CAPP)
    good = valid_debit(card, init)
    bad = good[:16] + bytes(4) + good[20:]
    assert sw(card, bad) == 0x9302
    assert sw(card, good) == 0x6985  # the bad MAC dropped the context
    assert card.balance == 1000
    init = card.execute(INIT_CAPP)
    good = valid_debit(card, init)
    assert sw(card, good) == 0x9000
    assert sw(card, good) == 0x6985  # a debit is answered once
    assert card.balance == 800


@pytest.mark.parametrize("between", [
    cc.GetBalance().to_bytes(), SELECT_EP, cc.ReadBinary(0x15, 0, 30).to_bytes(), h("00B2"), h("80CA000000"),
    cc.GetChallenge().to_bytes(), cc.InitializeForLoad(1, 1, TERMINAL).to_bytes(),
], ids=["balance", "select", "read", "garbage", "unknown", "challenge", "init-load"])
def test_any_other_command_ends_the_transaction(card: SimCard, between: bytes) -> None:
    init = card.execute(INIT_CAPP)
    debit = valid_debit(card, init)
    card.execute(cc.UpdateCappDataCache(0x1E, 0, bytes(48)).to_bytes())
    card.execute(between)
    assert sw(card, debit) == 0x6985
    assert card.balance == 1000 and card.image.transit_log == []


def test_power_on_drops_the_transaction_and_staged_records(card: SimCard) -> None:
    init = card.execute(INIT_CAPP)
    debit = valid_debit(card, init)
    assert sw(card, cc.UpdateCappDataCache(0x1E, 0, bytes(48)).to_bytes()) == 0x9000
    card.power_on()
    card.execute(SELECT_EP)
    assert sw(card, debit) == 0x6985
    assert card.image.transit_log == []


def test_credit_order(card: SimCard) -> None:
    credit = cc.CreditForLoad(WHEN, bytes(4)).to_bytes()
    assert sw(card, credit) == 0x6985
    card.execute(INIT_CAPP)
    assert sw(card, credit) == 0x6985  # a purchase cannot be credited
    assert card.execute(cc.InitializeForLoad(1, 500, TERMINAL).to_bytes())[-2:] == h("9000")
    assert sw(card, credit) == 0x9302
    assert sw(card, credit) == 0x6985
    card.execute(cc.InitializeForLoad(1, 500, TERMINAL).to_bytes())
    assert sw(card, valid_debit(card, card.execute(INIT_CAPP))) == 0x9000  # (a new INITIALIZE replaces the load)
    assert card.balance == 800


def test_prove_answers_9406_unless_the_atc_and_type_match(card: SimCard) -> None:
    assert sw(card, cc.GetTransactionProve(0x09, 0x37).to_bytes()) == 0x9406
    init = card.execute(INIT_CAPP)
    debit = call(card, valid_debit(card, init))
    assert debit.sw == 0x9000
    assert call(card, cc.GetTransactionProve(0x09, 0x37).to_bytes()).data == debit.data[4:] + debit.data[:4]
    assert sw(card, cc.GetTransactionProve(0x09, 0x36).to_bytes()) == 0x9406
    assert sw(card, cc.GetTransactionProve(0x06, 0x37).to_bytes()) == 0x9406


# --- line protection ------------------------------------------------------------------------------------------------

def test_block_refusals(card: SimCard) -> None:
    damk = card.image.maintenance_key
    card.randbytes = fixed_random(h("01020304"))
    good = line_protection_mac(damk, h("01020304"), h("841E000004"))
    block = cc.ApplicationBlock(good).to_bytes()
    assert sw(card, block) == 0x6984  # no challenge
    card.execute(cc.GetChallenge().to_bytes())
    assert sw(card, cc.ApplicationBlock(bytes(4)).to_bytes()) == 0x9302
    assert sw(card, block) == 0x6984  # the challenge served one command
    card.execute(cc.GetChallenge().to_bytes())
    card.execute(cc.GetBalance().to_bytes())
    assert sw(card, block) == 0x6984
    card.execute(cc.GetChallenge().to_bytes())
    assert sw(card, cc.ApplicationUnblock(good).to_bytes()) == 0x9302  # a block MAC does not unblock
    card.power_on()
    card.execute(cc.GetChallenge().to_bytes())
    assert sw(card, block) == 0x6985  # no application selected
    card.execute(SELECT_EP)
    card.execute(cc.GetChallenge(8).to_bytes())
    assert sw(card, cc.ApplicationBlock(line_protection_mac(damk, h("0102030401020304"), h("841E000004")))
              .to_bytes()) == 0x9000
    assert card.image.blocked
    card.image.maintenance_key = None
    card.execute(cc.GetChallenge().to_bytes())
    assert sw(card, block) == 0x6A88


def test_sm4_card_has_no_line_protection() -> None:
    keys = {1: KeySlot(1, purchase=Sm4Key(bytes(16)), tac=Sm4Key(bytes(16)))}
    image = personalise(issuer_id=h("02403640FFFFFFFF"), serial=SERIAL, algorithm=Algorithm.SM4, keys=keys,
                        maintenance_key=Sm4Key(bytes(16)), balance=1000)
    card = SimCard(image)
    card.power_on()
    card.execute(SELECT_EP)
    card.execute(cc.GetChallenge().to_bytes())
    assert sw(card, cc.ApplicationBlock(bytes(4)).to_bytes()) == 0x6A81
    assert card.execute(INIT_CAPP)[9:11] == h("0104")  # key version 01, SM4 algorithm id 04 (UNCONFIRMED)


def test_get_response_has_nothing_to_give(card: SimCard) -> None:
    assert sw(card, h("00C0000008")) == 0x6985


# --- what the codecs refuse -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("apdu, expected", [
    ("", 0x6700), ("00A404", 0x6700), ("805401000E 00000057 20180313164329 2B1D97", 0x6700),
    ("8054010010 00000057 20180313164329 2B1D974F00", 0x6700), ("80DC02D080", 0x6700),
    ("805007020B 01 000000C8 200041599997", 0x6A86), ("805C000304", 0x6A86), ("00A4040108 A000000632010105", 0x6A86),
    ("80CA000000", 0x6D00), ("00CA9F1700", 0x6D00),
    ("9054010000", 0x6E00), ("04A4040008 A000000632010105", 0x6E00),
    ("805C000205", 0x6C04), ("805003020B 01 000000C8 200041599997 10", 0x6C0F),
    ("805401000F 00000057 20181313164329 2B1D974F", 0x6A80), ("805401000F 00000057 2018031316432A 2B1D974F", 0x6A80),
    ("805401000F 00000057 00000000000000 2B1D974F", 0x6A80),
    ("0084000005", 0x6700), ("841E000003 010203", 0x6700),
])
def test_codec_refusals(card: SimCard, apdu: str, expected: int) -> None:
    assert card.execute(h(apdu)) == expected.to_bytes(2, "big")


def test_bytearray_and_memoryless_inputs(card: SimCard) -> None:
    assert card.execute(bytearray(cc.GetBalance().to_bytes())) == h("000003E8 9000")
    assert card.internal_errors == 0
