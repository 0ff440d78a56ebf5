"""What a trace or a log keeps of an exchange: the keys of LOAD KEY, MIFARE AUTH and the PSAM's answer of sector keys
zeroed (also when a T=0 PSAM's answer comes by GET RESPONSE), every other exchange untouched."""

from __future__ import annotations

from protocols.hexutil import parse_hex as H
from protocols.redact import KEYED_PREFIXES, Redactor, blank_answer, without_keys

KEY = H("1F734F80A0B0")


def test_commands_that_carry_a_key() -> None:
    assert without_keys(H("FF82000006") + KEY) == H("FF82000006 000000000000")
    assert without_keys(H("6009") + KEY + H("40C2AB5C")) == H("6009 000000000000 40C2AB5C")
    assert without_keys(H("6109") + KEY + H("40C2AB5C")) == H("6109 000000000000 40C2AB5C")
    for other in ("FF860000050100086000", "FFB0000910", "805401000F", "00A404000E", "3009", ""):
        assert without_keys(H(other)) == H(other)
    assert blank_answer(H("11229000")) == H("00009000") and blank_answer(H("90")) == H("00")


def test_a_link_s_exchanges_in_order() -> None:
    r = Redactor()
    assert r.exchange(H("FF82000006") + KEY, H("9000")) == (H("FF82000006 000000000000"), H("9000"))
    assert r.exchange(H("80FC01010640C2AB5C0206"), KEY + KEY + H("9000")) == (H("80FC01010640C2AB5C0206"),
                                                                             bytes(12) + H("9000"))
    # T=0: the keys wait for GET RESPONSE, which may come in pieces
    assert r.exchange(H("80FC01010640C2AB5C0206"), H("610C")) == (H("80FC01010640C2AB5C0206"), H("610C"))
    assert r.exchange(H("00C0000006"), KEY + H("6106")) == (H("00C0000006"), bytes(6) + H("6106"))
    assert r.exchange(H("00C0000006"), KEY + H("9000")) == (H("00C0000006"), bytes(6) + H("9000"))
    # after that, a GET RESPONSE fetches an answer of no key
    assert r.exchange(H("807C00011E"), H("6108")) == (H("807C00011E"), H("6108"))
    assert r.exchange(H("00C0000008"), H("0000005713AC84D79000")) == (H("00C0000008"), H("0000005713AC84D79000"))
    assert r.exchange(H("FF82000006") + KEY, None) == (H("FF82000006 000000000000"), None)  # a failed exchange
    assert r.exchange(H("80FC01010540C2AB5C02"), None) == (H("80FC01010540C2AB5C02"), None)


def test_only_keyed_prefixes_are_touched() -> None:
    """A link skips the redactor for any command outside KEYED_PREFIXES while it is not waiting: the redactor
    changes nothing of those exchanges."""
    r = Redactor()
    for command in ("FF82000006" + KEY.hex(), "6009" + KEY.hex() + "40C2AB5C", "61FF" + KEY.hex() + "40C2AB5C",
                    "80FC01010640C2AB5C0206"):
        assert H(command)[:2] in KEYED_PREFIXES
    for first in range(256):
        for second in (0x00, 0x82, 0xC0, 0xFC):
            command = bytes((first, second)) + KEY
            if command[:2] not in KEYED_PREFIXES:
                assert r.exchange(command, KEY + H("6100")) == (command, KEY + H("6100")) and not r.waiting
    r.exchange(H("80FC01010640C2AB5C0206"), H("610C"))
    assert r.waiting  # the GET RESPONSE that follows goes through the redactor, whatever its prefix
