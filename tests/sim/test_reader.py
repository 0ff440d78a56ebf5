"""The simulated reader and SAM slot: the link contract, tear injection, and timing models on every exchange."""

from __future__ import annotations

import datetime as dt

import pytest

from protocols.card_commands import (
    DEBIT_RESPONSE,
    PURCHASE_INIT_RESPONSE,
    DebitForPurchase,
    GetTransactionProve,
    InitializeForCappPurchase,
    PurchaseInitResponse,
    ReadRecord,
    UpdateCappDataCache,
)
from protocols.errors import YktError
from protocols.hexutil import parse_hex
from protocols.psam_commands import (
    SAM_PURCHASE_RESPONSE,
    CreditSamForPurchase,
    InitSamForPurchase,
    read_key_index,
    read_terminal_number,
    select_application,
)
from sim.card import SimCard
from sim.issuing import issue_card, load_demo_keyset
from sim.psam import demo_psam
from sim.reader import SimReader, SimSamSlot, SlotError, Tear, TearEvent
from sim.scripted import ApduPattern
from sim.timing import ContactlessTime, ContactlessTiming, ContactTime, ContactTiming
from terminal.channel import Channel
from terminal.errors import CardRemoved, ReaderGone
from terminal.link import Activation, Link
from terminal.trace import ExchangeLog

H = parse_hex
FC_MHZ = 13.56
CARD_ACTIVATION = Activation("T=CL", uid=H("04A1B2C3D4E5F6"), atqa=H("0044"), sak=0x20, ats=H("0578807002"))
SAM_ACTIVATION = Activation("T=0", atr=H("3B6900008104000000000000"))

SELECT = H("00A4040008A000000632010105")
READ_15 = H("00B095001E")
INIT = H("805003020B01000000640000000000010F")
UPDATE_1A = H("80DC02D080") + bytes(128)
DEBIT = H("805401000F") + bytes(15) + H("08")
PURCHASE = [SELECT, READ_15, INIT, UPDATE_1A, DEBIT]


class CountingCard:
    """Answers 9000 (or INS-specific data) and remembers what it powered on for and what it executed."""

    def __init__(self, activation: Activation = CARD_ACTIVATION) -> None:
        self.activation = activation
        self.power_ons = 0
        self.executed: list[bytes] = []

    def power_on(self) -> Activation:
        self.power_ons += 1
        return self.activation

    def execute(self, apdu: bytes) -> bytes:
        self.executed.append(apdu)
        if apdu[1] == 0x54:
            return H("0102030405060708 9000")
        return H("9000")


def activated(card: CountingCard | None = None, **kwargs: object) -> tuple[SimReader, CountingCard]:
    card = card or CountingCard()
    reader = SimReader(card, **kwargs)  # type: ignore[arg-type]
    assert reader.activate(1.0) == card.activation
    return reader, card


def run(reader: Link, commands: list[bytes]) -> list[bytes]:
    return [reader.transceive(command, 1.0) for command in commands]


# --- the field -----------------------------------------------------------------------------------------------------


def test_put_activate_exchange_take() -> None:
    card = CountingCard()
    reader = SimReader(timing=None)
    assert isinstance(reader, Link) and reader.name == "reader"
    assert not reader.present and reader.activate(1.0) is None
    reader.put(card)
    assert reader.present and card.power_ons == 0  # in the field, not yet activated
    assert reader.activate(1.0) == CARD_ACTIVATION and reader.activation == CARD_ACTIVATION
    assert run(reader, [SELECT, DEBIT]) == [H("9000"), H("0102030405060708 9000")]
    assert card.executed == [SELECT, DEBIT] and reader.exchanges == 2
    assert reader.take() is card and reader.removed is card
    assert not reader.present and reader.take() is None
    with pytest.raises(CardRemoved, match="no card in the field"):
        reader.transceive(SELECT, 1.0)
    assert reader.activate(1.0) is None
    assert card.executed == [SELECT, DEBIT]


def test_each_activation_powers_the_card_on_again() -> None:
    reader, card = activated(timing=None)
    run(reader, [SELECT, READ_15])
    reader.deactivate()
    with pytest.raises(CardRemoved, match="not activated"):
        reader.transceive(SELECT, 1.0)
    assert reader.activate(1.0) == CARD_ACTIVATION
    assert card.power_ons == 2 and reader.exchanges == 0
    run(reader, [SELECT])
    assert reader.exchanges == 1


def test_exchange_before_any_activation_is_card_removed() -> None:
    reader = SimReader(CountingCard(), timing=None)
    with pytest.raises(CardRemoved):
        reader.transceive(SELECT, 1.0)


def test_one_device_per_slot() -> None:
    reader = SimReader(CountingCard())
    with pytest.raises(SlotError, match="already holds"):
        reader.put(CountingCard())
    with pytest.raises(SlotError, match="no device has left"):
        SimReader().put_back()
    assert issubclass(SlotError, YktError)


def test_closed_reader_is_gone() -> None:
    reader, _ = activated(timing=None)
    reader.close()
    with pytest.raises(ReaderGone):
        reader.transceive(SELECT, 1.0)
    with pytest.raises(ReaderGone):
        reader.activate(1.0)


def test_context_manager_closes() -> None:
    with SimSamSlot(CountingCard(SAM_ACTIVATION)) as slot:
        assert slot.activate(1.0) == SAM_ACTIVATION
    with pytest.raises(ReaderGone):
        slot.activate(1.0)


# --- timing --------------------------------------------------------------------------------------------------------


def test_no_timing_model_leaves_last_model_none() -> None:
    reader, _ = activated(timing=None)
    run(reader, PURCHASE)
    assert reader.last_model is None and reader.activation_model is None


def test_every_exchange_gets_its_modeled_time() -> None:
    reader, _ = activated()
    reader.transceive(H("00A4040000"), 1.0)
    assert reader.last_model == ContactlessTime(17960 / FC_MHZ, 2000.0, 1, 1, 0)  # see test_timing
    reader.transceive(UPDATE_1A, 1.0)
    assert reader.last_model == ContactlessTiming().model(CARD_ACTIVATION).exchange(UPDATE_1A, H("9000"))
    assert reader.activation_model is not None and reader.activation_model.line_us > 0


def test_the_model_follows_the_card_in_the_field() -> None:
    small_frames = CountingCard(Activation("T=CL", uid=H("01020304"), sak=0x20, ats=H("0575807002")))  # FSC 64
    reader, _ = activated(small_frames)
    reader.transceive(UPDATE_1A, 1.0)
    assert reader.last_model.blocks_out == 3  # type: ignore[union-attr]
    reader.take()
    reader.put(CountingCard())  # FSC 256
    reader.activate(1.0)
    reader.transceive(UPDATE_1A, 1.0)
    assert reader.last_model.blocks_out == 1  # type: ignore[union-attr]


def test_bit_rate_setting_reaches_the_model() -> None:
    fast_card = CountingCard(Activation("T=CL", uid=H("01020304"), sak=0x20, ats=H("0578777002")))
    reader, _ = activated(fast_card, timing=ContactlessTiming(kbps=848))
    reader.transceive(H("00A4040000"), 1.0)
    assert reader.last_model.line_us == pytest.approx(4296 / FC_MHZ)  # type: ignore[union-attr]


def test_sam_slot_uses_the_t0_model() -> None:
    sam = CountingCard(SAM_ACTIVATION)
    slot = SimSamSlot(sam, timing=ContactTiming(baud=9600))
    assert slot.name == "sam" and slot.activate(1.0) == SAM_ACTIVATION
    slot.transceive(H("8070000024") + bytes(36), 1.0)
    assert slot.last_model == ContactTime(544 / 9600 * 1e6, 10_000.0, 44)
    assert SimSamSlot(sam, timing=None).last_model is None


def test_channel_traces_the_models_of_a_t0_exchange() -> None:
    class T0Sam(CountingCard):
        def execute(self, apdu: bytes) -> bytes:
            self.executed.append(apdu)
            return H("6108") if apdu[1] == 0x70 else H("1122334455667788 9000")

    log = ExchangeLog()
    channel = Channel(SimSamSlot(T0Sam(SAM_ACTIVATION)), peer="PSAM", tracer=log)
    channel.activate()
    assert channel.t0
    response = channel.call(H("8070000024") + bytes(36) + H("08"), "INIT SAM FOR PURCHASE")
    assert response.data == H("1122334455667788")
    assert [exchange.command for exchange in log.exchanges] == [H("8070000024") + bytes(36), H("00C0000008")]
    assert [exchange.model for exchange in log.exchanges] == [ContactTime(544 / 9600 * 1e6, 10_000.0, 44),
                                                              ContactTime(200 / 9600 * 1e6, 200.0, 16)]


# --- tears ---------------------------------------------------------------------------------------------------------


def test_tear_before_an_exchange() -> None:
    reader, card = activated(tears=[Tear.before(2)])
    run(reader, PURCHASE[:2])
    with pytest.raises(CardRemoved, match="before the card processed exchange 2"):
        reader.transceive(INIT, 1.0)
    assert card.executed == PURCHASE[:2]  # INIT never reached the card
    assert reader.torn == [TearEvent(2, INIT, False, None, Tear.before(2))]
    assert not reader.present and reader.removed is card
    model = ContactlessTiming().model(CARD_ACTIVATION)
    assert reader.last_model == model.torn(INIT, None)
    with pytest.raises(CardRemoved):
        reader.transceive(INIT, 1.0)
    assert reader.activate(1.0) is None


def test_tear_after_the_card_committed() -> None:
    reader, card = activated(tears=[Tear.after(4)])
    run(reader, PURCHASE[:4])
    with pytest.raises(CardRemoved, match="after the card processed exchange 4"):
        reader.transceive(DEBIT, 1.0)
    assert card.executed == PURCHASE  # the DEBIT ran; its answer was lost
    assert reader.torn == [TearEvent(4, DEBIT, True, H("0102030405060708 9000"), Tear.after(4))]
    assert reader.last_model.device_us == 25_000.0  # type: ignore[union-attr]


def test_put_back_after_a_tear_reactivates_and_the_plan_is_spent() -> None:
    reader, card = activated(tears=[Tear.before(0)])
    with pytest.raises(CardRemoved):
        reader.transceive(SELECT, 1.0)
    assert reader.planned == ()
    assert reader.put_back() is card
    assert reader.activate(1.0) == CARD_ACTIVATION and card.power_ons == 2
    assert run(reader, [SELECT]) == [H("9000")]
    assert card.executed == [SELECT]


def test_tear_by_command() -> None:
    reader, card = activated(tears=[Tear.before("8054")])
    run(reader, PURCHASE[:4])
    with pytest.raises(CardRemoved):
        reader.transceive(DEBIT, 1.0)
    assert card.executed == PURCHASE[:4] and reader.torn[0].index == 4


def test_tear_at_the_second_matching_command() -> None:
    reader, card = activated(tears=[Tear.after(ApduPattern.parse("80DC ?? D0*"), occurrence=2)])
    second = H("80DC00F030") + bytes(48)
    third = H("80DC03D080") + bytes(128)
    run(reader, [INIT, UPDATE_1A, second])  # 80DC00F0 does not match the pattern
    with pytest.raises(CardRemoved):
        reader.transceive(third, 1.0)
    assert card.executed[-1] == third and reader.torn[0].index == 3


def test_command_occurrences_count_from_the_last_activation() -> None:
    reader, card = activated(tears=[Tear.before(H("8054"), occurrence=2)])
    run(reader, [DEBIT])
    reader.activate(1.0)
    run(reader, [DEBIT])  # the first DEBIT of this session
    with pytest.raises(CardRemoved):
        reader.transceive(DEBIT, 1.0)
    assert card.executed == [DEBIT, DEBIT]


def test_exchange_index_counts_from_the_last_activation() -> None:
    reader, card = activated(tears=[Tear.before(1)])
    run(reader, [SELECT])
    reader.activate(1.0)
    run(reader, [SELECT])
    with pytest.raises(CardRemoved):
        reader.transceive(READ_15, 1.0)
    assert card.executed == [SELECT, SELECT]


def test_several_plans_fire_in_turn() -> None:
    reader, card = activated(tears=[Tear.before("8054"), Tear.after("805A")])
    with pytest.raises(CardRemoved):
        run(reader, PURCHASE)
    reader.put_back()
    reader.activate(1.0)
    run(reader, [SELECT])
    with pytest.raises(CardRemoved):
        reader.transceive(H("805A000902000608"), 1.0)
    assert [event.index for event in reader.torn] == [4, 1]
    assert card.executed[-1] == H("805A000902000608")
    reader.put_back()
    reader.activate(1.0)
    assert run(reader, PURCHASE)[-1] == H("0102030405060708 9000")


def test_tear_at_every_exchange() -> None:
    clean, _ = activated(timing=None)
    run(clean, PURCHASE)
    plans = Tear.everywhere(clean.exchanges)
    assert len(plans) == 2 * len(PURCHASE)
    for plan in plans:
        reader, card = activated(tears=[plan])
        with pytest.raises(CardRemoved):
            run(reader, PURCHASE)
        assert plan.at is not None
        assert len(card.executed) == plan.at + plan.committed
        assert reader.torn[0].index == plan.at and reader.torn[0].committed == plan.committed
        assert reader.activate(1.0) is None


def test_cancel_tears() -> None:
    reader, _ = activated(tears=[Tear.before(0)])
    reader.cancel_tears()
    assert reader.planned == ()
    run(reader, [SELECT])
    reader.plan_tear(Tear.before(1))  # planned mid-session: counts from this session's start
    with pytest.raises(CardRemoved):
        reader.transceive(SELECT, 1.0)


def test_sam_can_be_pulled_out() -> None:
    slot = SimSamSlot(CountingCard(SAM_ACTIVATION), tears=[Tear.before("8070")])
    slot.activate(1.0)
    slot.transceive(H("00B0960006"), 1.0)
    with pytest.raises(CardRemoved):
        slot.transceive(H("8070000024") + bytes(36), 1.0)
    assert slot.last_model == ContactTiming().model().torn(H("8070000024") + bytes(36), None)
    assert slot.activate(1.0) is None


def test_channel_traces_a_torn_exchange_with_its_model() -> None:
    log = ExchangeLog()
    channel = Channel(SimReader(CountingCard(), tears=[Tear.before(0)]), tracer=log)
    channel.activate()
    with pytest.raises(CardRemoved):
        channel.transmit(SELECT)
    (exchange,) = log.exchanges
    assert exchange.response is None and exchange.error.startswith("CardRemoved")  # type: ignore[union-attr]
    assert exchange.model == ContactlessTiming().model(CARD_ACTIVATION).torn(SELECT, None)


@pytest.mark.parametrize("kwargs", [{}, {"at": 1, "command": ApduPattern(H("8054"))}, {"at": -1},
                                    {"command": ApduPattern(H("8054")), "occurrence": 0}])
def test_bad_tear_plans(kwargs: dict) -> None:
    with pytest.raises(SlotError):
        Tear(**kwargs)


# --- with the simulated T-Union card and PSAM ----------------------------------------------------------------------

WHEN = dt.datetime(2024, 5, 1, 8, 30, 0)
SELECT_EP = H("00A4040008A00000063201010500")


def t_union_lanes(*tears: Tear) -> tuple[SimCard, Channel, Channel, SimReader, ExchangeLog]:
    card = issue_card(load_demo_keyset(), serial="03104770040067442802", balance=10_000)
    log = ExchangeLog()
    reader = SimReader(card, tears=tears)
    psam = Channel(SimSamSlot(demo_psam(t0=True)), peer="PSAM", tracer=log)
    psam.activate()
    return card, Channel(reader, tracer=log), psam, reader, log


def composite_purchase(card: SimCard, lane: Channel, psam: Channel, amount: int = 200) -> PurchaseInitResponse:
    """The spec §5.2 flow up to DEBIT and the PSAM's MAC2 check; returns INITIALIZE's answer."""
    terminal = psam.call(read_terminal_number().to_bytes(), "READ BINARY 16").data
    psam.call(select_application().to_bytes(), "SELECT 8011")
    key_index = psam.call(read_key_index().to_bytes(), "READ BINARY 17").data[0]
    lane.activate()
    lane.call(SELECT_EP, "SELECT")
    record = lane.call(ReadRecord(0x1A, 2).to_bytes(), "READ RECORD 1A").data
    init = PURCHASE_INIT_RESPONSE.parse(
        lane.call(InitializeForCappPurchase(key_index, amount, terminal).to_bytes(), "INITIALIZE").data)
    mac1 = SAM_PURCHASE_RESPONSE.parse(psam.call(InitSamForPurchase(
        init.random, init.offline_atc, amount, 0x09, WHEN, init.key_version, init.algorithm_id, card.serial[2:],
        card.issuer_id).to_bytes(), "INIT SAM FOR PURCHASE").data)
    lane.call(UpdateCappDataCache(0x1A, 2, record).to_bytes(), "UPDATE CAPP DATA CACHE")
    debit = DEBIT_RESPONSE.parse(lane.call(DebitForPurchase(mac1.tsn, WHEN, mac1.mac1).to_bytes(), "DEBIT").data)
    psam.call(CreditSamForPurchase(debit.mac2).to_bytes(), "CREDIT SAM FOR PURCHASE")
    return init


def test_composite_purchase_with_modeled_times() -> None:
    card, lane, psam, reader, log = t_union_lanes()
    log.exchanges.clear()
    composite_purchase(card, lane, psam)
    assert card.balance == 9_800
    by_ins = {(exchange.link, exchange.command[1]): exchange.model for exchange in log.exchanges}
    # 8070 answered 61 08, at 115200 Bd: the rate of the demo PSAM's TA1, taken by PPS at activation
    init_sam, get_response = by_ins["sam", 0x70], by_ins["sam", 0xC0]
    assert (init_sam.line_us, init_sam.device_us) == (pytest.approx(544 / 115200 * 1e6), 10_000.0)
    assert (get_response.line_us, get_response.device_us) == (pytest.approx(200 / 115200 * 1e6), 200.0)
    assert by_ins["reader", 0xDC].blocks_out == 3  # type: ignore[union-attr]  # the card's ATS says FSC 64
    assert by_ins["reader", 0x54].device_us == 25_000.0  # type: ignore[union-attr]
    total = sum(exchange.model.total_us for exchange in log.exchanges)  # type: ignore[union-attr]
    assert reader.activation_model is not None
    assert 100_000 < total + reader.activation_model.total_us < 400_000  # DB31/T 239-2020: one purchase ≤ 400 ms


def offline_atc(log: ExchangeLog) -> int:
    """The ATC INITIALIZE answered, from the trace (the tap never returned it)."""
    (init,) = [exchange.response for exchange in log.exchanges if exchange.command[:2] == H("8050")]
    return PURCHASE_INIT_RESPONSE.parse(init[:-2]).offline_atc  # type: ignore[index]


def test_tear_after_the_debit_committed_is_proved_when_the_card_returns() -> None:
    card, lane, psam, reader, log = t_union_lanes(Tear.after("8054"))
    with pytest.raises(CardRemoved):
        composite_purchase(card, lane, psam)
    assert card.balance == 9_800  # the card committed; the terminal never saw TAC ‖ MAC2
    lost = DEBIT_RESPONSE.parse(reader.torn[0].response[:-2])  # type: ignore[index]
    assert lane.activate() is None  # gone until it is put back
    reader.put_back()
    lane.activate()
    lane.call(SELECT_EP, "SELECT")
    proof = lane.call(GetTransactionProve(0x09, offline_atc(log) + 1).to_bytes(), "GET TRANSACTION PROVE")
    assert proof.data == lost.mac2 + lost.tac


def test_tear_before_the_debit_leaves_the_purse_untouched() -> None:
    card, lane, psam, reader, log = t_union_lanes(Tear.before("8054"))
    with pytest.raises(CardRemoved):
        composite_purchase(card, lane, psam)
    assert card.balance == 10_000 and reader.torn[0].response is None
    reader.put_back()
    lane.activate()
    lane.call(SELECT_EP, "SELECT")
    proof = lane.transmit(GetTransactionProve(0x09, offline_atc(log) + 1).to_bytes())
    assert (proof.data, proof.sw) == (b"", 0x9406)
