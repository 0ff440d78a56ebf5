"""Properties of the simulated card under random input and random tears.

* Random command sequences (random bytes, mutated commands, and well-formed purse commands with random or correct
  MACs) never crash the card, and its balances change only through a DEBIT whose MAC1 is the one a PSAM makes for
  the open INITIALIZE, or a CREDIT whose MAC2 is the one a load host makes, by exactly that INITIALIZE's amount.
* A tear (power-on) before or after any command of a composite purchase leaves a state that GET TRANSACTION PROVE
  explains: the balance went down (and the counter up) exactly when a proof for the counter plus one exists, the
  staged records were written exactly then, and the proof is that debit's MAC2 and TAC.
"""

from __future__ import annotations

import random

from hypothesis import event, given, settings
from hypothesis import strategies as st

from protocols import card_commands as cc
from protocols import psam_commands as pc
from protocols.apdu import ResponseAPDU
from protocols.card_commands import Purse
from protocols.crypto import (
    line_protection_mac, load_mac2, load_session_key, purchase_mac1, purchase_mac2, purchase_session_key,
    purchase_tac, tac_key,
)
from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex as h
from sim.card import PurseState, SimCard
from sim.card.cpu_card import log_record
from sim.reader import SimReader, Tear
from terminal.channel import Channel
from terminal.errors import CardRemoved

from .card_support import SELECT_EP, TERMINAL, WHEN, call, e2e_card, e2e_psam

WHEN_BCD = h("20180313164329")
BUS = h("27027D0101") + bytes(123)
KINDS = {(cc.InitializeForPurchase, Purse.EP): 0x06, (cc.InitializeForPurchase, Purse.ED): 0x05,
         (cc.InitializeForCappPurchase, Purse.EP): 0x09, (cc.InitializeForLoad, Purse.EP): 0x02,
         (cc.InitializeForLoad, Purse.ED): 0x01}


class Oracle:
    """What a PSAM and a load host would compute for the card's last successful INITIALIZE, known from the card's
    keys and the bytes exchanged only (never from the card's internal state)."""

    def __init__(self, card: SimCard) -> None:
        self.keys = card.image.keys
        self.damk = card.image.maintenance_key
        self.init: tuple[cc.Command, bytes] | None = None
        self.challenge: bytes | None = None

    def saw(self, command: bytes, answer: ResponseAPDU) -> None:
        if answer.sw != 0x9000:
            return
        try:
            parsed = cc.parse_card_command(command)
        except ProtocolError:
            return
        if isinstance(parsed, (cc.InitializeForPurchase, cc.InitializeForCappPurchase, cc.InitializeForLoad)):
            self.init = (parsed, answer.data)
        elif isinstance(parsed, cc.GetChallenge):
            self.challenge = answer.data

    def kind(self) -> int | None:
        return None if self.init is None else KINDS.get((type(self.init[0]), self.init[0].purse))

    def mac1(self, tsn: int) -> bytes | None:
        if self.init is None or isinstance(self.init[0], cc.InitializeForLoad):
            return None
        command, data = self.init
        answer = cc.PURCHASE_INIT_RESPONSE.parse(data)
        session = purchase_session_key(self.keys[command.key_index].purchase, answer.random, answer.offline_atc, tsn)
        return purchase_mac1(session, command.amount, self.kind(), TERMINAL, WHEN_BCD)

    def mac2(self) -> bytes | None:
        if self.init is None or not isinstance(self.init[0], cc.InitializeForLoad):
            return None
        command, data = self.init
        answer = cc.LOAD_INIT_RESPONSE.parse(data)
        session = load_session_key(self.keys[command.key_index].load, answer.random, answer.online_atc)
        return load_mac2(session, command.amount, self.kind(), TERMINAL, WHEN_BCD)

    def line_mac(self, header: bytes) -> bytes:
        return line_protection_mac(self.damk, self.challenge or bytes(4), header)


def _raw(data: bytes) -> object:
    return ("raw", data)


STEPS = st.one_of(
    st.binary(max_size=40).map(_raw),
    st.builds(lambda cla, ins, p1p2, body: ("raw", bytes((cla, ins)) + p1p2 + body),
              st.sampled_from([0x00, 0x80, 0x84]), st.sampled_from([0xA4, 0xB0, 0xB2, 0x5C, 0x50, 0xDC, 0x54, 0x52,
                                                                      0x5A, 0x84, 0x1E, 0x18, 0xC0]),
              st.binary(min_size=2, max_size=2), st.binary(max_size=140)),
    st.just(("select",)),
    st.tuples(st.just("init"), st.sampled_from([cc.InitializeForPurchase, cc.InitializeForCappPurchase,
                                                cc.InitializeForLoad]),
              st.sampled_from([Purse.EP, Purse.EP, Purse.ED]), st.sampled_from([1, 1, 1, 2]),
              st.integers(0, 1500)),
    st.tuples(st.just("update"), st.sampled_from([(0x1A, 2), (0x1A, 1), (0x1A, 9), (0x1E, 0)]),
              st.binary(min_size=1, max_size=130), st.booleans()),
    st.tuples(st.just("debit"), st.integers(0, 2**32 - 1), st.binary(min_size=4, max_size=4), st.booleans()),
    st.tuples(st.just("credit"), st.binary(min_size=4, max_size=4), st.booleans()),
    st.tuples(st.just("prove"), st.sampled_from([0x01, 0x02, 0x05, 0x06, 0x09]), st.integers(0, 0xFFFF)),
    st.just(("power_on",)),
    st.tuples(st.just("challenge"), st.sampled_from([4, 8])),
    st.tuples(st.just("line"), st.sampled_from([cc.ApplicationBlock, cc.ApplicationUnblock]),
              st.binary(min_size=4, max_size=4), st.booleans()),
    st.tuples(st.just("balance"), st.sampled_from([Purse.EP, Purse.ED])),
)


TAPS = st.builds(
    lambda kind, purse, amount, tsn, updates: [("select",), ("init", kind, purse, 1, amount),
                                               *(updates if kind is cc.InitializeForCappPurchase else ()),
                                               ("credit", bytes(4), True) if kind is cc.InitializeForLoad
                                               else ("debit", tsn, bytes(4), True)],
    st.sampled_from([cc.InitializeForPurchase, cc.InitializeForCappPurchase, cc.InitializeForLoad]),
    st.sampled_from([Purse.EP, Purse.ED]), st.integers(0, 1200), st.integers(0, 2**32 - 1),
    st.lists(st.tuples(st.just("update"), st.sampled_from([(0x1A, 2), (0x1E, 0)]), st.binary(min_size=1, max_size=48),
                       st.just(True)), max_size=2))
"""A whole purse transaction with correct MACs, so that verified debits and loads happen among the random steps."""
SEQUENCES = st.lists(st.one_of(STEPS.map(lambda step: [step]), TAPS), min_size=1, max_size=25).map(
    lambda groups: [step for group in groups for step in group])


def build(step: tuple, oracle: Oracle) -> bytes | None:  # type: ignore[type-arg]
    """The APDU of one step (None for a power-on); "valid" flags make the MACs the oracle computes."""
    name = step[0]
    if name == "raw":
        return step[1]
    if name == "select":
        return SELECT_EP
    if name == "init":
        return step[1](step[3], step[4], TERMINAL, step[2]).to_bytes()
    if name == "update":
        (sfi, record_id), body, well_formed = step[1:]
        if well_formed:
            body = (bytes((0x27, record_id)) + BUS[2:]) if sfi == 0x1A else body.ljust(48, b"\0")[:48]
        return cc.UpdateCappDataCache(sfi, record_id, body).to_bytes()
    if name == "debit":
        tsn, mac, valid = step[1:]
        return cc.DebitForPurchase(tsn, WHEN, (oracle.mac1(tsn) or mac) if valid else mac).to_bytes()
    if name == "credit":
        mac, valid = step[1:]
        return cc.CreditForLoad(WHEN, (oracle.mac2() or mac) if valid else mac).to_bytes()
    if name == "prove":
        return cc.GetTransactionProve(step[1], step[2]).to_bytes()
    if name == "challenge":
        return cc.GetChallenge(step[1]).to_bytes()
    if name == "line":
        kind, mac, valid = step[1:]
        return kind(oracle.line_mac(bytes((0x84, kind.INS, 0, 0, 4))) if valid else mac).to_bytes()
    if name == "balance":
        return cc.GetBalance(step[1]).to_bytes()
    return None


def purses(card: SimCard) -> tuple[PurseState, PurseState]:
    passbook = card.image.passbook
    return PurseState(*_fields(card.image.purse)), PurseState(*_fields(passbook))  # type: ignore[arg-type]


def _fields(purse: PurseState) -> tuple[int, int, int, int]:
    return purse.balance, purse.overdraft_limit, purse.offline_atc, purse.online_atc


@settings(max_examples=1000, deadline=None)
@given(SEQUENCES, st.integers(0, 2**32 - 1))
def test_random_sequences_change_balances_only_through_verified_macs(steps: list[tuple], seed: int) -> None:  # type: ignore[type-arg]
    card = e2e_card(balance=1000, passbook=PurseState(300))
    card.randbytes = random.Random(seed).randbytes
    oracle = Oracle(card)
    card.power_on()
    for step in steps:
        apdu = build(step, oracle)
        if apdu is None:
            card.power_on()
            continue
        before = purses(card)
        answer = ResponseAPDU.parse(card.execute(apdu))
        after = purses(card)
        ins = apdu[1] if len(apdu) > 1 else None
        if answer.sw == 0x9000 and ins in (0x54, 0x52) and apdu[0] == 0x80:
            # an accepted DEBIT or CREDIT carried the MAC a PSAM / load host makes for the open INITIALIZE
            assert oracle.init is not None
            command, _ = oracle.init
            if ins == 0x54:
                assert apdu[16:20] == oracle.mac1(int.from_bytes(apdu[5:9], "big"))
            else:
                assert apdu[12:16] == oracle.mac2()
            changed = 0 if command.purse == Purse.EP else 1
            sign = -1 if ins == 0x54 else 1
            assert after[changed].balance == before[changed].balance + sign * command.amount
            counter = "offline_atc" if ins == 0x54 else "online_atc"
            assert getattr(after[changed], counter) == getattr(before[changed], counter) + 1
            assert after[1 - changed] == before[1 - changed]
            event(f"verified {'debit' if ins == 0x54 else 'credit'}")
        else:
            assert after == before, f"{apdu.hex()} -> {answer.sw:04X} changed a purse"
        oracle.saw(apdu, answer)
        assert card.internal_errors == 0


TAP_COMMANDS = 8  # SELECT, READ 17, READ 1A, INITIALIZE, UPDATE 1A, UPDATE 1E, DEBIT (and the PSAM between)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 700), st.integers(0, TAP_COMMANDS), st.booleans(), st.integers(0, 255)),
                min_size=1, max_size=6))
def test_any_tear_is_explained_by_get_transaction_prove(taps: list[tuple[int, int, bool, int]]) -> None:
    card, psam = e2e_card(balance=2000), e2e_psam()
    card.randbytes = random.Random(len(taps)).randbytes
    for amount, tear_at, committed, marker in taps:
        card.power_on()
        bus = bytes((0x27, 0x02)) + BUS[2:-1] + bytes((marker,))
        transit = bytes((0x06,)) + bytes(46) + bytes((marker,))
        fixed = [SELECT_EP, h("00B097003C"), h("00B202D480")]
        init_answer: cc.PurchaseInitResponse | None = None
        session: pc.SamPurchaseResponse | None = None
        before = PurseState(*_fields(card.image.purse))
        records_before = (dict(card.image.process_records), list(card.image.transit_log))
        debit_sent = False
        for index in range(TAP_COMMANDS):
            if index < 3:
                apdu = fixed[index]
            elif index == 3:
                apdu = cc.InitializeForCappPurchase(1, amount, TERMINAL).to_bytes()
            elif init_answer is None:
                break  # INITIALIZE refused (insufficient balance): the tap ends
            elif index == 4:
                apdu = cc.UpdateCappDataCache(0x1A, 2, bus).to_bytes()
            elif index == 5:
                apdu = cc.UpdateCappDataCache(0x1E, 0, transit).to_bytes()
            elif index == 6:
                assert session is not None
                apdu = cc.DebitForPurchase(session.tsn, WHEN, session.mac1).to_bytes()
            else:
                break
            if index == tear_at and not committed:
                break  # the card leaves before the command reaches it
            answer = call(card, apdu)
            debit_sent = debit_sent or index == 6
            if index == tear_at:
                break  # processed and committed; the answer is lost
            if index == 3 and answer.sw == 0x9000:
                init_answer = cc.PURCHASE_INIT_RESPONSE.parse(answer.data)
                sam = call(psam, pc.InitSamForPurchase(init_answer.random, init_answer.offline_atc, amount, 0x09, WHEN,
                                                       init_answer.key_version, init_answer.algorithm_id,
                                                       card.serial[2:], card.issuer_id).to_bytes())
                session = pc.SAM_PURCHASE_RESPONSE.parse(sam.data)
        # the card comes back: what does it say?
        card.power_on()
        assert call(card, SELECT_EP).sw == 0x9000
        balance = int.from_bytes(call(card, cc.GetBalance().to_bytes()).data, "big", signed=True)
        assert card.internal_errors == 0
        if init_answer is None:
            assert card.image.purse == before
            continue
        atc = init_answer.offline_atc
        prove = call(card, cc.GetTransactionProve(0x09, atc + 1).to_bytes())
        debited = card.image.purse.offline_atc == atc + 1
        event("debited" if debited else "not debited")
        assert debited == (prove.sw == 0x9000) == debit_sent
        assert debited == (balance == before.balance - amount) or amount == 0
        assert (prove.sw == 0x9406) == (not debited)
        assert session is not None
        if debited:
            key = purchase_session_key(card.image.keys[1].purchase, init_answer.random, atc, session.tsn)
            tac = purchase_tac(tac_key(card.image.keys[1].tac), amount, 0x09, TERMINAL, session.tsn, WHEN_BCD)
            assert prove.data == purchase_mac2(key, amount) + tac
            assert card.image.process_records[2] == bus and card.image.transit_log[0] == transit
            assert card.image.transaction_log[0] == log_record(atc, 0, amount, 0x09, TERMINAL, WHEN_BCD)
            # the PSAM's session is still open: the proven MAC2 checks there
            assert call(psam, pc.CreditSamForPurchase(prove.data[:4]).to_bytes()).sw == 0x9000
        else:
            assert balance == before.balance and card.image.purse.offline_atc == atc
            assert (dict(card.image.process_records), list(card.image.transit_log)) == records_before
            call(psam, pc.CreditSamForPurchase(bytes(4)).to_bytes())  # close the PSAM session either way


def test_tear_after_debit_through_the_simulated_reader() -> None:
    """The reader's own tear plan (after DEBIT committed): the terminal gets CardRemoved, the card has debited, and
    the proof recovers the TAC the terminal never received."""
    card, psam = e2e_card(balance=500), e2e_psam()
    reader = SimReader(card, timing=None, tears=[Tear.after("8054")])
    channel = Channel(reader)
    channel.activate()
    channel.call(SELECT_EP, "select")
    init = cc.PURCHASE_INIT_RESPONSE.parse(
        channel.call(cc.InitializeForCappPurchase(1, 200, TERMINAL).to_bytes(), "init").data)
    sam = pc.SAM_PURCHASE_RESPONSE.parse(call(psam, pc.InitSamForPurchase(
        init.random, init.offline_atc, 200, 9, WHEN, 1, 0, card.serial[2:], card.issuer_id).to_bytes()).data)
    try:
        channel.call(cc.DebitForPurchase(sam.tsn, WHEN, sam.mac1).to_bytes(), "debit")
        raise AssertionError("the tear did not happen")
    except CardRemoved:
        pass
    reader.put_back()
    channel.activate()
    channel.call(SELECT_EP, "select")
    assert channel.call(cc.GetBalance().to_bytes(), "balance").data == (300).to_bytes(4, "big")
    proof = cc.PROVE_RESPONSE.parse(channel.call(cc.GetTransactionProve(9, init.offline_atc + 1).to_bytes(),
                                                 "prove").data)
    assert call(psam, pc.CreditSamForPurchase(proof.mac2).to_bytes()).sw == 0x9000
    assert card.image.proofs[9].tac == proof.tac
