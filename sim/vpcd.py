"""Simulated cards and PSAMs behind real pcscd, as virtual cards of vsmartcard's vpcd reader driver.

vpcd runs inside pcscd and listens on TCP (Debian's ``/etc/reader.conf.d/vpcd``: port 35963 for reader
``Virtual PCD 00 00``, 35964 for ``Virtual PCD 00 01``); the virtual card connects to it as a client, and closing the
connection is pulling the card out. Messages go both ways as a 2-byte big-endian length and a payload. From vpcd a
1-byte payload is a control message (``00`` power off, ``01`` power on, ``02`` reset: no reply; ``04`` get ATR: the
reply is the ATR, and pcscd asks for it about every 400 ms to see whether the card is still there); a longer one is a
command APDU, answered by the response APDU.

A contactless device (activation ``T=CL``) is shown with the ATR a PC/SC contactless reader makes up from its ATS
(:func:`terminal.drivers.pcsc.contactless_atr`), and ``FF CA 00 00 00`` is answered with its UID, as such a reader
does; a contact device (a PSAM) shows its own ATR. A MIFARE Classic (activation ``MIFARE``) is shown with the PC/SC
storage-card ATR and served as an ACR122U-class reader's firmware serves one: the pseudo-APDUs pcscd's clients send
(``FF CA``, ``FF 82``, ``FF 86``, ``FF B0``, ``FF D6``, ``FF D7``, ``FF B1``) become the card's MIFARE commands
(:class:`sim.card.m1_session.MifareSession`). Power-on and reset call ``device.power_on()`` (volatile state
lost, persistent state kept); the ATR polls do not.

The 48 ms trap: Debian 12's vpcd writes the length and the payload of each message in two ``send`` calls. With Nagle
on vpcd's side and delayed ACKs on ours, the second write waits for our ACK of the first, so every APDU would cost
about 48 ms. ``TCP_NODELAY`` on our socket does not help; ``TCP_QUICKACK`` set before **every** ``recv`` (the kernel
clears it again by itself) brings an exchange to about a tenth of a millisecond. ``quickack=False`` shows the trap.

One thread serves every slot (a selector over their sockets); :meth:`VpcdServer.stop` may be called from another
thread or a signal handler. When pcscd goes away (or the device tears an exchange) the slot reconnects every
``retry_s`` seconds until vpcd takes it again: the card is back in the reader.
"""

from __future__ import annotations

import collections
import selectors
import socket
import struct
import time
from collections.abc import Callable, Iterable

from protocols.errors import ProtocolError, YktError
from protocols.hexutil import to_hex
from protocols.iso14443 import Ats
from protocols.pcsc_mifare import is_storage_atr, storage_atr
from protocols.redact import Redactor
from terminal.drivers.pcsc import GET_UID, contactless_atr
from terminal.errors import CardRemoved

from .card.m1_session import MifareSession
from .device import Device

DEFAULT_PORT = 0x8C7B
"""35963: the port Debian's vpcd configuration gives reader ``Virtual PCD 00 00``; the next port is ``00 01``."""
POWER_OFF, POWER_ON, RESET, GET_ATR = 0x00, 0x01, 0x02, 0x04
HISTORY = 256
"""Exchanges each slot remembers (:attr:`VpcdSlot.history`), for tests and the status line."""

_LENGTH = struct.Struct(">H")
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only
_UID_OK = b"\x90\x00"
_NO_UID = b"\x6a\x81"  # function not supported: GET DATA for anything but the UID
_TORN = "the device left the field in the middle of an exchange"


class VpcdError(YktError):
    """A device cannot be served through vpcd (no ATR to show), or a slot was misused."""


def device_atr(device: Device) -> tuple[bytes, bytes | None]:
    """Power the device on; return the ATR pcscd will see and, for an ISO 14443-4 device, its UID (a MIFARE Classic's
    reader firmware answers GET DATA itself)."""
    activation = device.power_on()
    if activation.protocol == "MIFARE":
        try:
            return storage_atr(activation.sak or 0), None
        except ProtocolError as exc:
            raise VpcdError(f"the MIFARE device's SAK: {exc}") from None
    if activation.protocol == "T=CL":
        if activation.ats is None:
            raise VpcdError("a contactless device without an ATS cannot be shown through PC/SC")
        try:
            historical = Ats.parse(activation.ats).historical
        except ProtocolError as exc:
            raise VpcdError(f"the device's ATS is malformed: {exc}") from None
        return contactless_atr(historical), activation.uid
    if activation.atr is None:
        raise VpcdError(f"a {activation.protocol} device without an ATR cannot be shown through PC/SC")
    return activation.atr, None


class VpcdSlot:
    """One device in one vpcd reader slot: the TCP connection to vpcd's port for that slot, and the answers.

    ``history`` keeps the last :data:`HISTORY` exchanges (command, response); ``apdus`` counts every exchange and
    ``power_ons`` the device's power-ons since the slot was made (a power-on or reset from pcscd, or an APDU reaching
    a card pcscd had powered off); ``on_exchange(name, command, response)`` sees each exchange.
    """

    def __init__(self, device: Device, port: int, *, host: str = "127.0.0.1", name: str = "card",
                 quickack: bool = True, on_exchange: Callable[[str, bytes, bytes], None] | None = None) -> None:
        if not 0 < port < 65536:
            raise VpcdError(f"{name}: port {port} is not a TCP port")
        self.device = device
        self.port = port
        self.host = host
        self.name = name
        self._quickack = _QUICKACK if quickack else None  # the socket option's number, where the kernel has it
        self.on_exchange = on_exchange
        self._redactor = Redactor()
        self.atr, self.uid = device_atr(device)
        self._handler: Device = MifareSession(device) if is_storage_atr(self.atr) else device
        self.history: collections.deque[tuple[bytes, bytes]] = collections.deque(maxlen=HISTORY)
        self.apdus = 0
        self.power_ons = 0
        self.powered = True
        self.sock: socket.socket | None = None
        self._buffer = bytearray()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def connect(self) -> bool:
        """Connect to vpcd (the card enters the reader); ``False`` while nothing listens there."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=2.0)
        except OSError:
            return False
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self._buffer.clear()
        return True

    def disconnect(self) -> None:
        """Close the connection (the card leaves the reader)."""
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def receive(self) -> str | None:
        """Read what vpcd sent and answer every complete message; why the connection must end, or ``None``."""
        sock = self.sock
        assert sock is not None
        if self._quickack is not None:
            sock.setsockopt(socket.IPPROTO_TCP, self._quickack, 1)
        try:
            data = sock.recv(65538)
        except OSError as exc:
            return f"the connection failed ({exc.strerror or exc})"
        if not data:
            return "vpcd closed the connection (pcscd stopped?)"
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 2:
            (size,) = _LENGTH.unpack_from(buffer)
            if len(buffer) < 2 + size:
                break
            message = bytes(buffer[2:2 + size])
            del buffer[:2 + size]
            try:
                reply = self.answer(message)
            except CardRemoved:
                return _TORN
            if reply is not None:
                try:
                    sock.sendall(_LENGTH.pack(len(reply)) + reply)
                except OSError as exc:
                    return f"the connection failed ({exc.strerror or exc})"
        return None

    def answer(self, message: bytes) -> bytes | None:
        """The reply to one message from vpcd (``None`` for control messages that take none).

        A device that raises :class:`~terminal.errors.CardRemoved` (a scripted tear) leaves the reader: the connection
        is closed with the command unanswered, and the device comes back after the server's ``return_s``.
        """
        if len(message) == 1:
            control = message[0]
            if control == GET_ATR:
                return self.atr
            if control in (POWER_ON, RESET):
                self._handler.power_on()
                self.power_ons += 1
                self.powered = True
            elif control == POWER_OFF:
                self.powered = False
            return None
        if not self.powered:  # pcscd powers a card on before any APDU; if it did not, do it as a reader would
            self._handler.power_on()
            self.power_ons += 1
            self.powered = True
        if self.uid is not None and message[:2] == GET_UID[:2]:
            response = self.uid + _UID_OK if message == GET_UID else _NO_UID
        else:
            response = self._handler.execute(message)
        self.apdus += 1
        self.history.append((message, response))
        if self.on_exchange is not None:
            shown, answer = self._redactor.exchange(message, response)  # a status line shows no key
            assert answer is not None
            self.on_exchange(self.name, shown, answer)
        return response


class VpcdServer:
    """Serves :class:`VpcdSlot` objects until :meth:`stop`; ``status`` receives one line per event (connections).

    ``retry_s``: how often a slot tries to reach vpcd while nothing listens. ``return_s``: how long a device that tore
    an exchange stays out of the reader, long enough for pcscd (which looks every 0.4 s) to see it leave: back sooner,
    pcscd would not notice that the card was ever gone.
    """

    def __init__(self, slots: Iterable[VpcdSlot], *, retry_s: float = 0.25, return_s: float = 1.0,
                 status: Callable[[str], None] | None = None) -> None:
        self.slots = list(slots)
        if not self.slots:
            raise VpcdError("nothing to serve")
        self.retry_s = retry_s
        self.return_s = return_s
        self.status = status or (lambda line: None)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stopping = False

    def stop(self) -> None:
        """End :meth:`serve` (safe from another thread and from a signal handler)."""
        self._stopping = True
        try:
            self._wake_w.send(b"\0")
        except OSError:  # the wake-up buffer is full or closed: serve() is waking up anyway
            pass

    def serve(self) -> None:
        """Connect every slot, answer vpcd, reconnect the slots vpcd drops; return after :meth:`stop`, every slot's
        connection closed (the cards leave the readers)."""
        waiting: dict[int, float] = {id(slot): 0.0 for slot in self.slots}  # slot → when to try connecting again
        announced: set[int] = set()
        try:
            while not self._stopping:
                now = time.monotonic()
                for slot in self.slots:
                    key = id(slot)
                    if key in waiting and waiting[key] <= now:
                        if slot.connect():
                            del waiting[key]
                            assert slot.sock is not None
                            self._selector.register(slot.sock, selectors.EVENT_READ, slot)
                            self.status(f"{slot.name}: connected to vpcd at {slot.address} (ATR {to_hex(slot.atr)})")
                            announced.discard(key)
                        else:
                            waiting[key] = now + self.retry_s
                            if key not in announced:
                                announced.add(key)
                                self.status(f"{slot.name}: waiting for pcscd's vpcd to listen on {slot.address}")
                timeout = max(0.0, min(waiting.values()) - now) if waiting else None
                for selected, _ in self._selector.select(timeout):
                    slot = selected.data
                    if slot is None:
                        self._wake_r.recv(64)
                        continue
                    ended = slot.receive()
                    if ended is None:
                        continue
                    self._selector.unregister(slot.sock)
                    slot.disconnect()
                    if ended is _TORN:
                        delay, then = self.return_s, f"back in {self.return_s:g} s"
                    else:
                        delay, then = self.retry_s, "reconnecting"
                    waiting[id(slot)] = time.monotonic() + delay
                    self.status(f"{slot.name}: {ended}; {then}")
        finally:
            for slot in self.slots:
                if slot.sock is not None:
                    self._selector.unregister(slot.sock)
                    slot.disconnect()

    def close(self) -> None:
        """Release the server's own sockets (after :meth:`serve` has returned)."""
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
