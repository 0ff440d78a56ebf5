"""A scripted card for QA and replay: a :class:`~sim.device.Device` that expects given commands and gives set answers.

Each :class:`Step` names the command it expects (an :class:`ApduPattern`: exact bytes, ``??`` wildcards, a prefix)
and the response to give (data and status word), or says the card leaves the field there (``tear``: the reader sees
``CardRemoved``). A command the script does not expect is a :class:`Divergence` (exchange index, script step, what
was expected, what came). By default the card records it, answers ``6F00`` and keeps waiting for the expected
command, so the terminal under test runs on as it would with a faulty card and every divergence is kept; the test
then calls :meth:`ScriptedCard.check`, which raises :class:`ScriptDivergence` for the first one (or for steps that
never came). With ``strict=True`` the card raises :class:`ScriptDivergence` at once instead, out of the reader's
``transceive``; use it when the code under test might swallow a 6F00.

Script files (JSON, UTF-8)::

    {
      "format": "yikatong-script",
      "version": 1,
      "activation": {"protocol": "T=CL", "uid": "04A1B2C3D4E5F6", "atqa": "0044", "sak": 32, "ats": "0578777002"},
      "steps": [
        {"command": "00A4040008A000000632010105*", "response": "6F31...9000"},
        {"command": "8050 0302 0B ?? 00000064 ???????????? 0F", "response": "000003E80005000000000112345678 9000"},
        {"command": "8054*", "tear": true}
      ]
    }

``activation`` is optional (the default T=CL activation below) and its fields are those of
:class:`terminal.link.Activation`: ``protocol`` (``T=CL``, ``T=0``, ``T=1``, ``MIFARE``), ``uid``, ``atqa``, ``ats`` and
``atr`` as hex (``ats``/``atr`` may be ``null``), ``sak`` as a number or ``null``. In a pattern, spaces, colons,
dashes and underscores are ignored, ``??`` stands for any one byte, and a final ``*`` lets any bytes follow
(``"*"`` alone matches every command). A step has ``command`` and either ``response`` (hex, status word included) or
``"tear": true``. Unknown keys are refused, so a typo cannot silently change a script.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocols.errors import ProtocolError, YktError
from protocols.hexutil import parse_hex, to_hex
from terminal.errors import CardRemoved, ConfigError
from terminal.jsondoc import (FieldError, activation_from_json, activation_to_json, fields, hex_value,
                              load_document)
from terminal.link import Activation

SCRIPT_FORMAT = "yikatong-script"
SCRIPT_VERSION = 1

DEFAULT_ACTIVATION = Activation("T=CL", uid=bytes.fromhex("04A1B2C3D4E5F6"), atqa=bytes.fromhex("0044"), sak=0x20,
                                ats=bytes.fromhex("0578777002"))
"""A 7-byte-UID ISO 14443-4 card; ATS: FSC 256, 106 to 848 kbit/s, FWI 7 (38.7 ms), CID supported."""

_SEPARATORS = re.compile(r"[\s:_-]+")


# --- command patterns ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApduPattern:
    """Which commands a step (or a tear plan) accepts.

    ``value`` holds the bytes to match, with 00 where ``mask`` has 00 (any byte); an empty ``mask`` means every byte
    counts. With ``prefix`` the command may go on after ``len(value)`` bytes.
    """

    value: bytes
    mask: bytes = b""
    prefix: bool = False
    _value_int: int = field(init=False, repr=False, compare=False)
    _mask_int: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mask:
            if len(self.mask) != len(self.value) or any(b not in (0x00, 0xFF) for b in self.mask):
                raise ProtocolError("pattern mask: one FF or 00 byte per value byte")
            if any(v and not m for v, m in zip(self.value, self.mask, strict=True)):
                raise ProtocolError("pattern value must be 00 where the mask is 00")
            if all(self.mask):
                object.__setattr__(self, "mask", b"")
        object.__setattr__(self, "_value_int", int.from_bytes(self.value, "big"))
        object.__setattr__(self, "_mask_int", int.from_bytes(self.mask, "big"))

    @classmethod
    def exact(cls, command: bytes) -> ApduPattern:
        return cls(bytes(command))

    @classmethod
    def parse(cls, text: str, *, prefix: bool = False) -> ApduPattern:
        """Hex with ``??`` wildcards and an optional final ``*`` (prefix), as in script files."""
        digits = _SEPARATORS.sub("", text)
        if digits.endswith("*"):
            digits, prefix = digits[:-1], True
        if "*" in digits:
            raise ProtocolError(f"pattern {text!r}: '*' may only end a pattern")
        if len(digits) % 2:
            raise ProtocolError(f"pattern {text!r}: odd number of hex digits")
        pairs = [digits[i:i + 2] for i in range(0, len(digits), 2)]
        for index, pair in enumerate(pairs):
            if "?" in pair and pair != "??":
                raise ProtocolError(f"pattern {text!r}: byte {index} is {pair!r}; a wildcard is a whole byte, ??")
        value = parse_hex("".join("00" if pair == "??" else pair for pair in pairs), what=f"pattern {text!r}")
        mask = bytes(0 if pair == "??" else 0xFF for pair in pairs) if "??" in pairs else b""
        return cls(value, mask, prefix)

    def __str__(self) -> str:
        mask = self.mask or b"\xff" * len(self.value)
        text = "".join(f"{v:02X}" if m else "??" for v, m in zip(self.value, mask, strict=True))
        return text + "*" if self.prefix else text

    def matches(self, command: bytes) -> bool:
        n = len(self.value)
        if len(command) != n and not (self.prefix and len(command) > n):
            return False
        if not self.mask:
            return command.startswith(self.value) if self.prefix else command == self.value
        return int.from_bytes(command[:n], "big") & self._mask_int == self._value_int


def as_pattern(command: ApduPattern | bytes | str) -> ApduPattern:
    """A command given as bytes or hex is a prefix ("8054" is every DEBIT); a pattern is taken as it is."""
    if isinstance(command, ApduPattern):
        return command
    if isinstance(command, str):
        return ApduPattern.parse(command, prefix=True)
    return ApduPattern(bytes(command), prefix=True)


# --- script --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One expected command and what the card does with it: answer ``response``, or leave the field (``tear``)."""

    command: ApduPattern
    response: bytes = b""
    tear: bool = False

    def __post_init__(self) -> None:
        if self.tear and self.response:
            raise ProtocolError("a tear step has no response: the card leaves the field")
        if not self.tear and len(self.response) < 2:
            raise ProtocolError(f"response {to_hex(self.response)!r} has no status word")


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where the terminal left the script: at exchange ``index`` (0-based, counted over the card's life) the script
    was at ``step``, expecting ``expected`` (``None``: the script was used up), and ``got`` came (``None``: nothing
    came, the script was not finished)."""

    index: int
    step: int
    expected: ApduPattern | None
    got: bytes | None

    def __str__(self) -> str:
        expected = "the end of the script" if self.expected is None else str(self.expected)
        got = "nothing" if self.got is None else to_hex(self.got)
        return f"exchange {self.index} (script step {self.step}): expected {expected}, got {got}"


class ScriptDivergence(YktError):
    """The terminal did not follow the script."""

    def __init__(self, divergence: Divergence) -> None:
        super().__init__(str(divergence))
        self.divergence = divergence


class ScriptedCard:
    """A card that plays a script; see the module notes for what happens off script."""

    def __init__(self, steps: Iterable[Step], *, activation: Activation = DEFAULT_ACTIVATION, strict: bool = False,
                 divergence_sw: int = 0x6F00) -> None:
        self.steps = tuple(steps)
        self.activation = activation
        self.strict = strict
        self.position = 0
        """Index of the next expected step."""
        self.exchanges = 0
        self.activations = 0
        self.divergences: list[Divergence] = []
        self._divergence_response = divergence_sw.to_bytes(2, "big")

    @classmethod
    def from_exchanges(cls, exchanges: Iterable[tuple[bytes, bytes | None]], **options: Any) -> ScriptedCard:
        """A card that replays recorded exchanges byte for byte: each command exact, its response given back; a
        response of ``None`` (the exchange failed, the card was gone) becomes a tear step. ``options`` are those of
        the constructor."""
        steps = [Step(ApduPattern.exact(command), b"" if response is None else response, response is None)
                 for command, response in exchanges]
        return cls(steps, **options)

    def power_on(self) -> Activation:
        self.activations += 1
        return self.activation

    def execute(self, apdu: bytes) -> bytes:
        """Answer the expected command; a tear step raises ``CardRemoved`` (the simulated reader then empties its
        field). Off script: record the divergence and answer the divergence status word, or raise when strict."""
        index = self.exchanges
        self.exchanges = index + 1
        position = self.position
        if position < len(self.steps):
            step = self.steps[position]
            if step.command.matches(apdu):
                self.position = position + 1
                if step.tear:
                    raise CardRemoved(f"scripted card left the field at exchange {index} (step {position})")
                return step.response
            expected: ApduPattern | None = step.command
        else:
            expected = None
        divergence = Divergence(index, position, expected, apdu)
        self.divergences.append(divergence)
        if self.strict:
            raise ScriptDivergence(divergence)
        return self._divergence_response

    @property
    def finished(self) -> bool:
        return self.position == len(self.steps)

    def first_divergence(self) -> Divergence | None:
        """The first command off script, or else the first step never reached; ``None`` when the run followed the
        script to its end."""
        if self.divergences:
            return self.divergences[0]
        if not self.finished:
            return Divergence(self.exchanges, self.position, self.steps[self.position].command, None)
        return None

    def check(self) -> None:
        """Raise :class:`ScriptDivergence` unless the terminal followed the whole script."""
        divergence = self.first_divergence()
        if divergence is not None:
            raise ScriptDivergence(divergence)

    # --- files ---------------------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The script (not the run) as a JSON document."""
        steps: list[dict[str, Any]] = []
        for step in self.steps:
            item: dict[str, Any] = {"command": str(step.command)}
            if step.tear:
                item["tear"] = True
            else:
                item["response"] = to_hex(step.response)
            steps.append(item)
        return {"format": SCRIPT_FORMAT, "version": SCRIPT_VERSION, "activation": activation_to_json(self.activation),
                "steps": steps}

    @classmethod
    def from_json(cls, doc: Any, *, strict: bool = False, divergence_sw: int = 0x6F00) -> ScriptedCard:
        """A card from a parsed script document; ``ConfigError`` names the field at fault."""
        try:
            doc = fields(doc, "script", ("format", "version", "activation", "steps"), ("format", "version", "steps"))
            if doc["format"] != SCRIPT_FORMAT:
                raise FieldError("script.format", f"{json.dumps(doc['format'])} is not {SCRIPT_FORMAT!r}")
            if type(doc["version"]) is not int or doc["version"] != SCRIPT_VERSION:
                raise FieldError("script.version", f"{json.dumps(doc['version'])} is not supported "
                                                   f"(only {SCRIPT_VERSION})")
            activation = (activation_from_json(doc["activation"], "script.activation") if "activation" in doc
                          else DEFAULT_ACTIVATION)
            if not isinstance(doc["steps"], list):
                raise FieldError("script.steps", "expected a list of steps")
            steps = [_step_from_json(item, f"script.steps[{index}]") for index, item in enumerate(doc["steps"])]
        except FieldError as exc:
            raise ConfigError(str(exc)) from None
        return cls(steps, activation=activation, strict=strict, divergence_sw=divergence_sw)

    @classmethod
    def load(cls, path: str | Path, *, strict: bool = False, divergence_sw: int = 0x6F00) -> ScriptedCard:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        doc = load_document(text, str(path), ConfigError)
        try:
            return cls.from_json(doc, strict=strict, divergence_sw=divergence_sw)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")


def _step_from_json(item: Any, where: str) -> Step:
    item = fields(item, where, ("command", "response", "tear"), ("command",))
    if not isinstance(item["command"], str):
        raise FieldError(f"{where}.command", f"expected a pattern in hex text, got {json.dumps(item['command'])}")
    try:
        command = ApduPattern.parse(item["command"])
    except ProtocolError as exc:
        raise FieldError(f"{where}.command", str(exc)) from None
    tear = item.get("tear", False)
    if not isinstance(tear, bool):
        raise FieldError(f"{where}.tear", f"true or false, got {json.dumps(tear)}")
    if tear == ("response" in item):
        raise FieldError(where, "give either a response or \"tear\": true")
    response = b"" if tear else hex_value(item["response"], f"{where}.response")
    try:
        return Step(command, response, tear)
    except ProtocolError as exc:
        raise FieldError(f"{where}.response", str(exc)) from None


