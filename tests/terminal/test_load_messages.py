"""The JSON of the load host's API: what the terminal writes the host reads back, and every malformed field is a
``bad_request`` naming it."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.hexutil import parse_hex as h
from terminal.loads import LoadAuthorization, LoadConfirmation, LoadRefused, LoadRequest
from terminal.loads.messages import (
    authorization_from_json, authorization_to_json, confirmation_from_json, confirmation_to_json, decode, encode,
    request_from_json, request_to_json, tac_from_json,
)

REQUEST = LoadRequest("0f9e-req", h("001122334455"), h("02403640FFFFFFFF"), h("03104991585000011383"), 0, 0x1000, 0,
                      h("11223344"), dt.datetime(2011, 12, 21, 21, 48, 22), h("2988AE5A"), 2, 1)
WIRE = {"request_id": "0f9e-req", "terminal": "001122334455", "issuer": "02403640FFFFFFFF",
        "serial": "03104991585000011383", "balance": 0, "amount": 4096, "online_counter": 0, "random": "11223344",
        "datetime": "20111221214822", "mac1": "2988AE5A", "key_version": 2, "transaction_type": 1}


def test_the_request_as_json() -> None:
    assert request_to_json(REQUEST) == WIRE
    assert request_from_json(decode(encode(WIRE))) == REQUEST
    minimal = {key: value for key, value in WIRE.items() if key not in ("key_version", "transaction_type")}
    parsed = request_from_json(minimal)
    assert (parsed.key_version, parsed.transaction_type) == (1, 2)
    assert request_from_json({**WIRE, "mac1": "29 88 ae 5a"}).mac1 == h("2988AE5A")
    negative = request_from_json({**WIRE, "balance": -50})
    assert negative.balance_word == 0xFFFFFFCE


@given(st.integers(-0x80000000, 0x7FFFFFFF), st.integers(1, 0x7FFFFFFF), st.integers(0, 0xFFFF),
       st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4),
       st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 12, 31)).map(lambda d: d.replace(microsecond=0)))
def test_any_request_round_trips(balance: int, amount: int, counter: int, random: bytes, mac1: bytes,
                                 when: dt.datetime) -> None:
    request = LoadRequest("r", h("200041590001"), h("02403640FFFFFFFF"), h("03103640000000000077"), balance, amount,
                          counter, random, when, mac1)
    assert request_from_json(json.loads(encode(request_to_json(request)))) == request


@pytest.mark.parametrize(("change", "message"), [
    ({"request_id": ""}, "request_id: 1 to 64 letters"),
    ({"request_id": "x" * 65}, "request_id: 1 to 64 letters"),
    ({"terminal": "0011223344"}, "terminal: 6 bytes (12 hex digits), got 5"),
    ({"issuer": "zz"}, "issuer: 'z' is not a hex digit"),
    ({"random": 11223344}, "random: expected hex text, got 11223344"),
    ({"balance": 2**31}, "balance: an integer -2147483648..2147483647, got 2147483648"),
    ({"amount": True}, "amount: an integer 1..2147483647, got true"),
    ({"online_counter": 65536}, "online_counter: an integer 0..65535, got 65536"),
    ({"datetime": "2011122121482"}, "datetime: 14 digits YYYYMMDDhhmmss"),
    ({"datetime": "20111321214822"}, "datetime: date-time: 20111321214822 is not a calendar date and time"),
    ({"datetime": "00000000000000"}, "datetime: all zeros is no date-time"),
    ({"transaction_type": 6}, "transaction_type: 2 (purse) or 1 (passbook), got 6"),
    ({"key_version": 256}, "key_version: an integer 0..255, got 256"),
    ({"colour": 1}, "colour: unknown field"),
])
def test_malformed_requests_name_the_field(change: dict, message: str) -> None:
    with pytest.raises(LoadRefused) as caught:
        request_from_json({**WIRE, **change})
    assert caught.value.code == "bad_request" and caught.value.status == 400
    assert message in caught.value.reason, caught.value.reason


def test_missing_fields_and_other_documents() -> None:
    for name in ("request_id", "mac1", "datetime"):
        with pytest.raises(LoadRefused, match=f"{name}: missing"):
            request_from_json({key: value for key, value in WIRE.items() if key != name})
    with pytest.raises(LoadRefused, match="expected an object"):
        request_from_json([WIRE])
    with pytest.raises(LoadRefused, match="appears twice"):
        decode(b'{"tac": "00000000", "tac": "11111111"}')
    assert tac_from_json({"tac": "6314e5f5"}) == h("6314E5F5")
    with pytest.raises(LoadRefused, match="tac: 4 bytes"):
        tac_from_json({"tac": "6314E5"})


def test_the_answers_as_json() -> None:
    answer = LoadAuthorization(7, h("3A845BF0"))
    assert authorization_to_json(answer) == {"load_id": 7, "mac2": "3A845BF0"}
    assert authorization_from_json(authorization_to_json(answer)) == answer
    confirmation = LoadConfirmation(7, "confirmed")
    assert confirmation_from_json(confirmation_to_json(confirmation)) == confirmation
