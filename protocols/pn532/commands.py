"""PN532 commands and their responses: the data of an information frame, code byte first.

A response's code is the command's plus one. Each command class knows its response (``RESPONSE``, or ``None`` when
the chip answers the bare code) and :meth:`Command.parse_response` checks the answer against the command that was
sent, so a driver can write ``command.parse_response(answer)`` and an emulator ``parse_command(data)``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Self

import construct as c

from ..errors import ProtocolError
from ..iso14443 import SAK_ISO14443_4, UID_SIZES
from ..layout import Layout
from .status import ERROR_MASK, STATUS_MI, STATUS_NAD


class CommandCode(enum.IntEnum):
    """Every PN532 command code (UM0701-02 §7); the codecs below cover those a reader driver and an emulator use."""

    Diagnose = 0x00
    GetFirmwareVersion = 0x02
    GetGeneralStatus = 0x04
    ReadRegister = 0x06
    WriteRegister = 0x08
    ReadGPIO = 0x0C
    WriteGPIO = 0x0E
    SetSerialBaudRate = 0x10
    SetParameters = 0x12
    SAMConfiguration = 0x14
    PowerDown = 0x16
    RFConfiguration = 0x32
    InDataExchange = 0x40
    InCommunicateThru = 0x42
    InDeselect = 0x44
    InJumpForPSL = 0x46
    InListPassiveTarget = 0x4A
    InPSL = 0x4E
    InATR = 0x50
    InRelease = 0x52
    InSelect = 0x54
    InJumpForDEP = 0x56
    RFRegulationTest = 0x58
    InAutoPoll = 0x60
    TgGetData = 0x86
    TgGetInitiatorCommand = 0x88
    TgGetTargetStatus = 0x8A
    TgInitAsTarget = 0x8C
    TgSetData = 0x8E
    TgResponseToInitiator = 0x90
    TgSetGeneralBytes = 0x92
    TgSetMetaData = 0x94


def name_of(code: int) -> str:
    """``"InDataExchange"`` for 40, ``"InDataExchange response"`` for 41: for traces and error messages."""
    try:
        if code & 1:
            return f"{CommandCode(code - 1).name} response"
        return CommandCode(code).name
    except ValueError:
        return f"unknown PN532 code {code:02X}"


def _byte(value: int, what: str, low: int = 0, high: int = 0xFF) -> int:
    if not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"{what} must be {low:#04x}..{high:#04x}, got {value!r}")
    return value


def _length(body: bytes, allowed: tuple[int, ...] | range, what: str) -> None:
    if len(body) not in allowed:
        raise ProtocolError(f"{what}: {len(body)} parameter bytes is not a valid length")


class Message:
    """A command or response: the code byte, then a body that each class encodes in ``_body``/``_from_body``."""

    __slots__ = ()
    CODE: ClassVar[int]

    def to_bytes(self) -> bytes:
        return bytes((self.CODE,)) + self._body()

    @classmethod
    def parse(cls, data: bytes) -> Self:
        if not data or data[0] != cls.CODE:
            raise ProtocolError(f"{cls.__name__}: expected code {cls.CODE:02X}, got {data[:1].hex().upper() or 'none'}")
        return cls._from_body(bytes(data[1:]))

    def _body(self) -> bytes:
        """The parameters after the code byte; each message class (or its mixin) encodes its own."""
        raise NotImplementedError

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        """The message from the parameters after the code byte; each message class (or its mixin) decodes its own."""
        raise NotImplementedError


class Command(Message):
    __slots__ = ()
    RESPONSE: ClassVar[type[Message] | None] = None

    def parse_response(self, data: bytes) -> Message | None:
        """The chip's answer to this command; ``None`` for commands answered by the bare response code."""
        if self.RESPONSE is None:
            if data != bytes((self.CODE + 1,)):
                raise ProtocolError(f"{type(self).__name__}: expected the bare response {self.CODE + 1:02X}, "
                                    f"got {data.hex().upper()}")
            return None
        return self.RESPONSE.parse(data)

    def bare_response(self) -> bytes:
        """What the chip answers to a command that has no response parameters."""
        if self.RESPONSE is not None:
            raise ProtocolError(f"{type(self).__name__} has a response with parameters")
        return bytes((self.CODE + 1,))


class _NoBody:
    __slots__ = ()

    def _body(self) -> bytes:
        return b""

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        _length(body, (0,), cls.__name__)
        return cls()


class _HasStatus:
    """Reading of the status byte shared by every response that carries one."""

    __slots__ = ()
    status: int

    @property
    def error(self) -> int:
        return self.status & ERROR_MASK

    @property
    def ok(self) -> bool:
        return self.status & ERROR_MASK == 0

    @property
    def more(self) -> bool:
        """MI: the target's answer continues; fetch the rest with another exchange."""
        return bool(self.status & STATUS_MI)

    @property
    def nad(self) -> bool:
        return bool(self.status & STATUS_NAD)


class _OneByte:
    """A message whose whole body is one byte, held in the field named ``_FIELD`` (``_LABEL`` in messages)."""

    __slots__ = ()
    _FIELD: ClassVar[str]
    _LABEL: ClassVar[str]

    def __post_init__(self) -> None:
        _byte(getattr(self, self._FIELD), f"{type(self).__name__} {self._LABEL}")

    def _body(self) -> bytes:
        return bytes((getattr(self, self._FIELD),))

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        _length(body, (1,), cls.__name__)
        return cls(body[0])  # type: ignore[call-arg]  # a mixin: its dataclass takes the one field


@dataclass(slots=True)
class _StatusOnly(_OneByte, _HasStatus, Message):
    _FIELD: ClassVar[str] = "status"
    _LABEL: ClassVar[str] = "status"
    status: int


@dataclass(slots=True)
class _StatusData(_HasStatus, Message):
    status: int
    data: bytes = b""

    def __post_init__(self) -> None:
        _byte(self.status, f"{type(self).__name__} status")

    def _body(self) -> bytes:
        return bytes((self.status,)) + self.data

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        if not body:
            raise ProtocolError(f"{cls.__name__}: no status byte")
        return cls(body[0], body[1:])


@dataclass(slots=True)
class _TargetOnly(_OneByte, Command):
    """Commands whose one parameter is a target number; 0 means every target (InDeselect, InRelease)."""

    _FIELD: ClassVar[str] = "tg"
    _LABEL: ClassVar[str] = "target"
    tg: int


# --- miscellaneous commands ---------------------------------------------------------------------------------------

class DiagnoseTest(enum.IntEnum):
    COMMUNICATION_LINE = 0x00
    ROM = 0x01
    RAM = 0x02
    POLLING = 0x04
    ECHO_BACK = 0x05
    CARD_PRESENCE = 0x06
    ANTENNA = 0x07


@dataclass(slots=True)
class DiagnoseResponse(Message):
    """For the line test the echo of the test number and data; for the others their result bytes."""

    CODE: ClassVar[int] = 0x01
    data: bytes = b""

    def _body(self) -> bytes:
        return self.data

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        return cls(body)


@dataclass(slots=True)
class Diagnose(Command):
    CODE: ClassVar[int] = 0x00
    RESPONSE: ClassVar[type[Message]] = DiagnoseResponse
    test: int
    params: bytes = b""

    def __post_init__(self) -> None:
        _byte(self.test, "Diagnose test number")

    @classmethod
    def line_test(cls, payload: bytes) -> Diagnose:
        """The communication line test: the chip must echo the test number and ``payload`` (libnfc sends "libnfc")."""
        return cls(DiagnoseTest.COMMUNICATION_LINE, payload)

    def _body(self) -> bytes:
        return bytes((self.test,)) + self.params

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        if not body:
            raise ProtocolError("Diagnose: no test number")
        return cls(body[0], body[1:])

    def parse_response(self, data: bytes) -> DiagnoseResponse:
        response = DiagnoseResponse.parse(data)
        if self.test == DiagnoseTest.COMMUNICATION_LINE and response.data != self._body():
            raise ProtocolError(f"Diagnose line test: sent {self._body().hex().upper()}, "
                                f"echoed {response.data.hex().upper()}")
        return response

    def echo(self) -> DiagnoseResponse:
        """The answer of a working chip to the line test."""
        if self.test != DiagnoseTest.COMMUNICATION_LINE:
            raise ProtocolError(f"Diagnose test {self.test:02X} does not echo")
        return DiagnoseResponse(self._body())


SUPPORT_ISO14443A, SUPPORT_ISO14443B, SUPPORT_ISO18092 = 0x01, 0x02, 0x04


@dataclass(slots=True)
class FirmwareVersion(Message):
    """``IC Ver Rev Support``: a PN532 v1.6 answers ``32 01 06 07``."""

    CODE: ClassVar[int] = 0x03
    ic: int
    version: int
    revision: int
    support: int

    @property
    def name(self) -> str:
        return f"PN5{self.ic:02X} v{self.version}.{self.revision}"

    def _body(self) -> bytes:
        return FIRMWARE_VERSION.build(self)

    @classmethod
    def _from_body(cls, body: bytes) -> FirmwareVersion:
        return FIRMWARE_VERSION.parse(body)


FIRMWARE_VERSION = Layout(
    FirmwareVersion, "ic" / c.Int8ub, "version" / c.Int8ub, "revision" / c.Int8ub, "support" / c.Int8ub,
    examples=(("32010607", FirmwareVersion(0x32, 1, 6, 7)),),
)


@dataclass(slots=True)
class GetFirmwareVersion(_NoBody, Command):
    CODE: ClassVar[int] = 0x02
    RESPONSE: ClassVar[type[Message]] = FirmwareVersion


@dataclass(slots=True)
class TargetStatus:
    """One target in GetGeneralStatus: number, receive and send bit rate codes (0 = 106, 1 = 212, 2 = 424 kbit/s),
    modulation type."""

    tg: int
    br_rx: int
    br_tx: int
    modulation: int


TARGET_STATUS = Layout(
    TargetStatus, "tg" / c.Int8ub, "br_rx" / c.Int8ub, "br_tx" / c.Int8ub, "modulation" / c.Int8ub,
    examples=(("01000000", TargetStatus(1, 0, 0, 0)),),
)


@dataclass(slots=True)
class GeneralStatus(Message):
    """``Err Field NbTg [Tg BrRx BrTx Type]… SAM``: the last error, whether the RF field is on, the active targets."""

    CODE: ClassVar[int] = 0x05
    last_error: int
    rf_field: bool
    targets: tuple[TargetStatus, ...]
    sam_status: int

    def __post_init__(self) -> None:
        _byte(self.last_error, "GeneralStatus error")
        _byte(self.sam_status, "GeneralStatus SAM status")
        if len(self.targets) > 2:
            raise ProtocolError(f"GeneralStatus: {len(self.targets)} targets, the PN532 handles at most 2")

    def _body(self) -> bytes:
        head = bytes((self.last_error, int(self.rf_field), len(self.targets)))
        return head + b"".join(TARGET_STATUS.build(t) for t in self.targets) + bytes((self.sam_status,))

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        if len(body) < 4 or len(body) != 4 + 4 * body[2]:
            raise ProtocolError(f"GeneralStatus: {len(body)} bytes do not match its target count")
        if body[1] > 1:
            raise ProtocolError(f"GeneralStatus: field byte {body[1]:02X} is neither 00 nor 01")
        targets = tuple(TARGET_STATUS.parse(body[i:i + 4]) for i in range(3, len(body) - 1, 4))
        return cls(body[0], bool(body[1]), targets, body[-1])


@dataclass(slots=True)
class GetGeneralStatus(_NoBody, Command):
    CODE: ClassVar[int] = 0x04
    RESPONSE: ClassVar[type[Message]] = GeneralStatus


@dataclass(slots=True)
class ReadRegisterResponse(Message):
    """The register values in the order asked (a PN532 sends no status byte here, unlike a PN533)."""

    CODE: ClassVar[int] = 0x07
    values: bytes

    def _body(self) -> bytes:
        return self.values

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        return cls(body)


@dataclass(slots=True)
class ReadRegister(Command):
    """Read registers and SFRs by 16-bit address."""

    CODE: ClassVar[int] = 0x06
    RESPONSE: ClassVar[type[Message]] = ReadRegisterResponse
    addresses: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.addresses:
            raise ProtocolError("ReadRegister: no address")
        for address in self.addresses:
            _byte(address, "register address", 0, 0xFFFF)

    def _body(self) -> bytes:
        return b"".join(address.to_bytes(2, "big") for address in self.addresses)

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        if not body or len(body) % 2:
            raise ProtocolError(f"ReadRegister: {len(body)} bytes are not whole 16-bit addresses")
        return cls(tuple(int.from_bytes(body[i:i + 2], "big") for i in range(0, len(body), 2)))

    def parse_response(self, data: bytes) -> ReadRegisterResponse:
        response = ReadRegisterResponse.parse(data)
        if len(response.values) != len(self.addresses):
            raise ProtocolError(f"ReadRegister: asked {len(self.addresses)} registers, got {len(response.values)}")
        return response


@dataclass(slots=True)
class WriteRegister(Command):
    """Write registers: ``(address, value)`` pairs."""

    CODE: ClassVar[int] = 0x08
    writes: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not self.writes:
            raise ProtocolError("WriteRegister: nothing to write")
        for address, value in self.writes:
            _byte(address, "register address", 0, 0xFFFF)
            _byte(value, "register value")

    def _body(self) -> bytes:
        return b"".join(address.to_bytes(2, "big") + bytes((value,)) for address, value in self.writes)

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        if not body or len(body) % 3:
            raise ProtocolError(f"WriteRegister: {len(body)} bytes are not whole (address, value) triples")
        return cls(tuple((body[i] << 8 | body[i + 1], body[i + 2]) for i in range(0, len(body), 3)))


class ParameterFlags(enum.IntFlag):
    NAD_USED = 0x01
    DID_USED = 0x02
    AUTOMATIC_ATR_RES = 0x04
    AUTOMATIC_RATS = 0x10
    ISO14443_4_PICC = 0x20
    REMOVE_PRE_POSTAMBLE = 0x40


@dataclass(slots=True)
class SetParameters(_OneByte, Command):
    """libnfc sends ``14``: automatic ATR_RES and automatic RATS, so InListPassiveTarget returns the ATS."""

    CODE: ClassVar[int] = 0x12
    _FIELD: ClassVar[str] = "flags"
    _LABEL: ClassVar[str] = "flags"
    flags: int


class SamMode(enum.IntEnum):
    NORMAL = 0x01
    VIRTUAL_CARD = 0x02
    WIRED_CARD = 0x03
    DUAL_CARD = 0x04


@dataclass(slots=True)
class SAMConfiguration(Command):
    """``Mode [Timeout [IRQ]]``; the timeout (in 50 ms) matters in virtual card mode only. libnfc sends ``01``."""

    CODE: ClassVar[int] = 0x14
    mode: int
    timeout: int | None = None
    irq: bool | None = None

    def __post_init__(self) -> None:
        _byte(self.mode, "SAMConfiguration mode", SamMode.NORMAL, SamMode.DUAL_CARD)
        if self.timeout is not None:
            _byte(self.timeout, "SAMConfiguration timeout")
        elif self.irq is not None:
            raise ProtocolError("SAMConfiguration: the IRQ byte needs the timeout byte before it")

    def _body(self) -> bytes:
        out = bytes((self.mode,))
        if self.timeout is not None:
            out += bytes((self.timeout,))
        if self.irq is not None:
            out += bytes((int(self.irq),))
        return out

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        _length(body, range(1, 4), "SAMConfiguration")
        if len(body) == 3 and body[2] > 1:
            raise ProtocolError(f"SAMConfiguration: IRQ byte {body[2]:02X} is neither 00 nor 01")
        return cls(body[0], body[1] if len(body) > 1 else None, bool(body[2]) if len(body) > 2 else None)


class WakeUp(enum.IntFlag):
    """PowerDown wake-up sources; libnfc enables I2C, GPIO, SPI and HSU (``F0``)."""

    INT0 = 0x01
    INT1 = 0x02
    RF = 0x08
    HSU = 0x10
    SPI = 0x20
    GPIO = 0x40
    I2C = 0x80


@dataclass(slots=True)
class PowerDownResponse(_StatusOnly):
    CODE: ClassVar[int] = 0x17


@dataclass(slots=True)
class PowerDown(Command):
    CODE: ClassVar[int] = 0x16
    RESPONSE: ClassVar[type[Message]] = PowerDownResponse
    wakeup: int
    irq: bool | None = None

    def __post_init__(self) -> None:
        _byte(self.wakeup, "PowerDown wake-up sources")

    def _body(self) -> bytes:
        return bytes((self.wakeup,)) + (b"" if self.irq is None else bytes((int(self.irq),)))

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        _length(body, (1, 2), "PowerDown")
        if len(body) == 2 and body[1] > 1:
            raise ProtocolError(f"PowerDown: GenerateIRQ byte {body[1]:02X} is neither 00 nor 01")
        return cls(body[0], bool(body[1]) if len(body) == 2 else None)


class RFItem(enum.IntEnum):
    FIELD = 0x01
    TIMINGS = 0x02
    MAX_RETRY_COM = 0x04
    MAX_RETRIES = 0x05
    ANALOG_106_TYPE_A = 0x0A
    ANALOG_212_424 = 0x0B
    ANALOG_TYPE_B = 0x0C
    ANALOG_ISO14443_4 = 0x0D


_RF_ITEM_LENGTH: dict[int, int] = {RFItem.FIELD: 1, RFItem.TIMINGS: 3, RFItem.MAX_RETRY_COM: 1, RFItem.MAX_RETRIES: 3,
                   RFItem.ANALOG_106_TYPE_A: 11, RFItem.ANALOG_212_424: 8, RFItem.ANALOG_TYPE_B: 3,
                   RFItem.ANALOG_ISO14443_4: 9}
RF_FIELD_ON, RF_AUTO_RFCA = 0x01, 0x02


@dataclass(slots=True)
class RFConfiguration(Command):
    """``CfgItem ConfigurationData``, the data length fixed by the item."""

    CODE: ClassVar[int] = 0x32
    item: int
    data: bytes

    def __post_init__(self) -> None:
        if self.item not in _RF_ITEM_LENGTH:
            raise ProtocolError(f"RFConfiguration: unknown configuration item {self.item!r}")
        if len(self.data) != _RF_ITEM_LENGTH[self.item]:
            raise ProtocolError(f"RFConfiguration item {self.item:02X} takes {_RF_ITEM_LENGTH[self.item]} bytes, "
                                f"got {len(self.data)}")

    @classmethod
    def field(cls, on: bool, *, auto_rfca: bool = False) -> RFConfiguration:
        """Switch the RF field (libnfc: ``32 01 00`` off, ``32 01 01`` on)."""
        return cls(RFItem.FIELD, bytes(((RF_FIELD_ON if on else 0) | (RF_AUTO_RFCA if auto_rfca else 0),)))

    @classmethod
    def timings(cls, atr_res_timeout: int, retry_timeout: int) -> RFConfiguration:
        """Timeout codes: 0x0B = 102.4 ms for ATR_RES, 0x0A = 51.2 ms for non-DEP exchanges (the defaults)."""
        return cls(RFItem.TIMINGS, bytes((0, atr_res_timeout, retry_timeout)))

    @classmethod
    def max_retries(cls, atr: int, psl: int, passive_activation: int) -> RFConfiguration:
        """Retry counts: 00 one try, FF forever."""
        return cls(RFItem.MAX_RETRIES, bytes((atr, psl, passive_activation)))

    def _body(self) -> bytes:
        return bytes((self.item,)) + self.data

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        if not body:
            raise ProtocolError("RFConfiguration: no configuration item")
        return cls(body[0], body[1:])


# --- initiator commands -------------------------------------------------------------------------------------------

class Modulation(enum.IntEnum):
    """InListPassiveTarget BrTy."""

    ISO14443A_106 = 0x00
    FELICA_212 = 0x01
    FELICA_424 = 0x02
    ISO14443B_106 = 0x03
    JEWEL_106 = 0x04


@dataclass(slots=True)
class TargetA:
    """A 106 kbit/s type A target: ``Tg ATQA(2) SAK NFCIDLen NFCID [ATS]``.

    ``atqa`` is in the chip's order, most significant byte first (``00 04`` for a MIFARE Classic 1K); ``ats`` is
    the whole ATS starting with its length byte TL, as :meth:`protocols.iso14443.Ats.parse` takes it.
    """

    tg: int
    atqa: bytes
    sak: int
    uid: bytes
    ats: bytes | None = None

    def __post_init__(self) -> None:
        _byte(self.tg, "target number")
        _byte(self.sak, "SAK")
        if len(self.atqa) != 2:
            raise ProtocolError(f"ATQA of {len(self.atqa)} bytes, expected 2")
        if len(self.uid) not in UID_SIZES:
            raise ProtocolError(f"NFCID1 of {len(self.uid)} bytes: 4, 7 or 10 expected")
        if self.ats is not None and (not self.ats or self.ats[0] != len(self.ats)):
            raise ProtocolError(f"ATS {self.ats.hex().upper()}: TL does not give its length")

    @property
    def atqa_value(self) -> int:
        return int.from_bytes(self.atqa, "big")

    def to_bytes(self) -> bytes:
        return (bytes((self.tg,)) + self.atqa + bytes((self.sak, len(self.uid))) + self.uid
                + (self.ats or b""))

    @classmethod
    def parse(cls, raw: bytes) -> TargetA:
        """Target data of known length (InAutoPoll gives it): an ATS is present when bytes follow the NFCID."""
        target, end = _read_target_a(raw, 0, ats_by_sak=False)
        if end != len(raw):
            raise ProtocolError(f"type A target data: {len(raw) - end} bytes after the ATS")
        return target


def _read_target_a(buf: bytes, pos: int, *, ats_by_sak: bool) -> tuple[TargetA, int]:
    """One type A target starting at ``pos``; returns it and where the next begins.

    In an InListPassiveTarget answer nothing gives a target's length, so the ATS is taken to be there when the SAK
    announces ISO 14443-4 and bytes follow, which is when the chip (automatic RATS on) sends one.
    """
    if len(buf) < pos + 5:
        raise ProtocolError(f"type A target data cut short at byte {len(buf)}")
    end = pos + 5 + buf[pos + 4]
    if len(buf) < end:
        raise ProtocolError(f"type A target: NFCID1 of {buf[pos + 4]} bytes cut short")
    ats = None
    if end < len(buf) and (buf[pos + 3] & SAK_ISO14443_4 or not ats_by_sak):
        tl = buf[end]
        if tl == 0 or end + tl > len(buf):
            raise ProtocolError(f"type A target: ATS length {tl} does not fit the {len(buf) - end} bytes left")
        ats = buf[end:end + tl]
        end += tl
    return TargetA(buf[pos], buf[pos + 1:pos + 3], buf[pos + 3], buf[pos + 5:pos + 5 + buf[pos + 4]], ats), end


@dataclass(slots=True)
class InListPassiveTargetResponse(Message):
    """``NbTg [TargetData1 [TargetData2]]`` for 106 kbit/s type A targets."""

    CODE: ClassVar[int] = 0x4B
    targets: tuple[TargetA, ...] = ()

    def __post_init__(self) -> None:
        if len(self.targets) > 2:
            raise ProtocolError(f"InListPassiveTarget: {len(self.targets)} targets, the PN532 lists at most 2")
        for index, target in enumerate(self.targets):
            iso = bool(target.sak & SAK_ISO14443_4)
            if target.ats is not None and not iso:
                raise ProtocolError(f"target {target.tg}: an ATS with SAK {target.sak:02X} cannot be told apart "
                                    "from the next target")
            if iso and target.ats is None and index < len(self.targets) - 1:
                raise ProtocolError(f"target {target.tg}: SAK {target.sak:02X} without an ATS before another target "
                                    "cannot be told apart")

    def _body(self) -> bytes:
        return bytes((len(self.targets),)) + b"".join(target.to_bytes() for target in self.targets)

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        if not body:
            raise ProtocolError("InListPassiveTarget: no target count")
        if body[0] > 2:
            raise ProtocolError(f"InListPassiveTarget: {body[0]} targets, the PN532 lists at most 2")
        targets, pos = [], 1
        for _ in range(body[0]):
            target, pos = _read_target_a(body, pos, ats_by_sak=True)
            targets.append(target)
        if pos != len(body):
            raise ProtocolError(f"InListPassiveTarget: {len(body) - pos} bytes after the last target")
        return cls(tuple(targets))


@dataclass(slots=True)
class InListPassiveTarget(Command):
    """``MaxTg BrTy [InitiatorData]``: libnfc sends ``01 00`` (one type A target)."""

    CODE: ClassVar[int] = 0x4A
    RESPONSE: ClassVar[type[Message]] = InListPassiveTargetResponse
    max_targets: int = 1
    modulation: int = Modulation.ISO14443A_106
    initiator_data: bytes = b""

    def __post_init__(self) -> None:
        _byte(self.max_targets, "InListPassiveTarget MaxTg", 1, 2)
        _byte(self.modulation, "InListPassiveTarget BrTy", 0, max(Modulation))

    def _body(self) -> bytes:
        return bytes((self.max_targets, self.modulation)) + self.initiator_data

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        if len(body) < 2:
            raise ProtocolError(f"InListPassiveTarget: {len(body)} bytes, MaxTg and BrTy expected")
        return cls(body[0], body[1], body[2:])

    def parse_response(self, data: bytes) -> InListPassiveTargetResponse:
        if self.modulation != Modulation.ISO14443A_106:
            raise ProtocolError(f"InListPassiveTarget: only 106 kbit/s type A targets are decoded, "
                                f"not BrTy {self.modulation:02X}")
        response = InListPassiveTargetResponse.parse(data)
        if len(response.targets) > self.max_targets:
            raise ProtocolError(f"InListPassiveTarget: asked for {self.max_targets} targets, got "
                                f"{len(response.targets)}")
        return response


MAX_EXCHANGE_DATA = 262
"""Most data bytes InDataExchange carries either way in one frame; longer answers come in pieces flagged MI."""


@dataclass(slots=True)
class InDataExchangeResponse(_StatusData):
    CODE: ClassVar[int] = 0x41

    def __post_init__(self) -> None:
        _byte(self.status, "InDataExchange status")
        if len(self.data) > MAX_EXCHANGE_DATA:
            raise ProtocolError(f"InDataExchange: {len(self.data)} bytes exceed {MAX_EXCHANGE_DATA}")


@dataclass(slots=True)
class InDataExchange(Command):
    """``Tg DataOut``: an APDU (ISO-DEP targets) or a MIFARE command. ``more`` sets MI in Tg: DataOut continues in
    the next command. After an answer flagged MI, the host sends ``Tg`` alone to fetch the rest."""

    CODE: ClassVar[int] = 0x40
    RESPONSE: ClassVar[type[Message]] = InDataExchangeResponse
    tg: int
    data: bytes = b""
    more: bool = False

    def __post_init__(self) -> None:
        _byte(self.tg, "InDataExchange target", 0, ERROR_MASK)
        if len(self.data) > MAX_EXCHANGE_DATA:
            raise ProtocolError(f"InDataExchange: {len(self.data)} bytes exceed {MAX_EXCHANGE_DATA}")

    def _body(self) -> bytes:
        return bytes((self.tg | STATUS_MI if self.more else self.tg,)) + self.data

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        if not body:
            raise ProtocolError("InDataExchange: no target number")
        if body[0] & STATUS_NAD:
            raise ProtocolError(f"InDataExchange: Tg byte {body[0]:02X} has the RFU bit 7 set")
        return cls(body[0] & ERROR_MASK, body[1:], bool(body[0] & STATUS_MI))


@dataclass(slots=True)
class InCommunicateThruResponse(_StatusData):
    CODE: ClassVar[int] = 0x43


@dataclass(slots=True)
class InCommunicateThru(Command):
    """Raw frames to the current target, the chip adding CRC and parity only (``nfc-poll`` checks presence with
    ``B2``, an R(NAK))."""

    CODE: ClassVar[int] = 0x42
    RESPONSE: ClassVar[type[Message]] = InCommunicateThruResponse
    data: bytes

    def _body(self) -> bytes:
        return self.data

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        return cls(body)


@dataclass(slots=True)
class InDeselectResponse(_StatusOnly):
    CODE: ClassVar[int] = 0x45


@dataclass(slots=True)
class InDeselect(_TargetOnly):
    CODE: ClassVar[int] = 0x44
    RESPONSE: ClassVar[type[Message]] = InDeselectResponse


@dataclass(slots=True)
class InReleaseResponse(_StatusOnly):
    CODE: ClassVar[int] = 0x53


@dataclass(slots=True)
class InRelease(_TargetOnly):
    CODE: ClassVar[int] = 0x52
    RESPONSE: ClassVar[type[Message]] = InReleaseResponse


@dataclass(slots=True)
class InSelectResponse(_StatusOnly):
    CODE: ClassVar[int] = 0x55


@dataclass(slots=True)
class InSelect(_TargetOnly):
    CODE: ClassVar[int] = 0x54
    RESPONSE: ClassVar[type[Message]] = InSelectResponse


class TargetType(enum.IntEnum):
    """InAutoPoll target types."""

    GENERIC_PASSIVE_106 = 0x00
    GENERIC_PASSIVE_212 = 0x01
    GENERIC_PASSIVE_424 = 0x02
    ISO14443_4B_106 = 0x03
    JEWEL_106 = 0x04
    MIFARE = 0x10
    FELICA_212 = 0x11
    FELICA_424 = 0x12
    ISO14443_4A_106 = 0x20
    ISO14443_4B_TCL_106 = 0x23
    DEP_PASSIVE_106 = 0x40
    DEP_PASSIVE_212 = 0x41
    DEP_PASSIVE_424 = 0x42
    DEP_ACTIVE_106 = 0x80
    DEP_ACTIVE_212 = 0x81
    DEP_ACTIVE_424 = 0x82


TYPE_A_TARGETS = frozenset((TargetType.GENERIC_PASSIVE_106, TargetType.MIFARE, TargetType.ISO14443_4A_106))
"""Types whose target data is the InListPassiveTarget type A layout."""


@dataclass(slots=True)
class AutoPollTarget:
    """``Type Len TargetData``: type A data decoded as :class:`TargetA`, other types kept raw."""

    target_type: int
    target: TargetA | bytes

    def __post_init__(self) -> None:
        _byte(self.target_type, "InAutoPoll target type")
        if (self.target_type in TYPE_A_TARGETS) != isinstance(self.target, TargetA):
            raise ProtocolError(f"InAutoPoll target type {self.target_type:02X} does not match its data")
        if len(self.data) > 0xFF:
            raise ProtocolError("InAutoPoll target data longer than 255 bytes")

    @property
    def data(self) -> bytes:
        return self.target.to_bytes() if isinstance(self.target, TargetA) else self.target


@dataclass(slots=True)
class InAutoPollResponse(Message):
    CODE: ClassVar[int] = 0x61
    targets: tuple[AutoPollTarget, ...] = ()

    def __post_init__(self) -> None:
        if len(self.targets) > 2:
            raise ProtocolError(f"InAutoPoll: {len(self.targets)} targets, the PN532 reports at most 2")

    def _body(self) -> bytes:
        out = bytearray((len(self.targets),))
        for entry in self.targets:
            data = entry.data
            out += bytes((entry.target_type, len(data))) + data
        return bytes(out)

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        if not body or body[0] > 2:
            raise ProtocolError(f"InAutoPoll: target count {body[:1].hex().upper() or 'missing'} is not 0..2")
        targets, pos = [], 1
        for _ in range(body[0]):
            if len(body) < pos + 2 or len(body) < pos + 2 + body[pos + 1]:
                raise ProtocolError("InAutoPoll: target data cut short")
            kind, data = body[pos], body[pos + 2:pos + 2 + body[pos + 1]]
            targets.append(AutoPollTarget(kind, TargetA.parse(data) if kind in TYPE_A_TARGETS else data))
            pos += 2 + body[pos + 1]
        if pos != len(body):
            raise ProtocolError(f"InAutoPoll: {len(body) - pos} bytes after the last target")
        return cls(tuple(targets))


@dataclass(slots=True)
class InAutoPoll(Command):
    """``PollNr Period Type1 [Type2…]``: poll ``poll_count`` times (FF forever), every ``period`` × 150 ms."""

    CODE: ClassVar[int] = 0x60
    RESPONSE: ClassVar[type[Message]] = InAutoPollResponse
    poll_count: int
    period: int
    types: tuple[int, ...]

    def __post_init__(self) -> None:
        _byte(self.poll_count, "InAutoPoll PollNr", 0x01)
        _byte(self.period, "InAutoPoll Period", 0x01, 0x0F)
        if not 1 <= len(self.types) <= 15:
            raise ProtocolError(f"InAutoPoll: {len(self.types)} target types, 1..15 expected")
        for kind in self.types:
            _byte(kind, "InAutoPoll target type")

    def _body(self) -> bytes:
        return bytes((self.poll_count, self.period, *self.types))

    @classmethod
    def _from_body(cls, body: bytes) -> Self:
        if len(body) < 3:
            raise ProtocolError(f"InAutoPoll: {len(body)} bytes, PollNr, Period and a type expected")
        return cls(body[0], body[1], tuple(body[2:]))


COMMANDS: tuple[type[Command], ...] = (
    Diagnose, GetFirmwareVersion, GetGeneralStatus, ReadRegister, WriteRegister, SetParameters, SAMConfiguration,
    PowerDown, RFConfiguration, InDataExchange, InCommunicateThru, InDeselect, InListPassiveTarget, InRelease,
    InSelect, InAutoPoll,
)
_BY_CODE = {command.CODE: command for command in COMMANDS}


def parse_command(data: bytes) -> Command:
    """A host command (the data of a D4 frame), as an emulated PN532 receives it."""
    if not data:
        raise ProtocolError("empty PN532 command")
    command = _BY_CODE.get(data[0])
    if command is None:
        raise ProtocolError(f"PN532 command {name_of(data[0])} ({data[0]:02X}) is not supported")
    return command.parse(data)
