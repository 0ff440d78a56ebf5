"""The cut-over policy: its settings, strictly read, and each phase of a city's move from M1 to CPU cards at the
validator (both accepted; old cards accepted until a date; old cards refused with "please exchange your card"), with
every refused tap counted in the journal's events."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from terminal.config import ValidatorConfig, parse_config
from terminal.cutover import Acceptance, CutoverPolicy
from terminal.errors import ConfigError
from terminal.journal import EventKind
from terminal.outcome import Decline, TapStatus
from terminal.records import m1_serial
from terminal.tracefile import config_toml

from .validator_support import HOME_CITY, START, Rig, card, m1_card

PHASED = """
format = 1
[cutover.m1]
normal = 2026-11-30
student = "refused"
other = "accepted"
[cutover.cpu]
9 = "refused"
"""


def test_the_settings() -> None:
    policy = parse_config(PHASED).cutover
    assert policy.card_types["m1"] == {1: Acceptance(until=dt.date(2026, 11, 30)), 2: Acceptance(refused=True)}
    assert policy.other["m1"] == Acceptance() and policy.card_types["cpu"] == {9: Acceptance(refused=True)}
    day = dt.date(2026, 11, 30)
    assert policy.refusal("m1", 1, day) is None
    assert policy.refusal("m1", 1, day + dt.timedelta(days=1)) == "m1 normal card accepted until 2026-11-30"
    assert policy.refusal("m1", 2, day) == "m1 student card refused"
    assert policy.refusal("m1", 3, day) is None and policy.refusal("cpu", 1, day) is None
    assert policy.refusal("cpu", 9, day) == "cpu type 9 card refused"
    assert ValidatorConfig().cutover == CutoverPolicy() and ValidatorConfig().cutover.refusal("m1", 1, day) is None


def test_the_settings_survive_a_trace_header() -> None:
    config = parse_config(PHASED)
    assert parse_config(config_toml(config)) == config
    assert "[cutover.m1]\n1 = 2026-11-30\n2 = \"refused\"\nother = \"accepted\"" in config_toml(config)


@pytest.mark.parametrize("text,message", [
    ('[cutover.nfc]\nnormal = "refused"', "cutover.nfc: unknown key (allowed: cpu, m1)"),
    ('[cutover.m1]\nnormal = "maybe"', 'cutover.m1.normal: must be "accepted", "refused" or the last day accepted'),
    ("[cutover.m1]\nnormal = 2026-11-30T00:00:00", "cutover.m1.normal: must be"),
    ('[cutover.m1]\npupil = "refused"', "cutover.m1.pupil: unknown card type"),
    ('[cutover.m1]\nnormal = "refused"\n1 = "accepted"',
     "cutover.m1.1: card type 1 is also given as cutover.m1.normal"),
    ('cutover = "m1"', "cutover: must be a table"),
])
def test_bad_settings_name_the_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"<validator>: {message}")):
        parse_config("format = 1\n" + text)


def _taps(config: ValidatorConfig, *, on: dt.datetime = START) -> tuple[Rig, list]:
    rig = Rig(config=config)
    rig.clock.advance((on - START).total_seconds())
    cards = [m1_card("00000001"), m1_card("00000002", card_type=2), card()]
    return rig, [rig.tap(c) for c in cards]


def test_phase_1_both_accepted() -> None:
    rig, outcomes = _taps(ValidatorConfig())
    assert [o.accepted for o in outcomes] == [True, True, True]
    assert list(rig.journal.events()) == []


def test_phase_2_old_cards_accepted_until_a_date() -> None:
    config = parse_config("format = 1\n[cutover.m1]\nother = 2026-11-30\n")
    rig, outcomes = _taps(config, on=dt.datetime(2026, 11, 30, 23, 59))
    assert [o.accepted for o in outcomes] == [True, True, True]  # the last day itself
    rig, outcomes = _taps(config, on=dt.datetime(2026, 12, 1, 0, 0))
    m1, student, cpu = outcomes
    assert (m1.status, m1.decline) == (TapStatus.DECLINED, Decline.EXCHANGE_CARD)
    assert m1.message == "please exchange your card (m1 normal card accepted until 2026-11-30)"
    assert student.decline is Decline.EXCHANGE_CARD and cpu.accepted
    events = list(rig.journal.events())
    assert [(e.kind, e.card_serial) for e in events] == [
        (EventKind.EXCHANGE_CARD.value, m1_serial(HOME_CITY + bytes.fromhex("000100000001"))),
        (EventKind.EXCHANGE_CARD.value, m1_serial(HOME_CITY + bytes.fromhex("000100000002")))]
    assert [e.detail for e in events] == ["m1 normal card accepted until 2026-11-30",
                                          "m1 student card accepted until 2026-11-30"]
    assert rig.journaled() == 200  # the CPU card's ride only


def test_phase_3_old_cards_refused() -> None:
    rig, outcomes = _taps(parse_config('format = 1\n[cutover.m1]\nother = "refused"\n'))
    assert [o.decline for o in outcomes[:2]] == [Decline.EXCHANGE_CARD] * 2 and outcomes[2].accepted
    assert len(list(rig.journal.events())) == 2


def test_a_refused_card_still_settles_its_torn_debit_first() -> None:
    """The cut-over never costs a rider a ride already paid: a torn debit is settled before the card is refused."""
    from sim.reader import Tear

    config = parse_config("format = 1\n[cutover.m1]\nother = 2026-11-24\n")
    rig, c = Rig(config=config), m1_card()
    rig.reader.plan_tear(Tear.after("FFD7000905"))
    rig.clock.advance(15 * 3600 + 30 * 60)  # 23:30, the last evening M1 cards are taken
    assert rig.tap(c).status is TapStatus.RETRY  # type: ignore[union-attr]
    back = rig.tap(c, advance=40 * 60)  # past midnight, within retap_same_ride_s: M1 cards are refused now
    assert back is not None and back.accepted and back.recovered  # the torn ride is this tap's
    again = rig.tap(c, advance=3600)
    assert again is not None and again.decline is Decline.EXCHANGE_CARD
    assert c.balance == 9800 and rig.journaled() == 200


def test_the_operator_counts_the_old_cards(tmp_path, capsys) -> None:
    import json

    from sim.cli import run
    from terminal.journal import SqliteJournal

    path = tmp_path / "journal.db"
    config = parse_config('format = 1\n[cutover.m1]\nnormal = "refused"\nstudent = 2026-11-01\n')
    rig = Rig(config=config, journal=SqliteJournal(path))
    old, student = m1_card("00000001"), m1_card("00000002", card_type=2)
    for c in (old, old, student, card()):
        rig.tap(c, advance=90)
    rig.journal.close()
    assert run(["journal", "events", str(path), "--summary"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "exchange_card             3 events, 2 cards",
        "  m1 normal card refused                              2 events, 1 cards",
        "  m1 student card accepted until 2026-11-01           1 events, 1 cards"]
    assert run(["journal", "events", str(path), "--summary", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "kind": "exchange_card", "events": 3, "cards": 2,
        "by_rule": {"m1 normal card refused": {"events": 2, "cards": 1},
                    "m1 student card accepted until 2026-11-01": {"events": 1, "cards": 1}}}
