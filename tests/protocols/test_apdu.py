from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.apdu import CommandAPDU, ResponseAPDU
from protocols.errors import ProtocolError
from protocols.status import describe, format_sw

byte = st.integers(0, 255)


@st.composite
def commands(draw) -> CommandAPDU:
    extended = draw(st.booleans())
    data = draw(st.binary(max_size=300 if extended else 255))
    le = draw(st.none() | st.integers(1, 65536 if extended else 256))
    return CommandAPDU(draw(byte), draw(byte), draw(byte), draw(byte), data, le, extended)


@pytest.mark.parametrize("hexstr,case,lc,le,extended", [
    ("00A40400", 1, 0, None, False),
    ("805C000204", 2, 0, 4, False),
    ("00B0950000", 2, 0, 256, False),
    ("00A4040008A000000632010105", 3, 8, None, False),
    ("00A4040008A00000063201010500", 4, 8, 256, False),
    ("805401000F00000001201202291351 00F15CAB7508".replace(" ", ""), 4, 15, 8, False),
    ("00B09500000000", 2, 0, 65536, True),
    ("00B0950000012C", 2, 0, 300, True),
    ("80DC02D0000003AABBCC", 3, 3, None, True),
    ("80DC02D0000003AABBCC0000", 4, 3, 65536, True),
])
def test_cases(hexstr, case, lc, le, extended):
    raw = bytes.fromhex(hexstr)
    apdu = CommandAPDU.parse(raw)
    assert (apdu.case, len(apdu.data), apdu.le, apdu.extended) == (case, lc, le, extended)
    assert apdu.to_bytes() == raw


def test_long_data_goes_extended():
    apdu = CommandAPDU(0x80, 0xDC, 0x02, 0xD0, bytes(256), 0x10)
    assert apdu.extended
    assert apdu.to_bytes()[:7].hex() == "80dc02d0000100"
    assert apdu.to_bytes()[-2:] == b"\x00\x10"


@given(commands())
def test_round_trip(apdu: CommandAPDU):
    raw = apdu.to_bytes()
    assert CommandAPDU.parse(raw) == apdu
    assert CommandAPDU.parse(raw).to_bytes() == raw


@given(st.binary(max_size=400))
def test_random_bytes_parse_or_raise_protocol_error(raw: bytes):
    try:
        apdu = CommandAPDU.parse(raw)
    except ProtocolError as exc:
        assert exc.sw == 0x6700
    else:
        assert apdu.to_bytes() == raw


@pytest.mark.parametrize("hexstr", ["", "00", "00A404", "00A4040008A0000006", "00A404000000", "00A40400000005AA",
                                    "00A4040000000000"])
def test_malformed(hexstr):
    with pytest.raises(ProtocolError) as info:
        CommandAPDU.parse(bytes.fromhex(hexstr))
    assert info.value.sw == 0x6700


@pytest.mark.parametrize("kwargs", [dict(cla=256), dict(p2=-1), dict(le=0), dict(le=65537), dict(data=bytes(65536))])
def test_bad_values(kwargs):
    fields = dict(cla=0, ins=0xA4, p1=0, p2=0) | kwargs
    with pytest.raises(ProtocolError):
        CommandAPDU(**fields)


def test_response():
    r = ResponseAPDU.parse(bytes.fromhex("112233449000"))
    assert (r.data, r.sw, r.sw1, r.sw2, r.ok) == (b"\x11\x22\x33\x44", 0x9000, 0x90, 0x00, True)
    assert r.to_bytes().hex() == "112233449000"
    with pytest.raises(ProtocolError):
        ResponseAPDU.parse(b"\x90")


@given(st.binary(min_size=2, max_size=300))
def test_response_round_trip(raw: bytes):
    assert ResponseAPDU.parse(raw).to_bytes() == raw


@pytest.mark.parametrize("sw,meaning", [
    (0x9000, "success"), (0x9401, "insufficient balance"), (0x9302, "MAC invalid"),
    (0x9406, "required MAC or TAC not available"), (0x6283, "selected application temporarily locked (blocked)"),
    (0x6284, "selected application permanently locked"), (0x9303, "application permanently locked"),
    (0x6985, "conditions of use not satisfied"), (0x6A82, "file or application not found"),
    (0x6A83, "record not found"), (0x6108, "8 response bytes available (GET RESPONSE)"),
    (0x6C0F, "wrong Le: exactly 15 bytes available"), (0x6100, "256 response bytes available (GET RESPONSE)"),
    (0x63C2, "verification failed, 2 tries left"), (0x1234, "unknown status word"),
])
def test_status_words(sw, meaning):
    assert describe(sw) == meaning
    assert format_sw(sw) == f"{sw:04X} ({meaning})"
