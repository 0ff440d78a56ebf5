"""Status words: one table for the purse card's commands and one for the PSAM's, each word with its meaning.

:class:`CardStatus` holds every word a T-Union card answers (the PBOC / JT/T 978 purse words as T-Union validators read
them, and the ISO 7816-4 words cards answer), :class:`PsamStatus` every word a PSAM answers to its command set. The
simulator answers with them, the terminal tests answers against them and ``ykt decode`` names them from them: no other
list of status words exists. Words with a parameter (``61xx``, ``6Cxx``, ``63Cx``) are described by :func:`describe`.
"""

from __future__ import annotations

from enum import IntEnum


class StatusWord(IntEnum):
    """A status word and its meaning (``meaning``); the subclasses are the tables of one command set each."""

    meaning: str

    def __new__(cls, value: int, meaning: str) -> StatusWord:
        word = int.__new__(cls, value)
        word._value_ = value
        word.meaning = meaning
        return word

    @property
    def bytes(self) -> bytes:
        """SW1 SW2 as they end a response APDU."""
        return self.value.to_bytes(2, "big")


class CardStatus(StatusWord):
    """What a purse card answers. The purse words (9xxx, 6283/6284 on SELECT) are read as T-Union validators read
    them."""

    OK = 0x9000, "success"
    DATA_CORRUPTED = 0x6281, "part of returned data may be corrupted"
    END_OF_FILE = 0x6282, "end of file or record reached before Le bytes"
    APPLICATION_BLOCKED = 0x6283, "selected application temporarily locked (blocked)"
    APPLICATION_LOCKED = 0x6284, "selected application permanently locked"
    MEMORY_UNCHANGED = 0x6400, "execution error, state of memory unchanged"
    MEMORY_FAILURE = 0x6581, "memory failure"
    WRONG_LENGTH = 0x6700, "wrong length"
    NO_LOGICAL_CHANNEL = 0x6881, "logical channel not supported"
    NO_SECURE_MESSAGING = 0x6882, "secure messaging not supported"
    INCOMPATIBLE_FILE = 0x6981, "command incompatible with file structure"
    SECURITY_NOT_SATISFIED = 0x6982, "security status not satisfied"
    AUTHENTICATION_BLOCKED = 0x6983, "authentication method blocked"
    NO_CHALLENGE = 0x6984, "referenced data invalidated (no challenge to check the MAC against)"
    CONDITIONS_NOT_SATISFIED = 0x6985, "conditions of use not satisfied"
    NO_CURRENT_EF = 0x6986, "command not allowed (no current EF)"
    SM_OBJECTS_MISSING = 0x6987, "expected secure messaging data objects missing"
    SM_OBJECTS_INCORRECT = 0x6988, "secure messaging data objects incorrect"
    WRONG_DATA = 0x6A80, "incorrect parameters in the data field"
    NOT_SUPPORTED = 0x6A81, "function not supported"
    FILE_NOT_FOUND = 0x6A82, "file or application not found"
    RECORD_NOT_FOUND = 0x6A83, "record not found"
    FILE_FULL = 0x6A84, "not enough memory space in the file"
    WRONG_P1P2 = 0x6A86, "incorrect parameters P1-P2"
    DATA_NOT_FOUND = 0x6A88, "referenced data not found"
    WRONG_OFFSET = 0x6B00, "wrong parameters P1-P2 (offset outside the file)"
    UNKNOWN_INS = 0x6D00, "instruction code not supported"
    UNKNOWN_CLA = 0x6E00, "class not supported"
    INTERNAL_ERROR = 0x6F00, "no precise diagnosis"
    MAC_INVALID = 0x9302, "MAC invalid"
    APPLICATION_INVALID = 0x9303, "application permanently locked"
    INSUFFICIENT_BALANCE = 0x9401, "insufficient balance"
    COUNTER_EXHAUSTED = 0x9402, "transaction counter at its maximum"
    KEY_INDEX_UNSUPPORTED = 0x9403, "key index not supported"
    NO_PROOF = 0x9406, "required MAC or TAC not available"


class PsamStatus(StatusWord):
    """What a T-Union PSAM answers to its commands (spec §2): file access, 8070/8072, DES INIT and DES CRYPT."""

    OK = 0x9000, "success"
    WRONG_LENGTH = 0x6700, "wrong length"
    CONDITIONS_NOT_SATISFIED = 0x6985, "conditions of use not satisfied (no purchase session, DF or DES INIT key)"
    WRONG_DATA = 0x6A80, "incorrect parameters in the data field (an algorithm the key set does not hold)"
    NOT_SUPPORTED = 0x6A81, "function not supported (DES CRYPT under an SM4 key)"
    FILE_NOT_FOUND = 0x6A82, "file or application not found"
    WRONG_P1P2 = 0x6A86, "incorrect parameters P1-P2"
    KEY_NOT_FOUND = 0x6A88, "referenced data not found (no master key of that usage and version)"
    WRONG_OFFSET = 0x6B00, "wrong parameters P1-P2 (offset outside the file)"
    UNKNOWN_INS = 0x6D00, "instruction code not supported"
    UNKNOWN_CLA = 0x6E00, "class not supported"
    INTERNAL_ERROR = 0x6F00, "no precise diagnosis"
    MAC_INVALID = 0x9302, "MAC invalid (MAC2 rejected)"


TABLES: dict[str, type[StatusWord]] = {"card": CardStatus, "sam": PsamStatus}
"""The table of each peer, by the role name the decoder and the device openers use."""
_MEANINGS = {role: {int(word): word.meaning for word in table} for role, table in TABLES.items()}

SW1_BYTES_WAITING = 0x61
"""SW1 of ``61xx``: xx bytes of answer wait for GET RESPONSE (00 meaning 256)."""
SW1_WRONG_LE = 0x6C
"""SW1 of ``6Cxx``: wrong Le, send the command again with Le = xx (00 meaning 256)."""


def bytes_waiting(count: int) -> int:
    """``61xx``: ``count`` bytes of answer wait for GET RESPONSE (256 is sent as 00)."""
    return SW1_BYTES_WAITING << 8 | (count & 0xFF)


def resend_with_le(size: int) -> int:
    """``6Cxx``: wrong Le, the answer is ``size`` bytes (256 is sent as 00)."""
    return SW1_WRONG_LE << 8 | (size & 0xFF)


def describe(sw: int, role: str = "card") -> str:
    """A short English meaning for any status word, from the table of ``role`` (``card``: :class:`CardStatus`,
    ``sam``: :class:`PsamStatus`, falling back to the card's for a word the PSAM's does not hold); parametrised words
    (61xx, 6Cxx, 63Cx) say their parameter."""
    meaning = _MEANINGS.get(role, _MEANINGS["card"]).get(sw) or _MEANINGS["card"].get(sw)
    if meaning is not None:
        return meaning
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == SW1_BYTES_WAITING:
        return f"{sw2 or 256} response bytes available (GET RESPONSE)"
    if sw1 == SW1_WRONG_LE:
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


def is_known(sw: int, role: str = "card") -> bool:
    """Whether the table of ``role`` (or the card's) names this exact word, or it is a parametrised one (61xx, 6Cxx,
    63Cx); :func:`describe` then gives its meaning, otherwise only its ISO 7816-4 class."""
    sw1 = sw >> 8
    return (sw in _MEANINGS.get(role, _MEANINGS["card"]) or sw in _MEANINGS["card"]
            or sw1 in (SW1_BYTES_WAITING, SW1_WRONG_LE) or (sw1 == 0x63 and sw & 0xF0 == 0xC0))


def format_sw(sw: int, role: str = "card") -> str:
    """``"9401 (insufficient balance)"``: how a status word appears in messages and logs."""
    return f"{sw:04X} ({describe(sw, role)})"
