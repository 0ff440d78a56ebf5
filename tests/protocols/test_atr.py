"""ISO 7816-3 ATR and PPS: the interface bytes a SAM slot reads, the rate codes, the PPS messages."""

from __future__ import annotations

import pytest

from protocols.atr import DEFAULT_TA1, Atr, etu_us, pps_parameters, pps_request, rate
from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex as h


def test_parses_the_interface_bytes_and_the_historical_bytes() -> None:
    atr = Atr.parse(h("3B5C1800") + b"YKT-PSAM-SIM")
    assert atr.convention == "direct" and atr.interface == {"TA1": 0x18, "TC1": 0x00}
    assert (atr.ta1, atr.protocols, atr.historical, atr.specific_mode) == (0x18, (0,), b"YKT-PSAM-SIM", False)


def test_a_t1_atr_carries_a_tck_that_must_check() -> None:
    # TA1 18, TC1 00, TD1 81 (T=1, TD2 follows), TD2 31 (T=1, TA3 FE, TB3 7D), 6 historical bytes, TCK
    raw = h("3B D6 18 00 81 31 FE 7D 000000000000 00")
    atr = Atr.parse(raw[:-1] + bytes((_xor(raw[1:-1]),)))
    assert atr.protocols == (1, 1) and atr.ta1 == 0x18
    with pytest.raises(ProtocolError, match="TCK"):
        Atr.parse(raw[:-1] + bytes((_xor(raw[1:-1]) ^ 1,)))


def _xor(data: bytes) -> int:
    check = 0
    for byte in data:
        check ^= byte
    return check


@pytest.mark.parametrize("raw, reason", [("3B", "TS"), ("3A00", "TS"), ("3B10", "cut short"), ("3B0241", "bytes"),
                                         ("3B6900008104000000000000", "bytes")])
def test_refuses_atrs_that_do_not_add_up(raw: str, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        Atr.parse(h(raw))


def test_without_ta1_the_default_rate_and_ta2_means_specific_mode() -> None:
    assert Atr.parse(h("3B00")).ta1 == DEFAULT_TA1 == 0x11
    specific = Atr.parse(h("3B 90 96 10 00"))  # TA1 96, TD1 10 (TA2 follows, T=0), TA2 00
    assert specific.specific_mode and specific.ta1 == 0x96 and specific.protocols == (0,)


def test_rates_of_ta1() -> None:
    assert rate(0x11) == (372, 1) and rate(0x18) == (372, 12) and rate(0x96) == (512, 32)
    assert etu_us(0x11, 3_571_200) == pytest.approx(1e6 / 9600)
    assert etu_us(0x18, 3_571_200) == pytest.approx(1e6 / 115200)
    with pytest.raises(ProtocolError, match="reserved"):
        rate(0x7F)


def test_pps_request_and_its_parameters() -> None:
    request = pps_request(0x18)
    assert request == h("FF 10 18 F7")
    assert pps_parameters(request) == (0, 0x18)
    assert pps_parameters(h("FF 00 FF")) == (0, DEFAULT_TA1)  # no PPS1: the default rate
    for bad in (h("FF 10 18 F6"), h("FE 10 18 F6"), h("FF 30 18 D7"), b""):  # check byte, PPSS, PPS2 missing
        with pytest.raises(ProtocolError):
            pps_parameters(bad)
