"""The PN532 status byte: error code in bits 5..0, MI ("more information") in bit 6, NAD present in bit 7.

InDataExchange, InCommunicateThru, InSelect, InDeselect, InRelease and PowerDown answer with it; GetGeneralStatus
reports the last error code. Meanings follow the error table of NXP's PN532 user manual (UM0701-02).
"""

from __future__ import annotations

import enum

ERROR_MASK = 0x3F
STATUS_MI = 0x40
"""More information: the answer continues in the next exchange."""
STATUS_NAD = 0x80


class ChipError(enum.IntEnum):
    NONE = 0x00
    TIMEOUT = 0x01
    CRC = 0x02
    PARITY = 0x03
    BIT_COUNT = 0x04
    FRAMING = 0x05
    BIT_COLLISION = 0x06
    BUFFER_TOO_SMALL = 0x07
    RF_BUFFER_OVERFLOW = 0x09
    RF_FIELD_TIMEOUT = 0x0A
    RF_PROTOCOL = 0x0B
    OVERHEATED = 0x0D
    INTERNAL_BUFFER_OVERFLOW = 0x0E
    INVALID_PARAMETER = 0x10
    DEP_UNSUPPORTED_COMMAND = 0x12
    INVALID_FRAME_FORMAT = 0x13
    MIFARE_AUTHENTICATION = 0x14
    UID_CHECK_BYTE = 0x23
    DEP_INVALID_STATE = 0x25
    NOT_ALLOWED_IN_CONFIGURATION = 0x26
    WRONG_CONTEXT = 0x27
    RELEASED_BY_INITIATOR = 0x29
    CARD_ID_MISMATCH = 0x2A
    CARD_DISAPPEARED = 0x2B
    NFCID3_MISMATCH = 0x2C
    OVER_CURRENT = 0x2D
    NAD_MISSING = 0x2E


_MEANINGS = {
    ChipError.NONE: "success",
    ChipError.TIMEOUT: "time-out: the target has not answered",
    ChipError.CRC: "CRC error in the frame received from the target",
    ChipError.PARITY: "parity error in the frame received from the target",
    ChipError.BIT_COUNT: "erroneous bit count during anticollision/select",
    ChipError.FRAMING: "framing error during a MIFARE operation",
    ChipError.BIT_COLLISION: "abnormal bit collision during 106 kbit/s bitwise anticollision",
    ChipError.BUFFER_TOO_SMALL: "communication buffer too small",
    ChipError.RF_BUFFER_OVERFLOW: "RF buffer overflow in the contactless interface unit",
    ChipError.RF_FIELD_TIMEOUT: "the counterpart did not switch its RF field on in time (active mode)",
    ChipError.RF_PROTOCOL: "RF protocol error",
    ChipError.OVERHEATED: "overheating: the antenna drivers were switched off",
    ChipError.INTERNAL_BUFFER_OVERFLOW: "internal buffer overflow",
    ChipError.INVALID_PARAMETER: "invalid parameter (range, format)",
    ChipError.DEP_UNSUPPORTED_COMMAND: "DEP: the initiator sent a command the target does not support",
    ChipError.INVALID_FRAME_FORMAT: "DEP, MIFARE or ISO 14443-4: received data format does not match the protocol",
    ChipError.MIFARE_AUTHENTICATION: "MIFARE authentication error",
    ChipError.UID_CHECK_BYTE: "ISO 14443-3: UID check byte (BCC) is wrong",
    ChipError.DEP_INVALID_STATE: "DEP: invalid device state for this operation",
    ChipError.NOT_ALLOWED_IN_CONFIGURATION: "operation not allowed in this configuration",
    ChipError.WRONG_CONTEXT: "command not acceptable in the current context (mode, target number or state)",
    ChipError.RELEASED_BY_INITIATOR: "the PN532 as target has been released by its initiator",
    ChipError.CARD_ID_MISMATCH: "ISO 14443-3B: the card's ID does not match (card exchanged)",
    ChipError.CARD_DISAPPEARED: "ISO 14443-3B: the card previously activated has disappeared",
    ChipError.NFCID3_MISMATCH: "NFCID3 of initiator and target do not match (DEP 212/424 passive)",
    ChipError.OVER_CURRENT: "over-current event detected",
    ChipError.NAD_MISSING: "NAD missing in a DEP frame",
}


def describe_error(code: int) -> str:
    """Meaning of an error code (the status byte's bits 5..0)."""
    try:
        return _MEANINGS[ChipError(code & ERROR_MASK)]
    except ValueError:
        return f"unknown PN532 error {code & ERROR_MASK:#04x}"


def format_status(status: int) -> str:
    """``"01 (time-out: the target has not answered)"``, with ``+MI``/``+NAD`` when those bits are set."""
    flags = "".join(name for bit, name in ((STATUS_MI, " +MI"), (STATUS_NAD, " +NAD")) if status & bit)
    return f"{status & ERROR_MASK:02X} ({describe_error(status)}){flags}"
