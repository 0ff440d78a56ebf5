"""Status words: what each one means, including the purse words of PBOC / JT/T 978 cards and PSAMs."""

from __future__ import annotations

OK = 0x9000

# Exact words. The purse words (9xxx, 6283/6284 on SELECT) follow how T-Union validators read them.
_EXACT: dict[int, str] = {
    0x9000: "success",
    0x6281: "part of returned data may be corrupted",
    0x6282: "end of file or record reached before Le bytes",
    0x6283: "selected application temporarily locked (blocked)",
    0x6284: "selected application permanently locked",
    0x6400: "execution error, state of memory unchanged",
    0x6581: "memory failure",
    0x6700: "wrong length",
    0x6881: "logical channel not supported",
    0x6882: "secure messaging not supported",
    0x6981: "command incompatible with file structure",
    0x6982: "security status not satisfied",
    0x6983: "authentication method blocked",
    0x6984: "referenced data invalidated",
    0x6985: "conditions of use not satisfied",
    0x6986: "command not allowed (no current EF)",
    0x6987: "expected secure messaging data objects missing",
    0x6988: "secure messaging data objects incorrect",
    0x6A80: "incorrect parameters in the data field",
    0x6A81: "function not supported",
    0x6A82: "file or application not found",
    0x6A83: "record not found",
    0x6A84: "not enough memory space in the file",
    0x6A86: "incorrect parameters P1-P2",
    0x6A88: "referenced data not found",
    0x6B00: "wrong parameters P1-P2 (offset outside the file)",
    0x6D00: "instruction code not supported",
    0x6E00: "class not supported",
    0x6F00: "no precise diagnosis",
    0x9302: "MAC invalid",
    0x9303: "application permanently locked",
    0x9401: "insufficient balance",
    0x9402: "transaction counter at its maximum",
    0x9403: "key index not supported",
    0x9406: "required MAC or TAC not available",
}


def describe(sw: int) -> str:
    """A short English meaning for any status word; parametrised words (61xx, 6Cxx, 63Cx) say their parameter."""
    if sw in _EXACT:
        return _EXACT[sw]
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == 0x61:
        return f"{sw2 or 256} response bytes available (GET RESPONSE)"
    if sw1 == 0x6C:
        return f"wrong Le: exactly {sw2 or 256} bytes available"
    if sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
        return f"verification failed, {sw2 & 0x0F} tries left"
    if sw1 == 0x62:
        return "warning: state of memory unchanged"
    if sw1 == 0x63:
        return "warning: state of memory changed"
    if sw1 == 0x64:
        return "execution error, state of memory unchanged"
    if sw1 == 0x65:
        return "execution error, state of memory changed"
    if sw1 == 0x67:
        return "wrong length"
    if sw1 == 0x68:
        return "functions in CLA not supported"
    if sw1 == 0x69:
        return "command not allowed"
    if sw1 == 0x6A:
        return "wrong parameters P1-P2"
    return "unknown status word"


def is_known(sw: int) -> bool:
    """Whether the table names this exact word (or it is a parametrised one: 61xx, 6Cxx, 63Cx); :func:`describe` then
    gives its meaning, otherwise only its ISO 7816-4 class."""
    sw1 = sw >> 8
    return sw in _EXACT or sw1 in (0x61, 0x6C) or (sw1 == 0x63 and sw & 0xF0 == 0xC0)


def format_sw(sw: int) -> str:
    """``"9401 (insufficient balance)"``: how a status word appears in messages and logs."""
    return f"{sw:04X} ({describe(sw)})"
