"""The parse memo simulated devices share."""

from __future__ import annotations

from protocols.errors import ProtocolError
from sim.device import SW_INTERNAL, ParseMemo


def test_remembers_by_key_and_maps_refusals_to_status_words():
    calls = []

    def parse(apdu: bytes):
        calls.append(apdu)
        if apdu == b"bad":
            raise ProtocolError("wrong length", sw=0x6700)
        if apdu == b"odd":
            raise ProtocolError("no status word of its own")
        return ("parsed", apdu)

    memo = ParseMemo(parse, limit=2)
    assert memo(b"a1", b"a") == ("parsed", b"a1")
    assert memo(b"a2", b"a") == ("parsed", b"a1")  # same key: the remembered parse
    assert memo(b"bad", b"bad") == 0x6700 and memo(b"odd", None) == SW_INTERNAL
    assert calls == [b"a1", b"bad", b"odd"]
    assert memo(b"b", b"b") == ("parsed", b"b")  # the memo was full (a, bad): it starts afresh
    assert list(memo.table) == [b"b"]
    assert memo(b"x", None) == ("parsed", b"x") and b"x" not in memo.table
