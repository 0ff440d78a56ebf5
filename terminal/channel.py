"""APDU exchange over any link: the T=0 procedure, tracing, timeouts and status checking, done once for every driver.

The tracer sees every exchange with its keys zeroed (:class:`protocols.redact.Redactor`): a LOAD KEY's sector key,
the PSAM's answer of sector keys. Traces, logs and tap outcomes are all made from what the tracer sees.

- ``61xx``: the answer waits in the card; fetch it with GET RESPONSE (Le = xx), repeatedly if it says 61xx again.
- ``6Cxx``: wrong Le; send the same command again with Le = xx (once).
- On T=0 a case 4 command goes out as case 3 (no Le): the card answers ``61xx`` and the data comes by GET RESPONSE.
  Extended APDUs cannot be carried on T=0 (no ENVELOPE support here) and are refused before sending.
"""

from __future__ import annotations

import time
from typing import Callable

from protocols.apdu import CommandAPDU, ResponseAPDU
from protocols.card_commands import GetResponse
from protocols.errors import ProtocolError
from protocols.redact import KEYED_PREFIXES, Redactor
from protocols.status import SW1_BYTES_WAITING, SW1_WRONG_LE, CardStatus

from .errors import LinkError, StatusError
from .link import Activation, Link
from .trace import Exchange, Tracer

_MAX_GET_RESPONSE = 64  # 64 x 256 bytes: far more than any purse answer; a card asking for more is broken


class Channel:
    """A card or SAM reached through a :class:`Link`."""

    def __init__(self, link: Link, *, peer: str = "card", timeout: float = 1.0, t0: bool = False,
                 tracer: Tracer | None = None, timer: Callable[[], int] = time.perf_counter_ns) -> None:
        self.link = link
        self.peer = peer
        self.timeout = timeout
        self.t0 = t0
        self.tracer = tracer
        self.timer = timer
        self._redactor = Redactor()
        self._ahead = False  # the exchanges being made belong to a command sent ahead (send)

    def activate(self, timeout: float | None = None) -> Activation | None:
        """Activate the slot; the T=0 procedure is switched on when the activation says T=0."""
        activation = self.link.activate(self.timeout if timeout is None else timeout)
        if activation is not None:
            self.t0 = activation.protocol == "T=0"
        if self.tracer is not None:
            self.tracer.activation(self.link.name, activation, self.timer())
        return activation

    def _raw(self, apdu: bytes, timeout: float) -> bytes:
        link, tracer, timer = self.link, self.tracer, self.timer
        start = 0 if tracer is None else timer()  # the clock is read only for a tracer
        try:
            response = link.transceive(apdu, timeout)
        except LinkError as exc:
            if tracer is not None:
                shown, _ = self._redactor.exchange(apdu, None)
                tracer.exchange(Exchange(link.name, shown, None, start, timer() - start, link.last_model,
                                         f"{type(exc).__name__}: {exc}", self._ahead))
            raise
        if tracer is not None:
            kept: tuple[bytes, bytes | None] = (apdu, response)
            if self._redactor.waiting or apdu[:2] in KEYED_PREFIXES:  # only these can carry keys
                kept = self._redactor.exchange(apdu, response)
            tracer.exchange(Exchange(link.name, *kept, start, timer() - start, link.last_model, None,
                                     self._ahead))
        if len(response) < 2:
            raise ProtocolError(f"{self.peer} answered {len(response)} bytes, no status word")
        return response

    def _t0_command(self, apdu: bytes) -> bytes:
        """The command as it goes over T=0: a short case 4 loses its Le; extended APDUs are refused.

        The short cases are told apart by length alone (ISO 7816-3); anything else is parsed, which refuses
        malformed and extended commands with their reason.
        """
        n = len(apdu)
        if n > 5 and apdu[4]:
            if n == 6 + apdu[4]:
                return bytes(apdu[:-1])  # case 4: the answer comes by GET RESPONSE
            if n == 5 + apdu[4]:
                return apdu  # case 3
        elif n == 4 or n == 5:
            return apdu  # cases 1 and 2
        command = CommandAPDU.parse(apdu)
        if command.extended:
            raise ProtocolError(f"{self.peer}: extended APDUs cannot be sent over T=0")
        if command.case == 4:
            command.le = None
            return command.to_bytes()
        return apdu

    def transmit(self, apdu: bytes, timeout: float | None = None) -> ResponseAPDU:
        """Send a command and return its complete response, whatever the status word."""
        timeout = self.timeout if timeout is None else timeout
        if self.t0:
            apdu = self._t0_command(apdu)
        response = self._raw(apdu, timeout)
        if response[-2] == SW1_WRONG_LE:
            command = CommandAPDU.parse(apdu)
            command.le = response[-1] or 256
            response = self._raw(command.to_bytes(), timeout)
        if response[-2] != SW1_BYTES_WAITING:
            return ResponseAPDU(response[:-2], (response[-2] << 8) | response[-1])
        data = bytearray()
        for _ in range(_MAX_GET_RESPONSE):
            data += response[:-2]
            response = self._raw(GetResponse(response[-1] or 256).to_bytes(), timeout)
            if response[-2] != SW1_BYTES_WAITING:
                data += response[:-2]
                return ResponseAPDU(bytes(data), (response[-2] << 8) | response[-1])
        raise ProtocolError(f"{self.peer} kept answering 61xx after {_MAX_GET_RESPONSE} GET RESPONSE commands")

    def send(self, apdu: bytes, timeout: float | None = None) -> Pending:
        """Send a command whose answer the caller does not need before its next exchange on another link (the PSAM's
        MAC1 while the card stages its records); :meth:`Pending.result` takes the answer, or raises what
        :meth:`transmit` would have. Every link here carries one exchange at a time and answers before it returns,
        so the exchange is made now; its trace is marked ``ahead``, and the tracer hears when the caller waits, so a
        modeled timeline can run it beside the exchanges made in between."""
        self._ahead = True
        try:
            return Pending(self, self.transmit(apdu, timeout), None)
        except (LinkError, ProtocolError) as exc:
            return Pending(self, None, exc)
        finally:
            self._ahead = False

    def call(self, apdu: bytes, command: str, *, accept: tuple[int, ...] = (CardStatus.OK,),
             timeout: float | None = None) -> ResponseAPDU:
        """Send a command; any status word outside ``accept`` raises :class:`StatusError` naming ``command``."""
        response = self.transmit(apdu, timeout)
        if response.sw not in accept:
            raise StatusError(command, response.sw, peer=self.peer)
        return response


class Pending:
    """A command sent ahead (:meth:`Channel.send`): its answer, taken when the caller needs it."""

    __slots__ = ("_channel", "_response", "_error")

    def __init__(self, channel: Channel, response: ResponseAPDU | None, error: Exception | None) -> None:
        self._channel, self._response, self._error = channel, response, error

    def result(self) -> ResponseAPDU:
        """The complete response; raises the link's or the codec's error as :meth:`Channel.transmit` would."""
        channel = self._channel
        if channel.tracer is not None:
            channel.tracer.waited(channel.link.name, channel.timer())
        if self._error is not None:
            raise self._error
        assert self._response is not None
        return self._response
