"""The device contract of the simulated card and PSAM: every APDU is parsed whole by the codecs, and the handler that
answers it gets exactly the command parsed from that APDU (nothing remembered from another one)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import card_commands as cc
from protocols import psam_commands as pc
from protocols.errors import ProtocolError
from sim.card import cpu_card
from protocols.status import CardStatus
from sim.device import parse_or_status
from sim import psam as sim_psam

from .card_support import SELECT_EP, TERMINAL, e2e_card, e2e_psam


def test_parse_or_status_maps_refusals_to_status_words() -> None:
    def parse(apdu: bytes) -> tuple[str, bytes]:
        if apdu == b"bad":
            raise ProtocolError("wrong length", sw=0x6700)
        if apdu == b"odd":
            raise ProtocolError("no status word of its own")
        return ("parsed", apdu)

    assert parse_or_status(parse, b"a1") == ("parsed", b"a1")
    assert parse_or_status(parse, b"bad") == 0x6700
    assert parse_or_status(parse, b"odd") == CardStatus.INTERNAL_ERROR


@contextmanager
def handlers_watched(table: dict[type, Callable[..., bytes]]) -> Iterator[list[Any]]:
    """Every command a device's handler table hands a handler, in order, while the block runs."""
    seen: list[Any] = []
    saved = dict(table)

    def watch(handler: Callable[..., bytes]) -> Callable[..., bytes]:
        def watched(device: object, command: object, *rest: object) -> bytes:
            seen.append(command)
            return handler(device, command, *rest)
        return watched

    table.update({kind: watch(handler) for kind, handler in saved.items()})
    try:
        yield seen
    finally:
        table.update(saved)


_DATES = st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 12, 31)).map(lambda d: d.replace(microsecond=0))
_MAC = st.binary(min_size=4, max_size=4)
_CARD_COMMANDS = st.one_of(
    st.just(SELECT_EP),
    st.builds(lambda amount, index: cc.InitializeForCappPurchase(index, amount, TERMINAL).to_bytes(),
              st.integers(0, 2000), st.sampled_from([1, 1, 2])),
    st.builds(lambda record: cc.UpdateCappDataCache(0x1E, 0, record).to_bytes(), st.binary(min_size=1, max_size=60)),
    st.builds(lambda tsn, when, mac: cc.DebitForPurchase(tsn, when, mac).to_bytes(),
              st.integers(0, 0xFFFFFFFF), _DATES, _MAC),
    st.builds(lambda when, mac: cc.CreditForLoad(when, mac).to_bytes(), _DATES, _MAC),
    st.builds(lambda kind, atc: cc.GetTransactionProve(kind, atc).to_bytes(), st.sampled_from([6, 9]),
              st.integers(0, 0xFFFF)),
    st.builds(lambda sfi, le: cc.ReadBinary(sfi, 0, le).to_bytes(), st.sampled_from([0x15, 0x17]),
              st.sampled_from([30, 60, 256])),
    st.builds(lambda mac: cc.ApplicationBlock(mac).to_bytes(), _MAC),
    st.just(cc.GetChallenge(4).to_bytes()),
)
_PSAM_COMMANDS = st.one_of(
    st.just(pc.select_application().to_bytes()),
    st.builds(lambda random, atc, amount, kind, when, version, serial, issuer: pc.InitSamForPurchase(
        random, atc, amount, kind, when, version, 0, serial, issuer).to_bytes(),
        _MAC, st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.sampled_from([6, 9]), _DATES,
        st.sampled_from([1, 2]), st.binary(min_size=8, max_size=8),
        st.one_of(st.none(), st.binary(min_size=8, max_size=8))),
    st.builds(lambda mac: pc.CreditSamForPurchase(mac).to_bytes(), _MAC),
    st.builds(lambda factors: pc.DesInit(0x44, 1, factors).to_bytes(),
              st.lists(st.binary(min_size=8, max_size=8), min_size=1, max_size=2).map(tuple)),
)


def _mutated(commands: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Well-formed commands, and the same with one byte changed or the last byte cut (what the codec may refuse)."""
    def mutate(apdu: bytes, where: int, value: int, cut: bool) -> bytes:
        if cut:
            return apdu[:-1]
        where %= len(apdu)
        return apdu[:where] + bytes((value,)) + apdu[where + 1:]
    return st.one_of(commands, st.builds(mutate, commands, st.integers(0, 200), st.integers(0, 255), st.booleans()))


def _each_handler_gets_its_own_command(device: Any, table: dict[type, Callable[..., bytes]],
                                       parse: Callable[[bytes], Any], apdus: list[bytes]) -> None:
    with handlers_watched(table) as seen:
        for apdu in apdus:
            seen.clear()
            device.execute(apdu)
            try:
                expected = parse(apdu)
            except ProtocolError:
                assert seen == []  # refused by the codec: no handler ran
                continue
            if type(expected) in table:
                assert len(seen) == 1 and type(seen[0]) is type(expected) and seen[0] == expected
    assert device.internal_errors == 0


@settings(max_examples=150, deadline=None)
@given(st.lists(_mutated(_CARD_COMMANDS), min_size=1, max_size=12))
def test_each_card_handler_gets_the_command_parsed_from_its_own_apdu(apdus: list[bytes]) -> None:
    _each_handler_gets_its_own_command(e2e_card(), cpu_card._HANDLERS, cc.parse_card_command, [SELECT_EP, *apdus])


@settings(max_examples=150, deadline=None)
@given(st.lists(_mutated(_PSAM_COMMANDS), min_size=1, max_size=12))
def test_each_psam_handler_gets_the_command_parsed_from_its_own_apdu(apdus: list[bytes]) -> None:
    _each_handler_gets_its_own_command(e2e_psam(), sim_psam._HANDLERS, pc.parse_psam_command,
                                       [pc.select_application().to_bytes(), *apdus])
