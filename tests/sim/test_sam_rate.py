"""The SAM slot raises the PSAM's line speed as its ATR allows: a PPS exchange at activation, the agreed rate in the
timing model of every exchange after it, and the modeled tap that follows (no more exchanges, less line time)."""

from __future__ import annotations

import datetime as dt

import pytest

from protocols.atr import DEFAULT_TA1, pps_request
from protocols.hexutil import parse_hex as h
from sim.fixture import load_cpu_fixture
from sim.psam import DEFAULT_ATR, demo_psam
from sim.reader import SimSamSlot
from sim.tap import run_tap
from sim.timing import ContactTiming
from terminal.clock import ManualClock
from terminal.link import Activation

DEMO_CARD = "sim/fixtures/demo-card.json"
READ_TERMINAL = h("00B0960006")
TERMINAL_DEMO = h("200041599997")  # the demo PSAM's terminal number


def test_the_psam_confirms_its_own_rate_right_after_reset_only() -> None:
    psam = demo_psam()
    psam.power_on()
    assert psam.pps(pps_request(0x18)) == pps_request(0x18)
    psam.power_on()
    assert psam.pps(pps_request(0x13)) == h("FF 00 FF")  # a rate its ATR does not offer: the default one
    psam.power_on()
    psam.execute(READ_TERMINAL)
    assert psam.pps(pps_request(0x18)) == h("FF 00 FF")  # too late: an APDU came first
    psam.power_on()
    assert psam.pps(h("FF 10 18 00")) == h("FF 00 FF")  # a bad check byte


def test_the_slot_negotiates_the_atr_rate_and_models_every_exchange_at_it() -> None:
    slot = SimSamSlot(demo_psam())
    assert slot.activate(1.0) == Activation("T=0", atr=DEFAULT_ATR)
    assert slot.ta1 == 0x18 and slot.model is not None and slot.model.baud == 115_200
    # the PPS exchange (4 characters each way, one turnaround) at the default rate
    assert slot.activation_model is not None
    assert slot.activation_model.line_us == pytest.approx((8 * 12 + 4) / 9600 * 1e6)
    answer = slot.transceive(READ_TERMINAL, 1.0)
    assert answer == TERMINAL_DEMO + h("9000")
    assert slot.last_model is not None and slot.last_model.line_us == pytest.approx((5 + 1 + 6 + 2) * 12 / 115200 * 1e6
                                                                                  + 2 * 4 / 115200 * 1e6)


def test_a_fixed_speed_or_a_slower_slot_negotiates_nothing() -> None:
    for timing in (ContactTiming(baud=9600), ContactTiming(max_baud=38_400)):
        slot = SimSamSlot(demo_psam(), timing=timing)
        slot.activate(1.0)
        assert slot.ta1 == DEFAULT_TA1 and slot.activation_model is None
        assert slot.model is not None and slot.model.baud == 9600


def test_specific_mode_speaks_at_ta1_without_pps() -> None:
    slot = SimSamSlot(demo_psam(atr=h("3B 90 18 10 00")))  # TA2 present: the rate of TA1 from the start
    slot.activate(1.0)
    assert slot.activation_model is None and slot.model is not None and slot.model.baud == 115_200


def test_a_psam_that_keeps_the_default_rate() -> None:
    slot = SimSamSlot(demo_psam(atr=h("3B 5C 13 00") + b"YKT-PSAM-SIM"))  # offers 38400
    slot.activate(1.0)
    assert slot.ta1 == 0x13 and slot.model is not None and slot.model.baud == 38_400


def test_the_modeled_tap_with_pps_has_the_same_exchanges_and_less_psam_line_time() -> None:
    at = dt.datetime(2026, 3, 2, 6, 0, 0)
    fixed = run_tap(load_cpu_fixture(DEMO_CARD), ManualClock(at), baud=9600)
    negotiated = run_tap(load_cpu_fixture(DEMO_CARD), ManualClock(at))
    assert [step.label for step in negotiated.steps] == [step.label for step in fixed.steps]
    assert (fixed.baud, fixed.pps, negotiated.baud, negotiated.pps) == (9600, False, 115_200, True)
    assert negotiated.psam_line_us == pytest.approx(fixed.psam_line_us / 12)
    assert negotiated.card_us == fixed.card_us and negotiated.psam_us == fixed.psam_us
    assert negotiated.total_us < 150_000 < fixed.total_us
