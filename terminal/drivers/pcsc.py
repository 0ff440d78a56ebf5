"""PC/SC readers through pyscard: the card in one reader, the PSAM in another.

A dual-slot reader shows its SAM slot as a second reader, so a validator opens two :class:`PcscLink` objects. Readers
are chosen by index in the PC/SC list or by a name pattern (:func:`choose_reader`). :meth:`PcscLink.activate` waits for
``SCARD_STATE_PRESENT`` before connecting (a card that has just arrived may not be powered yet), connects exclusively
offering T=0 and T=1 (the resource manager picks the card's protocol from its ATR and reports the one it chose), and
reports a contactless card behind a PC/SC reader (PC/SC part 3 ATR ``3B 8n 80 01 ...``) as ``T=CL`` with the UID the
reader gives for ``FF CA 00 00 00``, and a MIFARE Classic (the storage-card ATR ``3B 8F 80 01 80 4F 0C A0 00 00 03 06
03 ...``) as ``MIFARE`` with its UID and the SAK its card name means: the reader's firmware then takes the PC/SC part 3
pseudo-APDUs (``FF 82`` load key, ``FF 86`` authenticate, ``FF B0``/``FF D6`` read/write, ``FF D7`` value operations)
that the validator's M1 flow sends. :meth:`PcscLink.deactivate` disconnects with ``SCARD_UNPOWER_CARD``: without it the
card keeps its selected file and open session into the next connection.

The T=0 procedure (61xx, 6Cxx) is not done here but in :class:`terminal.channel.Channel`, for every driver alike.

Every PC/SC call runs on one worker thread per link, so that a reader that never answers costs the caller its timeout
and no more: ``SCardTransmit`` has no timeout of its own, and pcsc-lite holds the context's lock while it waits, so an
abandoned call blocks every later call on that context until it returns. Until then the link refuses calls with
:class:`LinkTimeout` at once. Each status word pcsc-lite returns becomes one of the project's typed errors
(:data:`ERRORS`); nothing pyscard raises escapes. pyscard is imported on first use: it is the optional extra ``pcsc``.
"""

from __future__ import annotations

import fnmatch
import queue
import threading
import time
from collections.abc import Callable
from functools import reduce
from operator import xor
from typing import Any

from protocols.errors import ProtocolError, YktError
from protocols.pcsc_mifare import is_storage_atr, storage_sak

from ..errors import CardRemoved, ConfigError, LinkTimeout, ReaderGone
from ..link import Activation, Link

INSTALL_HINT = ("PC/SC support needs pyscard: pip install 'yikatong[pcsc]', which compiles it and needs the Debian "
                "packages gcc, libc6-dev and libpcsclite-dev; readers are reached through the pcscd daemon "
                "(Debian package pcscd)")

# PC/SC constants, as the PC/SC specification and pcsc-lite's pcsclite.h fix them.
SCOPE_USER = 0
SHARE_EXCLUSIVE = 1
PROTOCOL_T0 = 0x1
PROTOCOL_T1 = 0x2
LEAVE_CARD = 0
RESET_CARD = 1
UNPOWER_CARD = 2
STATE_UNAWARE = 0x0
STATE_CHANGED = 0x2
STATE_UNKNOWN = 0x4
STATE_UNAVAILABLE = 0x8
STATE_EMPTY = 0x10
STATE_PRESENT = 0x20
STATE_MUTE = 0x200
S_SUCCESS = 0x0
E_TIMEOUT = 0x8010000A
E_NO_READERS_AVAILABLE = 0x8010002E

RETRY_S = 0.1
"""How often :meth:`PcscLink.activate` tries again to connect to a card that is present but cannot be connected to."""
CONTROL_TIMEOUT_S = 5.0
"""How long a PC/SC call other than a transmission may take before the daemon is taken as hung."""
GET_UID = bytes.fromhex("FFCA000000")
"""PC/SC part 3 GET DATA: a contactless reader answers the card's UID itself."""

_ErrorClass = type[YktError]
ERRORS: dict[int, tuple[_ErrorClass, str, str]] = {
    0x80100001: (ReaderGone, "SCARD_F_INTERNAL_ERROR", "internal error in the PC/SC layer"),
    0x80100002: (LinkTimeout, "SCARD_E_CANCELLED", "the call was cancelled"),
    0x80100003: (ReaderGone, "SCARD_E_INVALID_HANDLE", "the PC/SC handle is no longer valid (pcscd restarted?)"),
    0x80100004: (ProtocolError, "SCARD_E_INVALID_PARAMETER", "the reader refused the command's parameters"),
    0x80100006: (ReaderGone, "SCARD_E_NO_MEMORY", "pcscd is out of memory"),
    0x80100008: (ProtocolError, "SCARD_E_INSUFFICIENT_BUFFER", "the answer is longer than a response APDU can be"),
    0x80100009: (ReaderGone, "SCARD_E_UNKNOWN_READER", "the reader is not known to pcscd (unplugged?)"),
    E_TIMEOUT: (LinkTimeout, "SCARD_E_TIMEOUT", "no answer in time"),
    0x8010000B: (ReaderGone, "SCARD_E_SHARING_VIOLATION", "another application holds the reader"),
    0x8010000C: (CardRemoved, "SCARD_E_NO_SMARTCARD", "no card in the reader"),
    0x8010000F: (ProtocolError, "SCARD_E_PROTO_MISMATCH", "the card does not speak the requested protocol"),
    0x80100010: (ReaderGone, "SCARD_E_NOT_READY", "the reader is not ready"),
    0x80100011: (ProtocolError, "SCARD_E_INVALID_VALUE", "the reader refused a value of the command"),
    0x80100012: (ReaderGone, "SCARD_E_SYSTEM_CANCELLED", "the system cancelled the call"),
    0x80100013: (ReaderGone, "SCARD_F_COMM_ERROR", "communication with pcscd failed"),
    0x80100014: (ReaderGone, "SCARD_F_UNKNOWN_ERROR", "unknown PC/SC failure"),
    0x80100016: (CardRemoved, "SCARD_E_NOT_TRANSACTED", "the exchange failed (card left the field or did not answer)"),
    0x80100017: (ReaderGone, "SCARD_E_READER_UNAVAILABLE", "the reader is unavailable"),
    0x8010001C: (CardRemoved, "SCARD_E_CARD_UNSUPPORTED", "the card cannot be used (bad ATR)"),
    0x8010001D: (ReaderGone, "SCARD_E_NO_SERVICE", "pcscd is not running"),
    0x8010001E: (ReaderGone, "SCARD_E_SERVICE_STOPPED", "pcscd stopped"),
    0x8010001F: (ReaderGone, "SCARD_E_UNSUPPORTED_FEATURE", "the reader does not support this call"),
    E_NO_READERS_AVAILABLE: (ReaderGone, "SCARD_E_NO_READERS_AVAILABLE", "no reader is connected"),
    0x80100065: (CardRemoved, "SCARD_W_UNSUPPORTED_CARD", "the card's ATR cannot be used"),
    0x80100066: (CardRemoved, "SCARD_W_UNRESPONSIVE_CARD", "the card does not answer reset"),
    0x80100067: (CardRemoved, "SCARD_W_UNPOWERED_CARD", "the card lost power"),
    0x80100068: (CardRemoved, "SCARD_W_RESET_CARD", "the card was reset by another application: its session is lost"),
    0x80100069: (CardRemoved, "SCARD_W_REMOVED_CARD", "the card was removed"),
}
"""pcsc-lite status codes: the typed error each becomes, the code's name and what it means here. A code not listed is
:class:`ReaderGone`."""


def pcsc_error(code: int, doing: str) -> YktError:
    """The typed error for a failed PC/SC call; ``doing`` says which reader and call, for the message."""
    code &= 0xFFFFFFFF
    kind, name, text = ERRORS.get(code, (ReaderGone, f"0x{code:08X}", "PC/SC call failed"))
    return kind(f"{doing}: {text} ({name})")


def contactless_atr(historical: bytes) -> bytes:
    """The ATR a PC/SC reader makes up for an ISO 14443-4 type A card (PC/SC part 3): ``3B 8n 80 01``, the ATS's
    historical bytes (at most 15), and the check byte TCK."""
    body = bytes((0x80 | min(len(historical), 15), 0x80, 0x01)) + historical[:15]
    return b"\x3b" + body + bytes((reduce(xor, body, 0),))


def is_contactless_atr(atr: bytes) -> bool:
    """Whether ``atr`` is the PC/SC part 3 ATR of an ISO 14443-4 card (T=1 to the host, T=CL on the air)."""
    return (len(atr) >= 5 and atr[0] == 0x3B and atr[1] & 0xF0 == 0x80 and atr[2:4] == b"\x80\x01"
            and len(atr) == 5 + (atr[1] & 0x0F) and reduce(xor, atr[1:], 0) == 0)


def load_scard() -> Any:
    """pyscard's PC/SC module; :class:`ReaderGone` naming the packages to install when pyscard is missing."""
    try:
        from smartcard import scard
    except ImportError:
        raise ReaderGone(INSTALL_HINT) from None
    return scard


def choose_reader(readers: list[str], spec: str) -> str:
    """The reader ``spec`` names: an index in ``readers`` (``"0"``), or a pattern matching exactly one reader's name.

    A pattern is a case-insensitive shell pattern (``"*PCD 00 01"``) when it holds ``*``, ``?`` or ``[``, a substring
    otherwise; an exact name always wins. Not found is :class:`ReaderGone` (unplugged?); matching several readers is a
    :class:`ConfigError`, so that a SAM link never opens the card's slot by accident.
    """
    listed = ", ".join(repr(r) for r in readers) or "none"
    if spec.isdigit():
        index = int(spec)
        if index >= len(readers):
            raise ReaderGone(f"no PC/SC reader {index}: readers are {listed}")
        return readers[index]
    if spec in readers:
        return spec
    folded = spec.casefold()
    if any(ch in spec for ch in "*?["):
        found = [r for r in readers if fnmatch.fnmatchcase(r.casefold(), folded)]
    else:
        found = [r for r in readers if folded in r.casefold()]
    if not found:
        raise ReaderGone(f"no PC/SC reader matches {spec!r}: readers are {listed}")
    if len(found) > 1:
        raise ConfigError(f"PC/SC reader pattern {spec!r} matches {len(found)} readers "
                          f"({', '.join(repr(r) for r in found)}): give an index or a longer name")
    return found[0]


class _Stuck(Exception):
    """A call on the worker did not return in time."""


class _Worker:
    """A thread that makes one link's PC/SC calls in order, so that the caller can stop waiting for one.

    At most one call is outstanding: a call that did not return in time (or one posted without waiting) must return
    before the next call goes out, and results nobody waits for any more are dropped by their sequence number.
    """

    def __init__(self, name: str) -> None:
        self._requests: queue.SimpleQueue[tuple[int, Callable[..., Any], tuple[Any, ...]] | None] = \
            queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[int, Any, BaseException | None]] = queue.SimpleQueue()
        self._seq = 0
        self._pending: int | None = None
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            seq, function, args = request
            try:
                self._results.put((seq, function(*args), None))
            except BaseException as exc:  # handed to the caller, who maps it to a typed error
                self._results.put((seq, None, exc))

    def _wait(self, deadline: float) -> tuple[Any, BaseException | None]:
        """The result of the pending call; :class:`_Stuck` at the deadline (the call stays pending)."""
        while True:
            try:
                seq, value, exc = self._results.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise _Stuck from None
            if seq == self._pending:
                self._pending = None
                return value, exc

    @property
    def busy(self) -> bool:
        """Whether a call is still outstanding (one that was abandoned or posted)."""
        if self._pending is None:
            return False
        try:
            self._wait(0.0)
        except _Stuck:
            return True
        return False

    def call(self, function: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        """Run ``function(*args)`` on the worker once the outstanding call is done; :class:`_Stuck` when the two do
        not finish within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        if self._pending is not None:
            self._wait(deadline)
        self.post(function, args)
        value, exc = self._wait(deadline)
        if exc is not None:
            raise exc
        return value

    def post(self, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Send a call without waiting for it (a disconnect behind a stuck call): later calls wait for it first."""
        self._seq += 1
        self._pending = self._seq
        self._requests.put((self._seq, function, args))

    def stop(self) -> None:
        self._requests.put(None)


class _Context:
    """A PC/SC context and the worker that makes its calls; every failure leaves here as a typed error."""

    def __init__(self, scard: Any, name: str) -> None:
        self.scard = scard
        self.name = name
        self.worker = _Worker(f"pcsc {name}")
        self.handle: int | None = None

    def call(self, what: str, function: Callable[..., Any], *args: Any, timeout: float = CONTROL_TIMEOUT_S,
             on_stuck: type[YktError] = ReaderGone) -> Any:
        """Call pyscard's ``function`` on the worker and return its result (the status code still to be checked)."""
        try:
            return self.worker.call(function, args, timeout)
        except _Stuck:
            raise on_stuck(f"{self.name}: {what}: no answer from the PC/SC layer within {timeout:g} s") from None
        except Exception as exc:
            raise ReaderGone(f"{self.name}: {what}: pyscard failed: {type(exc).__name__}: {exc}") from None

    def establish(self) -> int:
        """The context handle, established on first use and again after the daemon lost it."""
        if self.handle is None:
            code, handle = self.call("SCardEstablishContext", self.scard.SCardEstablishContext, SCOPE_USER)
            if code != S_SUCCESS:
                raise pcsc_error(code, f"{self.name}: connecting to pcscd")
            self.handle = handle
        return self.handle

    def drop(self) -> None:
        """Forget the context (after the daemon failed): the next :meth:`establish` makes a new one."""
        handle, self.handle = self.handle, None
        if handle is None:
            return
        if self.worker.busy:
            self.worker.post(self.scard.SCardReleaseContext, (handle,))
            return
        try:
            self.worker.call(self.scard.SCardReleaseContext, (handle,), CONTROL_TIMEOUT_S)
        except Exception:  # a context the daemon lost needs no release; its outcome changes nothing
            pass

    def list_readers(self) -> list[str]:
        code, readers = self.call("SCardListReaders", self.scard.SCardListReaders, self.establish(), [])
        if code == E_NO_READERS_AVAILABLE:
            return []
        if code != S_SUCCESS:
            error = pcsc_error(code, f"{self.name}: listing readers")
            if isinstance(error, ReaderGone):
                self.drop()
            raise error
        return list(readers)

    def close(self) -> None:
        self.drop()
        self.worker.stop()


def list_readers(*, scard: Any = None) -> list[str]:
    """The names of the PC/SC readers pcscd knows, in its order (the order indexes refer to)."""
    context = _Context(scard or load_scard(), "PC/SC")
    try:
        return context.list_readers()
    finally:
        context.close()


class PcscLink(Link):
    """One PC/SC reader (or one slot of a multi-slot reader) as a :class:`Link`.

    ``reader``: an index or a name pattern (:func:`choose_reader`), resolved when the link opens. ``new_cards_only``:
    a card left in the reader after :meth:`deactivate` is not activated again until it leaves and comes back (pcsc-lite
    counts insertions and removals): a validator must not take a card resting on the reader for new taps.
    ``scard`` replaces pyscard's module (tests).
    """

    def __init__(self, reader: str = "0", *, new_cards_only: bool = False, scard: Any = None) -> None:
        self._context = _Context(scard or load_scard(), "PC/SC")
        self._scard = self._context.scard
        try:
            self.reader = choose_reader(self._context.list_readers(), reader)
        except BaseException:
            self._context.close()
            raise
        self.name = f"pcsc:{self.reader}"
        self._context.name = self.name
        self.new_cards_only = new_cards_only
        self.last_model = None
        self._card: int | None = None
        self._protocol = PROTOCOL_T1
        self._events_seen: int | None = None
        self._closed = False

    @property
    def active(self) -> bool:
        """Whether a card is connected (activated and not yet deactivated or lost)."""
        return self._card is not None

    # --- Link ------------------------------------------------------------------------------------------------------

    def activate(self, timeout: float) -> Activation | None:
        """Wait up to ``timeout`` seconds for a card, connect to it exclusively and return its activation.

        A card that cannot be connected to (it left again, or does not answer reset) is tried again every
        :data:`RETRY_S` seconds rather than only when pcscd reports a change: pcsc-lite can go on reporting a card
        that left and came back quickly (a virtual card reconnecting) as the old, unusable one.
        """
        if self._closed:
            raise ReaderGone(f"{self.name} is closed")
        self._disconnect(UNPOWER_CARD)
        deadline = time.monotonic() + max(0.0, timeout)
        known, until = STATE_UNAWARE, deadline
        while True:
            state = self._wait_change(known, until)
            if state is None:
                if until >= deadline:
                    return None
                known, until = STATE_UNAWARE, deadline  # retry the connection now
                continue
            known = state & ~STATE_CHANGED
            events = state >> 16
            if state & STATE_PRESENT and not state & STATE_MUTE and \
                    not (self.new_cards_only and events == self._events_seen):
                activation = self._connect(events)
                if activation is not None:
                    return activation
                until = min(deadline, time.monotonic() + RETRY_S)
            if time.monotonic() >= deadline:
                return None

    def transceive(self, apdu: bytes, timeout: float) -> bytes:
        card = self._card
        if card is None:
            raise CardRemoved(f"{self.name}: no card activated")
        code, response = self._context.call("SCardTransmit", self._scard.SCardTransmit, card, self._protocol,
                                            list(apdu), timeout=timeout, on_stuck=LinkTimeout)
        if code != S_SUCCESS:
            raise self._failed(code, "transmit")  # pcsc-lite leaves garbage in the buffer of a failed call
        if len(response) < 2:
            # vpcd and some readers report a card that vanished mid-exchange as success with nothing in it
            self._forget_card()
            raise CardRemoved(f"{self.name}: transmit: the card answered nothing (it left the field or went mute)")
        return bytes(response)

    def deactivate(self) -> None:
        """Disconnect, powering the card down, so that the next activation sees a fresh card."""
        self._disconnect(UNPOWER_CARD)

    def close(self) -> None:
        """Disconnect, powering the card down (the next program to connect starts it afresh, as a validator starting
        its PSAM expects), and release the PC/SC context; the link cannot be used again."""
        if self._closed:
            return
        self._closed = True
        try:
            self._disconnect(UNPOWER_CARD)
        except YktError:
            pass
        self._context.close()

    # --- internals -------------------------------------------------------------------------------------------------

    def _failed(self, code: int, doing: str) -> YktError:
        """The typed error for ``code``; the card or the whole context is forgotten as the error says."""
        error = pcsc_error(code, f"{self.name}: {doing}")
        if isinstance(error, (CardRemoved, ReaderGone)):
            self._forget_card()
        if isinstance(error, ReaderGone):
            self._context.drop()
        return error

    def _wait_change(self, known: int, deadline: float) -> int | None:
        """The reader's state once it differs from ``known``; ``None`` at the deadline."""
        remaining = max(0.0, deadline - time.monotonic())
        context = self._context.establish()
        code, states = self._context.call(
            "SCardGetStatusChange", self._scard.SCardGetStatusChange, context, int(remaining * 1000),
            [(self.reader, known)], timeout=remaining + CONTROL_TIMEOUT_S)
        if code == E_TIMEOUT:
            return None
        if code != S_SUCCESS:
            raise self._failed(code, "waiting for a card")
        state = states[0][1]
        if state & (STATE_UNKNOWN | STATE_UNAVAILABLE):
            self._context.drop()
            raise ReaderGone(f"{self.name}: the reader is gone (unplugged, or pcscd lost it)")
        return state

    def _connect(self, events: int) -> Activation | None:
        """Connect to the card that is present; ``None`` when it left or does not answer reset."""
        code, card, protocol = self._context.call(
            "SCardConnect", self._scard.SCardConnect, self._context.establish(), self.reader, SHARE_EXCLUSIVE,
            PROTOCOL_T0 | PROTOCOL_T1)
        if code != S_SUCCESS:
            error = self._failed(code, "connecting to the card")
            if isinstance(error, CardRemoved):
                return None
            raise error
        self._card, self._protocol, self._events_seen = card, protocol, events
        code, _, _, _, atr = self._context.call("SCardStatus", self._scard.SCardStatus, card)
        if code != S_SUCCESS:
            error = self._failed(code, "reading the card's status")
            if isinstance(error, CardRemoved):
                return None
            raise error
        atr = bytes(atr)
        if is_storage_atr(atr):  # before the contactless test: a storage card's ATR has the same frame
            try:
                return Activation("MIFARE", uid=self._uid(), sak=storage_sak(atr), atr=atr)
            except CardRemoved:
                return None
        if is_contactless_atr(atr):
            try:
                return Activation("T=CL", uid=self._uid(), atr=atr)
            except CardRemoved:
                return None
        return Activation("T=0" if protocol == PROTOCOL_T0 else "T=1", atr=atr)

    def _uid(self) -> bytes:
        """The contactless card's UID, as the reader answers GET DATA; empty when the reader does not say."""
        try:
            response = self.transceive(GET_UID, CONTROL_TIMEOUT_S)
        except ProtocolError:
            return b""
        return response[:-2] if response[-2:] == b"\x90\x00" else b""

    def _forget_card(self) -> None:
        """Give up a card that is gone. Its handle is still released (without waiting), or it would keep the reader
        exclusively when the card comes back before pcscd noticed it leave; with ``SCARD_LEAVE_CARD``, because
        pcsc-lite marks the reader empty when powering down a card that does not answer, and keeps it so even after
        the card is back."""
        card, self._card = self._card, None
        if card is not None:
            self._context.worker.post(self._scard.SCardDisconnect, (card, LEAVE_CARD))

    def _disconnect(self, disposition: int) -> None:
        card, self._card = self._card, None
        if card is None:
            return
        if self._context.worker.busy:
            self._context.worker.post(self._scard.SCardDisconnect, (card, disposition))
            return
        code = self._context.call("SCardDisconnect", self._scard.SCardDisconnect, card, disposition)
        if code != S_SUCCESS:
            error = self._failed(code, "disconnecting")
            if not isinstance(error, CardRemoved):
                raise error
