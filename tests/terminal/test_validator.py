"""The tap, branch by branch, against the simulated card and PSAM (real cryptography, exact bytes)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from protocols.card_files import TRANSACTION_LOG_RECORD
from protocols.fci import T_UNION_EP_AID, Fci
from sim.card import SimCard
from sim.psam import demo_psam
from terminal.blacklist import build_blacklist, Blacklist
from terminal.config import ValidatorConfig
from terminal.errors import ConfigError
from terminal.journal import MemoryJournal, SqliteJournal
from terminal.trace import ExchangeLog
from terminal.validator import Validator
from terminal.outcome import Decline, TapStatus
from terminal.records import DebitState

from .validator_support import HOME_ISSUER, START, Rig, card, last_transit, serial_of

TERMINAL = bytes.fromhex("200041599997")  # the demo PSAM's terminal number


def _ins(outcome) -> list[str]:
    return [f"{e.link}:{e.command[:2].hex().upper()}" for e in outcome.exchanges]


def test_composite_purchase_in_seven_exchanges():
    rig, c = Rig(), card()
    outcome = rig.tap(c)
    assert outcome.status is TapStatus.ACCEPTED
    assert (outcome.fare, outcome.balance_before, outcome.balance_after, c.balance) == (200, 10000, 9800, 9800)
    assert outcome.card_serial == serial_of(c) and outcome.card_type == 1 and outcome.rule
    assert outcome.mac2_verified is True and len(outcome.tac) == 4
    # SELECT (9F0C instead of READ 0x15), READ 0x17, INIT CAPP, MAC1, 0x1E record, DEBIT, MAC2: nothing else.
    assert _ins(outcome) == ["reader:00A4", "reader:00B0", "reader:8050", "sam:8070", "reader:80DC", "reader:8054",
                             "sam:8072"]
    assert outcome.message == "paid 2.00, balance 98.00"
    [entry] = rig.journal.entries()
    rec = entry.record
    assert (rec.state, rec.amount, rec.balance_before, rec.trans_type, rec.terminal_id, rec.tac) == \
        (DebitState.COMPLETE, 200, 10000, 0x09, TERMINAL, outcome.tac)
    assert (rec.offline_atc, rec.tsn, rec.when, rec.mac2_verified) == (0, 0, START, True)
    rig.check_tacs()


@pytest.mark.parametrize("label, file15, reads", [(b"MOT_T_EP", True, []), (None, False, ["reader:00B0"])])
def test_a_purse_fci_of_another_shape_is_read_through_its_tree(label, file15, reads):
    """The common FCI is read by its fixed bytes; one with a label and priority takes file 0x15 from its tree, one
    without 9F0C by READ BINARY 0x15."""
    image = card().image
    fci = Fci.application(T_UNION_EP_AID, label=label, priority=2, version=b"\x02",
                          file15=image.public_info if file15 else None)
    c = SimCard(image, fci=fci)
    outcome = Rig().tap(c)
    assert outcome.status is TapStatus.ACCEPTED and outcome.card_serial == serial_of(c)
    assert _ins(outcome) == ["reader:00A4", *reads, "reader:00B0", "reader:8050", "sam:8070", "reader:80DC",
                             "reader:8054", "sam:8072"]
    if reads:
        assert outcome.exchanges[1].command == bytes.fromhex("00B095001E")


def test_exchanges_are_recorded_only_when_asked():
    rig = Rig()
    seen = ExchangeLog()
    quiet = Validator(rig.reader, rig.sam, rig.validator.fares, MemoryJournal(clock=rig.clock), clock=rig.clock,
                      keep_exchanges=False)
    watched = Validator(rig.reader, rig.sam, rig.validator.fares, MemoryJournal(clock=rig.clock), clock=rig.clock,
                        keep_exchanges=False, tracer=seen)
    assert quiet.card.tracer is None and quiet.psam.channel.tracer is None  # no Exchange is made at all
    for validator, serial in ((quiet, "03102900000000000001"), (watched, "03102900000000000002")):
        validator.start()
        rig.reader.put(card(serial))
        outcome = validator.poll()
        rig.reader.take()
        assert outcome is not None and outcome.status is TapStatus.ACCEPTED and outcome.exchanges == []
    assert [e.command[:2].hex().upper() for e in seen.exchanges][-7:] == [
        "00A4", "00B0", "8050", "8070", "80DC", "8054", "8072"]


def test_initialize_follows_the_amount_and_the_psam_after_a_restart():
    rig = Rig()
    student = card("03102900000000000002", card_type=0x02)
    for c, fare in ((card(), 200), (student, 100)):
        outcome = rig.tap(c, advance=1)
        [initialize] = [e.command for e in outcome.exchanges if e.command[:2] == b"\x80\x50"]
        assert initialize == bytes.fromhex(f"805003020B01{fare:08X}{TERMINAL.hex()}0F")
    other = bytes.fromhex("200041590001")
    rig.sam.take()
    rig.sam.put(demo_psam(other))
    rig.validator.start()
    outcome = rig.tap(card("03102900000000000003"), advance=1)
    assert outcome.accepted
    [initialize] = [e.command for e in outcome.exchanges if e.command[:2] == b"\x80\x50"]
    assert initialize == bytes.fromhex(f"805003020B01000000C8{other.hex()}0F")
    [update] = [e.command for e in outcome.exchanges if e.command[:2] == b"\x80\xdc"]
    assert update[:5] == bytes.fromhex("80DC00F030") and len(update) == 5 + 0x30


def test_the_card_keeps_the_validators_records():
    rig, c = Rig(), card()
    rig.tap(c)
    log = TRANSACTION_LOG_RECORD.parse(c.image.transaction_log[0])
    assert (log.amount, log.transaction_type, log.terminal_number, log.when) == (200, 0x09, TERMINAL, START)
    transit = last_transit(c)
    assert (transit.record_type, transit.amount, transit.balance, transit.transaction_time) == (0x06, 200, 9800, START)
    assert transit.device_id == b"\0\0" + TERMINAL
    assert (transit.acceptor_city, transit.acceptor_institution) == (bytes.fromhex("2900"), HOME_ISSUER)


def test_simple_purchase_writes_no_records():
    rig, c = Rig(config=ValidatorConfig(purchase="simple")), card()
    outcome = rig.tap(c)
    assert outcome.accepted and c.balance == 9800
    assert _ins(outcome) == ["reader:00A4", "reader:00B0", "reader:8050", "sam:8070", "reader:8054", "sam:8072"]
    assert outcome.exchanges[2].command[:4] == bytes.fromhex("80500102")
    assert c.image.transit_log == []
    assert next(rig.journal.entries()).record.trans_type == 0x06
    rig.check_tacs()


def test_section_fares_need_composite_purchase():
    rig = Rig(fares="demo-sections.toml", config=ValidatorConfig(
        purchase="simple", place=dataclasses.replace(ValidatorConfig().place, line=801)), start=False)
    with pytest.raises(ConfigError, match="tap-on/tap-off fares, which need purchase"):
        rig.validator.start()


@pytest.mark.parametrize("card_type,fare,rule_part", [(1, 200, ""), (2, 100, "50%"), (3, 0, "free"), (4, 1, "fixed")])
def test_card_type_fares(card_type, fare, rule_part):
    rig, c = Rig(), card(card_type=card_type)
    outcome = rig.tap(c)
    assert outcome.accepted and outcome.fare == fare and c.balance == 10000 - fare
    assert rule_part in outcome.rule
    assert rig.journaled() == fare


def test_refused_card_type():
    outcome = Rig().tap(c := card(card_type=9))
    assert (outcome.status, outcome.decline, outcome.detail) == (TapStatus.DECLINED, Decline.CARD_TYPE_REFUSED,
                                                                 "card type not accepted")
    assert c.balance == 10000


@pytest.mark.parametrize("fields,decline,detail", [
    ({"expiry": dt.date(2026, 11, 23), "start": dt.date(2020, 1, 1)}, Decline.EXPIRED, "expired 2026-11-23"),
    ({"start": dt.date(2026, 11, 25)}, Decline.NOT_YET_VALID, "valid from 2026-11-25"),
    ({"app_version": 0}, Decline.BAD_APPLICATION, "type 02 version 00"),
    ({"issuer": bytes.fromhex("02403640FFFFFFFF"), "interop_class": 0}, Decline.NOT_INTEROPERABLE,
     "issuer city 3640"),
])
def test_card_checks(fields, decline, detail):
    c = card(**fields)
    outcome = Rig().tap(c)
    assert (outcome.status, outcome.decline, outcome.detail) == (TapStatus.DECLINED, decline, detail)
    assert c.balance == 10000 and c.image.purse.offline_atc == 0


def test_expiry_day_itself_is_valid():
    assert Rig().tap(card(expiry=START.date())).accepted


def test_interoperable_card_from_another_city_pays():
    c = card(issuer=bytes.fromhex("02403640FFFFFFFF"), interop_class=1)
    assert Rig().tap(c).accepted and c.balance == 9800


def test_issuer_whitelist():
    config = ValidatorConfig(accepted_issuers=frozenset({bytes.fromhex("02403640FFFFFFFF")}))
    outcome = Rig(config=config).tap(card())
    assert (outcome.decline, outcome.detail) == (Decline.ISSUER_NOT_ACCEPTED, "02002900FFFFFFFF")


def test_locked_card_is_declined_at_select():
    c = card()
    c.image.blocked = True
    outcome = Rig().tap(c)
    assert (outcome.decline, outcome.detail) == (Decline.CARD_LOCKED, "SELECT: 6283 (selected application temporarily "
                                                                      "locked (blocked))")
    assert _ins(outcome) == ["reader:00A4"]


def test_blacklisted_card_is_blocked_then_declined(tmp_path):
    c = card()
    path = tmp_path / "black.bin"
    build_blacklist([serial_of(c).hex()], path)
    rig = Rig(blacklist=Blacklist.open(path))
    outcome = rig.tap(c)
    assert (outcome.decline, outcome.detail) == (Decline.BLACKLISTED, "application blocked")
    assert _ins(outcome)[-4:] == ["reader:0084", "sam:801A", "sam:80FA", "reader:841E"]
    assert c.image.blocked and c.balance == 10000
    again = rig.tap(c, advance=5)
    assert again.decline is Decline.CARD_LOCKED


def test_insufficient_funds_shows_the_balance():
    c = card(balance=150)
    outcome = Rig().tap(c)
    assert (outcome.decline, outcome.balance_before, outcome.fare) == (Decline.INSUFFICIENT_FUNDS, 150, 200)
    assert outcome.message == "insufficient balance, balance 1.50 (fare 2.00)"
    assert c.balance == 150


def test_repeat_tap_is_not_charged_twice():
    rig, c = Rig(), card()
    assert rig.tap(c).accepted
    again = rig.tap(c, advance=30)
    assert (again.status, again.decline) == (TapStatus.DECLINED, Decline.REPEAT_TAP)
    assert _ins(again) == ["reader:00A4"]
    assert c.balance == 9800
    later = rig.tap(c, advance=31)
    assert later.accepted and c.balance == 9600
    assert rig.journaled() == 400


def test_not_a_transit_card():
    from sim.scripted import ApduPattern, ScriptedCard, Step

    other = ScriptedCard([Step(ApduPattern.parse("00A4040008A000000632010105"), bytes.fromhex("6A82"))])
    outcome = Rig().tap(other)
    assert (outcome.status, outcome.decline) == (TapStatus.DECLINED, Decline.NOT_TRANSIT_CARD)


def test_empty_field_polls_none():
    rig = Rig()
    assert rig.validator.poll() is None


def test_section_fares_tap_on_and_off():
    place = dataclasses.replace(ValidatorConfig().place, line=801, station=3)
    rig, c = Rig(fares="demo-sections.toml", config=ValidatorConfig(place=place)), card()
    board = rig.tap(c)
    assert board.accepted and board.fare == 0
    assert [e.command[:4].hex().upper() for e in board.exchanges if e.command[:2] == b"\x80\xdc"] == \
        ["80DC02D0", "80DC00F0"]
    assert last_transit(c).record_type == 0x03
    # the bus moves 8 stations on: 6..10 stations cost 3 yuan
    rig.validator.arrive(11)
    alight = rig.tap(c, advance=20 * 60)
    assert alight.accepted and alight.fare == 300 and c.balance == 9700
    assert last_transit(c).record_type == 0x04
    rig.check_tacs()


def test_missed_tap_off_pays_the_maximum():
    place = dataclasses.replace(ValidatorConfig().place, line=801, station=3)
    rig, c = Rig(fares="demo-sections.toml", config=ValidatorConfig(place=place)), card()
    assert rig.tap(c).accepted
    later = rig.tap(c, advance=4 * 3600)  # past max_trip_minutes: the open trip cannot be closed here
    assert later.accepted and later.fare == 500 and c.balance == 9500
    assert last_transit(c).record_type == 0x03  # and this tap is a new boarding


def test_transfer_discount_from_the_cards_own_record():
    flat = dataclasses.replace(ValidatorConfig().place, line=1)
    other = dataclasses.replace(ValidatorConfig().place, line=2)
    clock_rig = Rig(fares="demo-sections.toml", config=ValidatorConfig(place=flat))
    c = card()
    assert clock_rig.tap(c).fare == 100
    second = Rig(fares="demo-sections.toml", config=ValidatorConfig(place=other), clock=clock_rig.clock)
    outcome = second.tap(c, advance=10 * 60)
    assert outcome.accepted and outcome.fare == 100 and "transfer" in outcome.rule
    assert "reader:00B2" in _ins(outcome)  # the newest 0x1E record was read for it


def test_sqlite_journal_durable(tmp_path):
    journal = SqliteJournal(tmp_path / "j.db")
    rig = Rig(journal=journal)
    for i in range(3):
        assert rig.tap(card(f"0310290000000000000{i}")).accepted
    journal.close()
    reopened = SqliteJournal(tmp_path / "j.db")
    assert [e.record.amount for e in reopened.entries()] == [200, 200, 200]
    assert [e.record.tsn for e in reopened.entries()] == [0, 1, 2]
