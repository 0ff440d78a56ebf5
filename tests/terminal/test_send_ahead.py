"""Commands sent ahead (Channel.send, Psam.send_purchase_mac1): the answer taken later, errors raised where the caller
waits, the trace marking the exchanges and the wait, so a modeled timeline can run them beside the card's."""

from __future__ import annotations

import datetime as dt

import pytest

from protocols import psam_commands as pc
from protocols.hexutil import parse_hex as h
from sim.psam import demo_psam
from sim.reader import SimSamSlot, Tear
from terminal.channel import Channel
from terminal.errors import CardRemoved, OutOfService, StatusError
from terminal.psam import Psam
from terminal.trace import Exchange, Tracer

FACTOR, ISSUER = h("4991585000011383"), h("02403640FFFFFFFF")


class Events(Tracer):
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def exchange(self, exchange: Exchange) -> None:
        self.events.append(("exchange", (exchange.command[:2].hex().upper(), exchange.ahead)))

    def waited(self, link: str, at_ns: int) -> None:
        self.events.append(("waited", link))


def started(tears: tuple[Tear, ...] = ()) -> tuple[Psam, Events]:
    events = Events()
    psam = Psam(Channel(SimSamSlot(demo_psam(t0=True), tears=tears, name="psam"), peer="PSAM", tracer=events))
    psam.start()
    events.events.clear()
    return psam, events


def mac1_fields(key_version: int = 1) -> dict[str, object]:
    return {"random": h("11223344"), "offline_atc": 0x36, "amount": 200, "transaction_type": 9,
            "when": h("20260302060000"), "key_version": key_version, "algorithm_id": 0,
            "card_serial": FACTOR, "issuer_id": ISSUER}


def test_mac1_sent_ahead_is_the_mac1_waited_for_and_the_trace_says_so() -> None:
    ahead, events = started()
    pending = ahead.send_purchase_mac1(**mac1_fields())  # type: ignore[arg-type]
    assert events.events == [("exchange", ("8070", True)), ("exchange", ("00C0", True))]  # T=0: 61 08, GET RESPONSE
    assert ahead.session_tsn is None  # not the session's until its answer is taken
    tsn, mac1 = pending.result()
    assert events.events[-1] == ("waited", "psam") and ahead.session_tsn == tsn
    waited, _ = started()
    assert waited.purchase_mac1(**mac1_fields()) == (tsn, mac1)  # type: ignore[arg-type]


@pytest.mark.parametrize("two_level", [True, False])
def test_the_wrappers_8070_is_the_codecs(two_level: bool) -> None:
    """The wrapper builds 8070 from the date-time's BCD bytes: the same APDU as the command built from the
    date-time."""
    sent: list[bytes] = []

    class Commands(Tracer):
        def exchange(self, exchange: Exchange) -> None:
            sent.append(exchange.command)

    psam = Psam(Channel(SimSamSlot(demo_psam()), peer="PSAM", tracer=Commands()), two_level=two_level)
    psam.start()
    sent.clear()
    fields = mac1_fields()
    psam.send_purchase_mac1(**fields)  # type: ignore[arg-type]
    expected = pc.InitSamForPurchase(h("11223344"), 0x36, 200, 9, dt.datetime(2026, 3, 2, 6, 0, 0), 1, 0, FACTOR,
                                     ISSUER if two_level else None)
    assert sent[0] == expected.to_bytes()


def test_a_refusal_or_a_lost_psam_is_raised_where_the_caller_waits() -> None:
    psam, _ = started()
    pending = psam.send_purchase_mac1(**mac1_fields(key_version=9))  # type: ignore[arg-type]  # no such key: 6A88
    with pytest.raises(StatusError) as refused:
        pending.result()
    assert refused.value.sw == 0x6A88 and refused.value.peer == "PSAM"
    gone, _ = started((Tear.before("8070"),))
    pending = gone.send_purchase_mac1(**mac1_fields())  # type: ignore[arg-type]
    with pytest.raises(OutOfService, match="not answering"):
        pending.result()


def test_channel_send_keeps_a_link_error_for_the_wait() -> None:
    events = Events()
    channel = Channel(SimSamSlot(demo_psam(), tears=(Tear.before(0),), name="psam"), peer="PSAM", tracer=events)
    channel.activate()
    pending = channel.send(h("00B0960006"))
    assert events.events == [("exchange", ("00B0", True))]
    with pytest.raises(CardRemoved):
        pending.result()
    assert events.events[-1] == ("waited", "psam")
