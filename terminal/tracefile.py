"""Trace files: every activation and exchange a validator saw, one JSON object per line (``docs/trace-format.md``).

A trace is written while the validator runs, by :class:`TraceWriter`, a :class:`~terminal.trace.Tracer`: the header
line first, then one line per event, each flushed to the operating system as soon as it is written, so a validator
that crashes loses at most the line it was writing. :func:`read_trace` checks every line and names the line and the
field at fault; a last line cut short by a crash is dropped (``Trace.truncated`` says so), any other bad line is an
error.

A trace carries no key. A PSAM holds its keys and answers MACs; the only exchanges that carry keys in the clear, an M1
card's LOAD KEY (the sector key, to the reader) and the PSAM's answer of those sector keys, reach the trace with the
keys zeroed (the channel passes every exchange through :class:`protocols.redact.Redactor` before any tracer sees it).
The header may carry the validator's settings and fare file (TOML text), so that ``ykt replay`` can run a validator
that sends the same commands.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocols.errors import YktError
from protocols.hexutil import to_hex

from .clock import Clock
from .config import FORMAT as CONFIG_FORMAT
from .config import ValidatorConfig
from .fare_config import OTHER_CARD_TYPES
from .jsondoc import (FieldError, RepeatedName, activation_from_json, activation_to_json, fields,
                      hex_value, loads, optional_hex)
from .link import Activation, ModeledTime
from .trace import Exchange, Tracer

TRACE_FORMAT = "yikatong-trace"
TRACE_VERSION = 1
ROLES = ("card", "sam")
"""What a link reaches: the contactless card reader, or the PSAM's slot."""

_HEADER_KEYS = ("format", "version", "created", "tool", "links", "validator")
_HEADER_REQUIRED = ("format", "version", "created", "tool", "links")
_ACTIVATION_KEYS = ("event", "link", "t_ns", "activation", "clock")
_EXCHANGE_KEYS = ("event", "link", "t_ns", "duration_ns", "command", "response", "model", "error")


class TraceError(YktError):
    """A trace file cannot be written, or is not a valid trace; the message names the file, the line and the field."""


@dataclass(frozen=True, slots=True)
class TraceLink:
    """A link named in the trace, and what it reaches (``"card"`` or ``"sam"``)."""

    name: str
    role: str


@dataclass(frozen=True, slots=True)
class ValidatorSettings:
    """What shaped the recording validator's commands: its settings file and its fare file, as TOML text."""

    config: str
    fares: str


@dataclass(frozen=True, slots=True)
class TraceHeader:
    """The first line: when and by what the trace was made, its links, and optionally the validator's settings.

    ``created`` (UTC) is the origin of every event's ``t_ns``.
    """

    created: dt.datetime
    tool: str
    links: tuple[TraceLink, ...]
    validator: ValidatorSettings | None = None


@dataclass(frozen=True, slots=True)
class TraceActivation:
    """A link activated a card or SAM, ``at_ns`` after the trace was created. ``clock`` is the validator's clock
    (local time, to the second) at that moment, when the recorder was given the clock."""

    link: str
    activation: Activation
    at_ns: int
    clock: dt.datetime | None = None


TraceEvent = TraceActivation | Exchange


@dataclass(slots=True)
class Trace:
    """A trace file's content. Exchange events are :class:`~terminal.trace.Exchange` objects whose ``start_ns`` counts
    from the header's ``created``. ``truncated``: the last line was cut short and dropped."""

    header: TraceHeader
    events: list[TraceEvent] = field(default_factory=list)
    truncated: bool = False

    def exchanges(self, link: str | None = None) -> list[Exchange]:
        """The exchanges, in order; those of one link when ``link`` is given."""
        return [e for e in self.events if isinstance(e, Exchange) and (link is None or e.link == link)]

    def links(self, role: str) -> list[TraceLink]:
        """The links of one role."""
        return [link for link in self.header.links if link.role == role]

    def role(self, link: str) -> str:
        """The role of a link the header names."""
        for item in self.header.links:
            if item.name == link:
                return item.role
        raise TraceError(f"the trace has no link named {link!r}")


# --- the validator's settings as a settings file -------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bytes):
        return f'"{to_hex(value)}"'
    if isinstance(value, frozenset):
        return "[" + ", ".join(_toml_value(item) for item in sorted(value)) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def config_toml(config: ValidatorConfig) -> str:
    """``config`` as a validator settings file (``terminal/config.py``): the file's keys are the fields' names, so
    ``parse_config(config_toml(c)) == c``. A trace carries its validator's settings in this form."""
    lines = [f"format = {CONFIG_FORMAT}"]
    for item in dataclasses.fields(config):
        if item.name not in ("place", "cutover"):
            lines.append(f"{item.name} = {_toml_value(getattr(config, item.name))}")
    lines.append("")
    lines.append("[place]")
    for item in dataclasses.fields(config.place):
        lines.append(f"{item.name} = {_toml_value(getattr(config.place, item.name))}")
    cutover = config.cutover
    for technology in sorted(set(cutover.card_types) | set(cutover.other)):
        lines.append("")
        lines.append(f"[cutover.{technology}]")
        rules = [(str(code), rule) for code, rule in sorted(cutover.card_types.get(technology, {}).items())]
        other = cutover.other.get(technology)
        for key, rule in rules + ([(OTHER_CARD_TYPES, other)] if other is not None else []):
            lines.append(f"{key} = {rule.until.isoformat() if rule.until else _toml_value(rule.describe())}")
    return "\n".join(lines) + "\n"


# --- writing -------------------------------------------------------------------------------------------------------

def _links(links: Iterable[tuple[str, str]]) -> tuple[TraceLink, ...]:
    declared = tuple(TraceLink(name, role) for name, role in links)
    if not declared:
        raise TraceError("a trace names at least one link")
    names = [link.name for link in declared]
    for link in declared:
        if not isinstance(link.name, str) or not link.name:
            raise TraceError(f"link name {link.name!r}: a non-empty text")
        if link.role not in ROLES:
            raise TraceError(f"link {link.name!r}: role {link.role!r} is not one of {', '.join(ROLES)}")
        if names.count(link.name) > 1:
            raise TraceError(f"link name {link.name!r} is given twice: each link needs its own name")
    return declared


class TraceWriter(Tracer):
    """Writes a trace file as the validator runs: pass it as ``Validator(..., tracer=TraceWriter(...))``.

    ``links`` are the (name, role) pairs of the links that will be traced, e.g. ``[(reader.name, "card"),
    (sam.name, "sam")]``; an event on another link is a :class:`TraceError` (a wiring mistake). ``clock``, when given,
    is read at each activation and written with it, so a replay can run on the recorded time; give the validator's
    own clock, never a :class:`~terminal.clock.ManualClock` that steps on every reading. ``timer`` must be the timer
    of the validator's channels (``time.perf_counter_ns``, their default). The file must not exist yet, unless
    ``overwrite``. Polls that found no card are not written.
    """

    def __init__(self, path: str | os.PathLike[str], *, links: Iterable[tuple[str, str]], tool: str,
                 validator: ValidatorSettings | None = None, clock: Clock | None = None,
                 timer: Callable[[], int] = time.perf_counter_ns, overwrite: bool = False) -> None:
        self.path = Path(path)
        declared = _links(links)
        self._roles = {link.name: link.role for link in declared}
        self.clock = clock
        try:
            self._file = open(self.path, "w" if overwrite else "x", encoding="utf-8", newline="\n")
        except FileExistsError:
            raise TraceError(f"{self.path}: exists; a trace is never overwritten (remove it or choose another name)") \
                from None
        except OSError as exc:
            raise TraceError(f"{self.path}: cannot create: {exc.strerror or exc}") from None
        self._origin = timer()
        self.header = TraceHeader(dt.datetime.now(dt.UTC), tool, declared, validator)
        head: dict[str, Any] = {
            "format": TRACE_FORMAT, "version": TRACE_VERSION, "created": self.header.created.isoformat(),
            "tool": tool, "links": [{"name": link.name, "role": link.role} for link in declared]}
        if validator is not None:
            head["validator"] = {"config": validator.config, "fares": validator.fares}
        self._write(head)

    def _write(self, doc: dict[str, Any]) -> None:
        if self._file.closed:
            raise TraceError(f"{self.path}: the trace is closed")
        try:
            self._file.write(json.dumps(doc, ensure_ascii=False) + "\n")
            self._file.flush()
        except OSError as exc:
            raise TraceError(f"{self.path}: cannot write: {exc.strerror or exc}") from None

    def _check_link(self, link: str) -> None:
        if link not in self._roles:
            raise TraceError(f"{self.path}: link {link!r} was not declared when the trace was created "
                             f"(declared: {', '.join(self._roles)})")

    def activation(self, link: str, activation: Activation | None, at_ns: int) -> None:
        self._check_link(link)
        if activation is None:
            return
        doc: dict[str, Any] = {"event": "activation", "link": link, "t_ns": at_ns - self._origin,
                               "activation": activation_to_json(activation)}
        if self.clock is not None:
            doc["clock"] = self.clock.now().isoformat()
        self._write(doc)

    def exchange(self, exchange: Exchange) -> None:
        self._check_link(exchange.link)
        doc: dict[str, Any] = {"event": "exchange", "link": exchange.link, "t_ns": exchange.start_ns - self._origin,
                               "duration_ns": exchange.duration_ns, "command": to_hex(exchange.command),
                               "response": None if exchange.response is None else to_hex(exchange.response)}
        if exchange.model is not None:
            doc["model"] = {"line_us": exchange.model.line_us, "device_us": exchange.model.device_us}
        if exchange.error is not None:
            doc["error"] = exchange.error
        self._write(doc)

    def close(self) -> None:
        """Flush, sync to disk and close; closing twice is harmless."""
        if self._file.closed:
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise TraceError(f"{self.path}: cannot write: {exc.strerror or exc}") from None
        finally:
            self._file.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- reading -------------------------------------------------------------------------------------------------------

def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise FieldError(where, f"expected text, got {json.dumps(value)}")
    return value


def _count(value: Any, where: str) -> int:
    if type(value) is not int or value < 0:
        raise FieldError(where, f"expected a whole number ≥ 0, got {json.dumps(value)}")
    return value


def _micros(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise FieldError(where, f"expected a number of µs ≥ 0, got {json.dumps(value)}")
    return float(value)


def _time(value: Any, where: str, *, aware: bool) -> dt.datetime:
    text = _text(value, where)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise FieldError(where, f"{text!r} is not an ISO 8601 date-time") from None
    if aware and when.tzinfo is None:
        raise FieldError(where, f"{text!r} has no time zone (UTC offset)")
    if not aware and when.tzinfo is not None:
        raise FieldError(where, f"{text!r}: the validator's clock is local time, without a UTC offset")
    return when


def _header(doc: Any) -> TraceHeader:
    head = fields(doc, "", _HEADER_KEYS, _HEADER_REQUIRED)
    if head["format"] != TRACE_FORMAT:
        raise FieldError("format", f"{json.dumps(head['format'])} is not {TRACE_FORMAT!r}")
    version = head["version"]
    if type(version) is not int or version != TRACE_VERSION:
        raise FieldError("version",
                         f"{json.dumps(version)} is not supported (this software reads version {TRACE_VERSION})")
    links = head["links"]
    if not isinstance(links, list):
        raise FieldError("links", "expected a list of links")
    pairs = []
    for index, item in enumerate(links):
        link = fields(item, f"links[{index}]", ("name", "role"), ("name", "role"))
        pairs.append((_text(link["name"], f"links[{index}].name"), _text(link["role"], f"links[{index}].role")))
    try:
        declared = _links(pairs)
    except TraceError as exc:
        raise FieldError("links", str(exc)) from None
    settings = None
    if head.get("validator") is not None:
        doc = fields(head["validator"], "validator", ("config", "fares"), ("config", "fares"))
        settings = ValidatorSettings(_text(doc["config"], "validator.config"), _text(doc["fares"], "validator.fares"))
    return TraceHeader(_time(head["created"], "created", aware=True), _text(head["tool"], "tool"), declared, settings)


def _event(doc: Any, links: dict[str, str]) -> TraceEvent:
    if not isinstance(doc, dict):
        raise FieldError("", "expected an object")
    kind = doc.get("event")
    if kind == "activation":
        doc = fields(doc, "", _ACTIVATION_KEYS, ("event", "link", "t_ns", "activation"))
    elif kind == "exchange":
        doc = fields(doc, "", _EXCHANGE_KEYS, ("event", "link", "t_ns", "duration_ns", "command", "response"))
    else:
        raise FieldError("event", f"{json.dumps(kind)} is neither \"activation\" nor \"exchange\"")
    link = _text(doc["link"], "link")
    if link not in links:
        raise FieldError("link", f"{link!r} is not one of the header's links ({', '.join(links)})")
    at = _count(doc["t_ns"], "t_ns")
    if kind == "activation":
        clock = None if doc.get("clock") is None else _time(doc["clock"], "clock", aware=False)
        return TraceActivation(link, activation_from_json(doc["activation"], "activation"), at, clock)
    response = optional_hex(doc["response"], "response")
    if response is not None and len(response) < 2:
        raise FieldError("response", "a response has at least its status word (2 bytes)")
    error = None if doc.get("error") is None else _text(doc["error"], "error")
    if (response is None) != (error is not None):
        raise FieldError("error",
                         "a failed exchange (response null) says why in \"error\"; an answered one has no error")
    model = None
    if doc.get("model") is not None:
        times = fields(doc["model"], "model", ("line_us", "device_us"), ("line_us", "device_us"))
        model = ModeledTime(_micros(times["line_us"], "model.line_us"), _micros(times["device_us"], "model.device_us"))
    return Exchange(link, hex_value(doc["command"], "command", least=4), response, at,
                    _count(doc["duration_ns"], "duration_ns"), model, error)


def parse_trace(text: str, source: str = "trace") -> Trace:
    """Check a trace's text and return its content; :class:`TraceError` names ``source``, the line and the field.

    A last line without its newline that does not parse is what a crash leaves: it is dropped and the trace is marked
    ``truncated``.
    """
    lines = text.split("\n")
    complete = lines[-1] == ""
    if complete:
        lines.pop()
    if not lines:
        raise TraceError(f"{source}: empty: a trace starts with its header line")
    trace: Trace | None = None
    links: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        try:
            try:
                doc = loads(line)
            except json.JSONDecodeError as exc:
                if number == len(lines) and not complete and number > 1:
                    assert trace is not None
                    trace.truncated = True
                    break
                what = "cut short (no newline at the end)" if number == len(lines) and not complete else "not JSON"
                raise FieldError("", f"{what}: {exc.msg} at column {exc.colno}") from None
            except RepeatedName as exc:
                raise FieldError(str(exc.args[0]), "appears twice in one object") from None
            if trace is None:
                header = _header(doc)
                links = {link.name: link.role for link in header.links}
                trace = Trace(header)
            else:
                trace.events.append(_event(doc, links))
        except FieldError as exc:
            raise TraceError(f"{source}: line {number}: {exc}") from None
    assert trace is not None
    return trace


def read_trace(path: str | os.PathLike[str]) -> Trace:
    """Read and check a trace file."""
    source = os.fspath(path)
    try:
        raw = Path(source).read_bytes()
    except OSError as exc:
        raise TraceError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise TraceError(f"{source}: line {line}: not UTF-8 text") from None
    return parse_trace(text, source)

