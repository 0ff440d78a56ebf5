"""The load host in process: MAC1 checked under the card's load key, replayed and rewound counters refused, a load
never credited superseded by the card's next session, limits, request ids answered the same, TACs verified or the
load flagged, and a ledger that survives a restart."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest

from protocols.hexutil import parse_hex as h
from sim.loadhost import InProcessLoadHost, LedgerError, LedgerState, LoadLedger, Terminals
from sim.loadhost.terminals import Limits
from terminal.loads import LoadRefused

from .load_support import KEYSET, PHONE, TOPUP, card_request, credit, demo_card, demo_service


def refused(call, code: str) -> LoadRefused:
    with pytest.raises(LoadRefused) as caught:
        call()
    assert caught.value.code == code, caught.value
    return caught.value


def states(ledger: LoadLedger) -> list[tuple[int, str, int]]:
    return [(load.load_id, load.state.value, load.online_counter) for load in ledger.loads()]


@pytest.fixture
def service(tmp_path: Path):
    host = demo_service(tmp_path / "ledger.db")
    yield host
    host.close()


def test_a_load_authorized_credited_and_confirmed(service) -> None:
    card = demo_card(balance=5000)
    request = card_request(card, 2000)
    answer = service.authorize(TOPUP.token, request)
    tac = credit(card, answer.mac2)
    assert card.balance == 7000
    confirmation = service.confirm(TOPUP.token, answer.load_id, tac)
    assert (confirmation.load_id, confirmation.state) == (answer.load_id, "confirmed")
    (load,) = service.ledger.loads()
    assert (load.state, load.balance_before, load.amount, load.online_counter, load.tac, load.random, load.mac1,
            load.mac2, load.transaction_type, load.key_version, load.terminal) == \
        (LedgerState.CONFIRMED, 5000, 2000, 0, tac, request.random, request.mac1, answer.mac2, 2, 1, TOPUP.number)
    assert service.ledger.confirmed_fen() == 2000
    # the same good TAC again is answered as before
    assert service.confirm(TOPUP.token, answer.load_id, tac) == confirmation


def test_a_forged_mac1_is_refused_and_nothing_is_recorded(service) -> None:
    request = card_request(demo_card(), 2000)
    forged = dataclasses.replace(request, mac1=bytes(b ^ 0x01 for b in request.mac1))
    refused(lambda: service.authorize(TOPUP.token, forged), "bad_mac1")
    altered = dataclasses.replace(request, request_id="req-2", amount=20000)  # a bigger amount than the card signed
    refused(lambda: service.authorize(TOPUP.token, altered), "bad_mac1")
    assert service.ledger.loads() == []
    # a retry of the refused request gets the same refusal; the real request is then authorized
    refused(lambda: service.authorize(TOPUP.token, forged), "bad_mac1")
    assert service.authorize(TOPUP.token, dataclasses.replace(request, request_id="req-3")).load_id == 1


def test_a_request_id_gets_the_same_answer_and_another_id_is_a_replay(service) -> None:
    request = card_request(demo_card(), 2000)
    first = service.authorize(TOPUP.token, request)
    assert service.authorize(TOPUP.token, request) == first
    refused(lambda: service.authorize(TOPUP.token, dataclasses.replace(request, request_id="req-2")), "replay")
    refused(lambda: service.authorize(TOPUP.token, dataclasses.replace(request, amount=1000)), "request_id_reused")
    assert states(service.ledger) == [(1, "authorized", 0)]
    # request ids are the terminal's own: the phone may use the same one, for its own request
    phone_request = card_request(demo_card("03103640000000000078"), 500, terminal=PHONE.number)
    assert service.authorize(PHONE.token, phone_request).load_id == 2


def test_a_counter_already_loaded_or_passed_is_a_replay(service) -> None:
    card = demo_card()
    saved = copy.deepcopy(card.image)  # a clone of the card before its load
    answer = service.authorize(TOPUP.token, card_request(card, 2000))
    service.confirm(TOPUP.token, answer.load_id, credit(card, answer.mac2))
    card.image = saved
    error = refused(lambda: service.authorize(TOPUP.token, card_request(card, 2000, request_id="req-2")), "replay")
    assert "online counter 0 was already loaded (load 1, confirmed)" in str(error)
    # the genuine card moves on; a clone showing an older counter after that is refused too
    card.image.purse.online_atc = 5
    service.authorize(TOPUP.token, card_request(card, 100, request_id="req-3"))
    card.image.purse.online_atc = 3
    error = refused(lambda: service.authorize(TOPUP.token, card_request(card, 100, request_id="req-4")), "replay")
    assert "online counter 3 is behind load 2 at counter 5" in str(error)


def test_a_load_never_credited_is_superseded_by_the_cards_next_session(service) -> None:
    card = demo_card(balance=5000)
    torn = service.authorize(TOPUP.token, card_request(card, 2000))  # the card left before CREDIT reached it
    retry = service.authorize(TOPUP.token, card_request(card, 3000, request_id="req-2"))
    service.confirm(TOPUP.token, retry.load_id, credit(card, retry.mac2))
    assert states(service.ledger) == [(1, "void", 0), (2, "confirmed", 0)]
    assert "superseded by load 2" in service.ledger.loads()[0].note
    refused(lambda: service.confirm(TOPUP.token, torn.load_id, bytes(4)), "not_confirmable")
    assert service.ledger.confirmed_fen() == 3000 and card.balance == 8000


def test_limits(tmp_path: Path) -> None:
    service = demo_service(tmp_path / "ledger.db", limits=Limits(per_load=5000, purse=20000))
    card = demo_card(balance=16000)
    refused(lambda: service.authorize(TOPUP.token, card_request(card, 5001)), "over_limit")
    error = refused(lambda: service.authorize(TOPUP.token, card_request(card, 4001, request_id="r2")), "over_limit")
    assert "the balance would be 20001 fen, over the purse limit of 20000 fen" in str(error)
    assert service.authorize(TOPUP.token, card_request(card, 4000, request_id="r3")).load_id == 1
    service.close()


def test_tokens(service) -> None:
    request = card_request(demo_card(), 2000)
    refused(lambda: service.authorize("no-such-token-of-anyone", request), "unauthorized")
    refused(lambda: service.authorize(None, request), "unauthorized")
    error = refused(lambda: service.authorize(PHONE.token, request), "unauthorized")  # the top-up machine's number
    assert str(error) == "load host refused (unauthorized): the token is not that of terminal 200041590001"
    answer = service.authorize(TOPUP.token, request)
    refused(lambda: service.confirm(PHONE.token, answer.load_id, bytes(4)), "not_found")  # another terminal's load
    refused(lambda: service.confirm("no-such-token-of-anyone", answer.load_id, bytes(4)), "unauthorized")
    assert TOPUP.token not in repr(TOPUP) and TOPUP.token not in repr(service.terminals)


def test_a_wrong_tac_flags_the_load_for_good(service) -> None:
    card = demo_card()
    answer = service.authorize(TOPUP.token, card_request(card, 2000))
    tac = credit(card, answer.mac2)
    wrong = bytes(b ^ 0xFF for b in tac)
    error = refused(lambda: service.confirm(TOPUP.token, answer.load_id, wrong), "bad_tac")
    assert error.status == 409
    (load,) = service.ledger.loads()
    assert (load.state, load.tac) == (LedgerState.FLAGGED, wrong)
    refused(lambda: service.confirm(TOPUP.token, answer.load_id, tac), "not_confirmable")  # never silently accepted
    assert service.ledger.confirmed_fen() == 0


def test_a_wrong_tac_after_the_confirmation_is_refused_and_noted(service) -> None:
    card = demo_card()
    answer = service.authorize(TOPUP.token, card_request(card, 2000))
    tac = credit(card, answer.mac2)
    service.confirm(TOPUP.token, answer.load_id, tac)
    refused(lambda: service.confirm(TOPUP.token, answer.load_id, bytes(4)), "bad_tac")
    (load,) = service.ledger.loads()
    assert (load.state, load.tac, load.note) == \
        (LedgerState.CONFIRMED, tac, "a wrong TAC 00000000 came after the confirmation")


def test_a_key_version_the_host_lacks(service) -> None:
    request = dataclasses.replace(card_request(demo_card(), 2000), key_version=7)
    refused(lambda: service.authorize(TOPUP.token, request), "unknown_key")


def test_the_ledger_survives_a_restart(tmp_path: Path) -> None:
    card = demo_card()
    request = card_request(card, 2000)
    first = demo_service(tmp_path / "ledger.db")
    answer = first.authorize(TOPUP.token, request)
    first.close()
    tac = credit(card, answer.mac2)
    again = demo_service(tmp_path / "ledger.db")
    assert again.authorize(TOPUP.token, request) == answer  # the retry after the restart: the same answer
    refused(lambda: again.authorize(TOPUP.token, dataclasses.replace(request, request_id="r2")), "replay")
    again.confirm(TOPUP.token, answer.load_id, tac)
    again.close()
    with LoadLedger(tmp_path / "ledger.db", readonly=True) as book:
        assert states(book) == [(1, "confirmed", 0)]


def test_in_process_host_is_the_service_seen_by_one_terminal(service) -> None:
    card = demo_card()
    host = InProcessLoadHost(service, TOPUP.token)
    answer = host.authorize(card_request(card, 2000))
    assert host.confirm(answer.load_id, credit(card, answer.mac2)).state == "confirmed"


def test_ledger_files_are_recognised(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(b"precious data, not SQLite" * 100)
    with pytest.raises(LedgerError, match="corrupt or not a SQLite database"):
        LoadLedger(other)
    assert other.read_bytes() == b"precious data, not SQLite" * 100
    with pytest.raises(LedgerError, match="no such load ledger"):
        LoadLedger(tmp_path / "absent.db", readonly=True)
    from terminal.loads import LoadJournal
    LoadJournal(tmp_path / "journal.db").close()
    with pytest.raises(LedgerError, match=r"not a yikatong load ledger \(SQLite application_id 0x594b544c"):
        LoadLedger(tmp_path / "journal.db")


def test_terminals_file_is_strict(tmp_path: Path) -> None:
    from sim.loadhost.terminals import parse_terminals
    from terminal.errors import ConfigError

    good = 'format = 1\n[[terminals]]\nnumber = "200041590009"\ntoken = "0123456789abcdef"\n'
    parsed = parse_terminals(good, "t.toml")
    assert parsed == Terminals((parsed.terminals[0],), Limits(), False)
    assert parsed.by_token("0123456789abcdef") == parsed.by_number(h("200041590009")) is not None
    assert parsed.by_token("0123456789abcdeF") is None and parsed.by_token("") is None
    for text, message in [
        ("colour = 1\n" + good, "t.toml: colour: unknown key"),
        (good + "colour = 1\n", "t.toml: terminals[0].colour: unknown key"),
        (good.replace("format = 1", "format = 2"), "unsupported version 2"),
        (good.replace('"200041590009"', '"2000415900"'), "terminals[0].number: must be 6 bytes"),
        (good.replace('"0123456789abcdef"', '"short"'), "terminals[0].token: must be 16 to 256 visible ASCII"),
        (good + '[[terminals]]\nnumber = "200041590009"\ntoken = "fedcba9876543210"\n',
         "terminals[1].number: terminal 200041590009 is listed twice"),
        (good + '[[terminals]]\nnumber = "200041590008"\ntoken = "0123456789abcdef"\n',
         "terminals[1].token: the same token is given to two terminals"),
        (good + "[limits]\nper_load = 0\n", "limits.per_load: must be 1..2147483647 (fen)"),
        ("format = 1\n", "terminals: required"),
    ]:
        with pytest.raises(ConfigError) as caught:
            parse_terminals(text, "t.toml")
        assert message in str(caught.value), (text, str(caught.value))
        assert "0123456789abcdef" not in str(caught.value)
    assert KEYSET.test_only
