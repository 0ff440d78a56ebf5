"""The simulated PSAM: files and selection, 8070/8072 and the TSN, DES INIT / DES CRYPT (a card's TAC recomputed, the
line-protection MAC a card accepts), one- and two-level diversification, SM4, and T=0 behaviour through the
terminal's channel."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import card_commands as cc
from protocols import psam_commands as pc
from protocols.crypto import TdesKey, pad, tac_key
from protocols.hexutil import parse_hex as h
from sim.issuing import issue_card
from sim.psam import DEFAULT_ATR, SimPsam, demo_psam
from sim.reader import SimReader, SimSamSlot
from terminal.channel import Channel
from terminal.errors import ConfigError
from terminal.keyset import parse_keyset
from terminal.trace import ExchangeLog

from .card_support import (
    FACTOR, ISSUER, KEYSET, SELECT_EP, SERIAL, TERMINAL, WHEN, call, composite_purchase, e2e_card, e2e_psam,
    fixed_random, sw,
)

E2E_8070 = h("8070000024 11223344 0036 000000C8 09 20180313164329 01 00 4991585000011383 02403640FFFFFFFF 08")
E2E_8070_T0 = E2E_8070[:-1]  # on T=0 a case 4 command goes without Le


def keyset(levels: int = 2, algorithm: str = "3DES"):  # type: ignore[no-untyped-def]
    return parse_keyset({
        "format": "yikatong-keyset", "version": 1, "test_only": True, "algorithm": algorithm,
        "diversification_levels": levels,
        "master_keys": {"purchase": {"01": "00112233445566778899AABBCCDDEEFF",
                                     "02": "0F1E2D3C4B5A69788796A5B4C3D2E1F0"},
                        "load": {"01": "F0E1D2C3B4A5968778695A4B3C2D1E0F"},
                        "tac": {"01": "FFEEDDCCBBAA99887766554433221100"},
                        "damk": {"01": "404142434445464748494A4B4C4D4E4F"}}})


def test_power_on_answers_a_t0_atr() -> None:
    psam = SimPsam(KEYSET, TERMINAL)
    activation = psam.power_on()
    assert activation.protocol == "T=0" and activation.atr == DEFAULT_ATR == h("3B5C1800 594B542D5053414D2D53494D")
    assert activation.uid == b"" and activation.ats is None


def test_files_and_selection() -> None:
    psam = SimPsam(KEYSET, TERMINAL, key_index=0x03)
    psam.power_on()
    assert psam.execute(h("00B0960006")) == TERMINAL + h("9000")
    assert psam.execute(h("00B0960000")) == TERMINAL + h("9000")
    assert psam.execute(h("00B0960008")) == h("6C06")
    assert psam.execute(h("00B0960204")) == TERMINAL[2:] + h("9000")
    assert psam.execute(h("00B0970001")) == h("6A82")  # the key index lives in DF 8011
    assert psam.execute(h("00A4000002 8011")) == h("6F04 83028011 9000")
    assert psam.execute(h("00B0970001")) == h("03 9000")
    assert psam.execute(h("00B0960006")) == h("6A82")  # the terminal number lives in the MF
    assert psam.execute(h("00A4000C02 3F00")) == h("9000")
    assert psam.execute(h("00B0960006")) == TERMINAL + h("9000")
    assert psam.execute(h("00A4000002 1003")) == h("6A82")
    assert psam.execute(h("00A4040008 A000000632010105")) == h("6A82")
    assert psam.execute(h("00A4000C02 8011")) == h("9000")
    psam.power_on()
    assert psam.execute(h("00B0970001")) == h("6A82")  # power-on makes the MF current again


def test_mac1_and_tsn_of_the_end_to_end_example() -> None:
    psam = e2e_psam(tsn=0x57)
    assert psam.execute(E2E_8070) == h("00000057 2B1D974F 9000")
    assert psam.tsn == 0x58
    assert psam.execute(h("8072000004 CAEC0601")) == h("9000")
    # the same card data one TSN later: another session key, another MAC1
    answer = psam.execute(E2E_8070)
    assert answer[:4] == h("00000058") and answer[4:8] != h("2B1D974F")


def test_tsn_wraps() -> None:
    psam = e2e_psam(tsn=0xFFFFFFFF)
    assert psam.execute(E2E_8070)[:4] == h("FFFFFFFF")
    assert psam.tsn == 0
    assert psam.execute(E2E_8070)[:4] == h("00000000")


def test_8072_is_valid_once_right_after_8070() -> None:
    psam = e2e_psam()
    mac2 = h("8072000004 CAEC0601")
    assert psam.execute(mac2) == h("6985")  # no session
    psam.execute(E2E_8070)
    assert psam.execute(h("8072000004 CAEC0602")) == h("9302")
    assert psam.execute(mac2) == h("6985")  # a bad MAC2 closes the session too
    psam.tsn = 0x57
    psam.execute(E2E_8070)
    assert psam.execute(mac2) == h("9000")
    assert psam.execute(mac2) == h("6985")  # once
    psam.tsn = 0x57
    psam.execute(E2E_8070)
    psam.execute(h("00B0970001"))  # anything between closes the session
    assert psam.execute(mac2) == h("6985")
    psam.tsn = 0x57
    psam.execute(E2E_8070)
    psam.power_on()
    psam.execute(pc.select_application().to_bytes())
    assert psam.execute(mac2) == h("6985")


def test_8070_refusals() -> None:
    psam = SimPsam(KEYSET, TERMINAL)
    psam.power_on()
    assert psam.execute(E2E_8070) == h("6985")  # DF 8011 not selected
    psam.execute(pc.select_application().to_bytes())
    # header 5, random 4, ATC 2, amount 4, type 1, date-time 7: key version at 23, algorithm id at 24
    assert psam.execute(E2E_8070[:23] + h("03") + E2E_8070[24:]) == h("6A88")  # no purchase key version 03
    assert psam.execute(E2E_8070[:24] + h("04") + E2E_8070[25:]) == h("6A80")  # SM4 id on a 3DES key set
    assert psam.execute(E2E_8070[:24] + h("07") + E2E_8070[25:]) == h("6A80")  # no such algorithm
    assert psam.execute(h("8070000020") + bytes(32)) == h("6700")  # neither 1C nor 24
    assert psam.execute(E2E_8070[:16] + bytes(7) + E2E_8070[23:]) == h("6A80")  # zero date-time
    assert psam.tsn == 0  # refusals do not count


def test_one_level_diversification() -> None:
    one = keyset(levels=1)
    card = issue_card(one, issuer_id=ISSUER, serial=SERIAL, balance=1000, randbytes=fixed_random())
    psam = SimPsam(one, TERMINAL)
    psam.power_on()
    psam.execute(pc.select_application().to_bytes())
    card.power_on()
    card.execute(SELECT_EP)
    init = cc.PURCHASE_INIT_RESPONSE.parse(call(card, cc.InitializeForCappPurchase(1, 100, TERMINAL).to_bytes()).data)
    one_level = pc.InitSamForPurchase(init.random, init.offline_atc, 100, 9, WHEN, 1, 0, FACTOR)
    assert one_level.to_bytes()[4] == 0x1C
    session = pc.SAM_PURCHASE_RESPONSE.parse(call(psam, one_level.to_bytes()).data)
    debit = call(card, cc.DebitForPurchase(session.tsn, WHEN, session.mac1).to_bytes())
    assert debit.sw == 0x9000
    assert sw(psam, pc.CreditSamForPurchase(debit.data[4:]).to_bytes()) == 0x9000


def test_wrong_depth_gives_a_mac1_the_card_refuses() -> None:
    card, psam = e2e_card(), e2e_psam()
    card.power_on()
    card.execute(SELECT_EP)
    init = cc.PURCHASE_INIT_RESPONSE.parse(call(card, cc.InitializeForCappPurchase(1, 100, TERMINAL).to_bytes()).data)
    one_level = pc.InitSamForPurchase(init.random, init.offline_atc, 100, 9, WHEN, 1, 0, FACTOR)
    session = pc.SAM_PURCHASE_RESPONSE.parse(call(psam, one_level.to_bytes()).data)
    assert sw(card, cc.DebitForPurchase(session.tsn, WHEN, session.mac1).to_bytes()) == 0x9302


def test_mac1_over_another_terminal_number_is_refused() -> None:
    card, psam = e2e_card(), SimPsam(KEYSET, h("200041599998"))
    psam.power_on()
    psam.execute(pc.select_application().to_bytes())
    purchase = composite_purchase(card, psam, 100)
    assert purchase.debit is not None and purchase.debit.sw == 0x9302


def test_issuer_level_keys_are_kept_per_issuer() -> None:
    psam = e2e_psam()
    issuers = (ISSUER, h("02002900FFFFFFFF"), ISSUER)
    for number, issuer in enumerate(issuers):
        card = issue_card(KEYSET, issuer_id=issuer, serial=f"0310499158500001138{number}", balance=1000)
        purchase = composite_purchase(card, psam, 100)
        assert purchase.debit is not None and purchase.debit.sw == 0x9000 and purchase.mac2_check == 0x9000
    assert len(psam._upper_keys) == 2


def test_tac_recomputed_with_des_init_and_des_mac() -> None:
    """TAC-P: 801A 44 with the card's factors, then 80FA 05 over the padded TAC input; equals the card's TAC."""
    psam = e2e_psam()
    assert psam.execute(pc.DesInit(pc.KeyUsage.TAC, 0x01, (FACTOR, ISSUER)).to_bytes()) == h("9000")
    data = h("000000C8 09 200041599997 00000057 20180313164329")
    command = pc.DesMac(bytes(8), pad(data)).to_bytes()
    assert command[:5] == h("80FA050020")
    assert psam.execute(command) == h("F252E12F 9000")
    assert psam.execute(pc.DesMac(bytes(8), pad(data), le=8).to_bytes())[:4] == h("F252E12F")


def test_line_protection_mac_the_card_accepts() -> None:
    """§3.6: the terminal asks the card for a challenge and the PSAM for the MAC; the card blocks."""
    card, psam = e2e_card(), e2e_psam()
    card.randbytes = fixed_random(h("5A6B7C8D"))
    card.power_on()
    card.execute(SELECT_EP)
    challenge = call(card, cc.GetChallenge().to_bytes()).data
    assert psam.execute(h("801A450110") + FACTOR + ISSUER) == h("9000")
    answer = call(psam, h("80FA050010") + challenge + bytes(4) + h("841E000004800000"))
    assert answer.sw == 0x9000 and len(answer.data) == 4
    assert sw(card, cc.ApplicationBlock(answer.data).to_bytes()) == 0x9000
    assert card.execute(SELECT_EP) == h("6283")


def test_des_encrypt_with_the_diversified_key() -> None:
    card, psam = e2e_card(), e2e_psam()
    psam.execute(pc.DesInit(pc.KeyUsage.MAINTENANCE, 0x01, (FACTOR, ISSUER)).to_bytes())
    data = h("0011223344556677 8899AABBCCDDEEFF")
    assert psam.execute(pc.DesEncrypt(data).to_bytes()) == card.image.maintenance_key.encrypt(data) + h("9000")


def test_des_refusals() -> None:
    psam = e2e_psam()
    assert psam.execute(pc.DesEncrypt(bytes(8)).to_bytes()) == h("6985")  # no DES INIT
    assert psam.execute(pc.DesMac(bytes(8), bytes(8)).to_bytes()) == h("6985")
    assert psam.execute(h("801A260110") + FACTOR + ISSUER) == h("6A86")  # a key usage this PSAM does not hold
    assert psam.execute(h("801A450210") + FACTOR + ISSUER) == h("6A88")  # no maintenance key version 02
    assert psam.execute(h("801A450108") + FACTOR) == h("9000")
    psam.power_on()
    assert psam.execute(pc.DesEncrypt(bytes(8)).to_bytes()) == h("6985")  # power-on forgets DES INIT
    assert psam.execute(h("80FA000007") + bytes(7)) == h("6700")


def test_tac_key_from_des_init_is_the_folded_dtk() -> None:
    psam = e2e_psam()
    psam.execute(pc.DesInit(pc.KeyUsage.TAC, 0x01, (FACTOR, ISSUER)).to_bytes())
    dtk = TdesKey(h("2917830D4877A288623E37D2B382009D"))  # §3.5
    assert psam.execute(pc.DesEncrypt(bytes(8)).to_bytes()) == tac_key(dtk).encrypt(bytes(8)) + h("9000")


def test_sm4_purchase_end_to_end() -> None:
    sm4 = keyset(algorithm="SM4")
    card = issue_card(sm4, issuer_id=ISSUER, serial=SERIAL, balance=1000)
    psam = SimPsam(sm4, TERMINAL)
    psam.power_on()
    psam.execute(pc.select_application().to_bytes())
    purchase = composite_purchase(card, psam, 150)
    assert purchase.init.algorithm_id == 0x04
    assert purchase.debit is not None and purchase.debit.sw == 0x9000 and purchase.mac2_check == 0x9000
    assert card.balance == 850
    psam.execute(h("801A450110") + FACTOR + ISSUER)
    assert psam.execute(pc.DesMac(bytes(8), bytes(16)).to_bytes()) == h("6A81")
    assert psam.execute(pc.DesEncrypt(bytes(16)).to_bytes()) == h("6A81")


# --- T=0 --------------------------------------------------------------------------------------------------------------

def test_t0_answers_61xx_and_get_response_fetches() -> None:
    psam = e2e_psam(t0=True)
    assert psam.execute(pc.select_application().to_bytes()) == h("6106")
    assert psam.execute(h("00C0000006")) == h("6F04 83028011 9000")
    assert psam.execute(h("00B0970001")) == h("01 9000")  # a command without data answers directly
    assert psam.execute(E2E_8070_T0) == h("6108")
    assert psam.execute(h("00C0000010")) == h("6C08")  # too long: the data keeps waiting
    assert psam.execute(h("00C0000003")) == h("000000 6105")
    assert psam.execute(h("00C0000005")) == h("57 2B1D974F 9000")
    assert psam.execute(h("00C0000008")) == h("6985")  # nothing waits any more
    assert psam.execute(h("8072000004 CAEC0601")) == h("9000")  # GET RESPONSE did not end the session


def test_t0_waiting_data_is_dropped_by_any_other_command() -> None:
    psam = e2e_psam(t0=True)
    psam.execute(E2E_8070_T0)
    assert psam.execute(h("00B0960006")) == h("6A82")
    assert psam.execute(h("00C0000008")) == h("6985")


def test_t0_through_the_terminal_channel() -> None:
    """The terminal's channel sees ATR T=0, sends 8070 without Le, and fetches the answer with GET RESPONSE."""
    log = ExchangeLog()
    slot = SimSamSlot(SimPsam(KEYSET, TERMINAL, tsn=0x57, t0=True), timing=None)
    channel = Channel(slot, peer="psam", tracer=log)
    assert channel.activate() is not None and channel.t0
    assert channel.call(pc.read_terminal_number().to_bytes(), "terminal number").data == TERMINAL
    assert channel.call(pc.select_application().to_bytes(), "select").data == h("6F0483028011")
    assert channel.call(E2E_8070, "8070").data == h("00000057 2B1D974F")
    assert channel.call(h("8072000004 CAEC0601"), "8072").sw == 0x9000
    sent = [exchange.command for exchange in log.exchanges]
    assert sent[:3] == [h("00B0960006"), h("00A4000002 8011"), h("00C0000006")]
    assert sent[3:] == [E2E_8070_T0, h("00C0000008"), h("8072000004 CAEC0601")]


def test_purchase_through_simulated_readers() -> None:
    card, psam = e2e_card(), SimPsam(KEYSET, TERMINAL, tsn=0x57, t0=True)
    card_channel = Channel(SimReader(card, timing=None))
    sam_channel = Channel(SimSamSlot(psam, timing=None), peer="psam")
    assert card_channel.activate() is not None and sam_channel.activate() is not None
    sam_channel.call(pc.select_application().to_bytes(), "select")
    card_channel.call(SELECT_EP, "select")
    init = cc.PURCHASE_INIT_RESPONSE.parse(
        card_channel.call(cc.InitializeForCappPurchase(1, 200, TERMINAL).to_bytes(), "init").data)
    when = dt.datetime(2018, 3, 13, 16, 43, 29)
    session = pc.SAM_PURCHASE_RESPONSE.parse(sam_channel.call(pc.InitSamForPurchase(
        init.random, init.offline_atc, 200, 9, when, 1, 0, FACTOR, ISSUER).to_bytes(), "8070").data)
    debit = card_channel.call(cc.DebitForPurchase(session.tsn, when, session.mac1).to_bytes(), "debit").data
    assert debit == h("F252E12F CAEC0601")
    assert sam_channel.call(pc.CreditSamForPurchase(debit[4:]).to_bytes(), "8072").sw == 0x9000


# --- robustness -------------------------------------------------------------------------------------------------------

def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="terminal number: 6 bytes"):
        SimPsam(KEYSET, h("2000415999"))
    with pytest.raises(ConfigError, match="key index: one byte"):
        SimPsam(KEYSET, TERMINAL, key_index=256)
    with pytest.raises(ConfigError, match="TSN"):
        SimPsam(KEYSET, TERMINAL, tsn=-1)


def test_demo_psam() -> None:
    psam = demo_psam()
    psam.power_on()
    assert psam.execute(h("00B0960006")) == TERMINAL + h("9000")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.binary(max_size=48),
    st.sampled_from([E2E_8070, E2E_8070_T0, h("00C0000008"), h("8072000004 CAEC0601"), h("00A40000028011"),
                     h("801A450110") + FACTOR + ISSUER, h("80FA050010") + bytes(16), h("80FA000008") + bytes(8)]),
    st.builds(lambda ins, body: h("80") + bytes((ins,)) + body, st.sampled_from([0x70, 0x72, 0x1A, 0xFA, 0xC0]),
              st.binary(max_size=40)),
), max_size=25), st.booleans())
def test_random_commands_never_crash_the_psam(commands: list[bytes], t0: bool) -> None:
    psam = e2e_psam(t0=t0)
    for command in commands:
        answer = psam.execute(command)
        assert len(answer) >= 2
    assert psam.internal_errors == 0


