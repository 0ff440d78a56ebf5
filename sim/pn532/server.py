"""The emulated PN532 behind a pseudo-terminal: what libnfc's ``pn532_uart`` driver and our own driver open.

The pty, its symlink and the serving thread are :class:`sim.pty.PtyService`'s: the link appearing means the chip is
ready, and it is removed when the server stops, if it still points at this server's pty.

One thread runs the loop (:meth:`Pn532PtyServer.serve_forever`); :meth:`stop` and :meth:`request_retap` may be
called from any thread or a signal handler. Methods that change the field (:meth:`put_card`, :meth:`take_card`,
:meth:`retap`) take the same lock as the loop, so a test can move the card while a client talks to the chip.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
import time

from ..device import Device
from ..pty import EmulatorError, PtyService
from .chip import Pn532Chip

__all__ = ["EmulatorError", "Pn532PtyServer"]

log = logging.getLogger("sim.pn532")

_READ_SIZE = 4096


class Pn532PtyServer(PtyService):
    """``chip`` served on a new pty, reachable at ``link`` (a symlink path) once :meth:`open` has run."""

    thread_name = "pn532"

    def __init__(self, chip: Pn532Chip, link: str | os.PathLike[str]) -> None:
        super().__init__(link)
        self.chip = chip
        self.lock = threading.RLock()
        self._pending_out = bytearray()
        self._retap_due = False

    def open(self) -> None:
        """Create the pty and the symlink."""
        super().open()
        log.debug("PN532 emulator on %s -> %s", self.link, self.slave_name)

    # --- the card ---------------------------------------------------------------------------------------------------

    def put_card(self, card: Device) -> None:
        with self.lock:
            self.chip.put(card)
        self.poke()

    def take_card(self) -> Device | None:
        with self.lock:
            return self.chip.take()

    def retap(self) -> None:
        """The card leaves the field and comes back: a halted card answers the next poll again."""
        with self.lock:
            card = self.chip.take()
            if card is not None:
                self.chip.put(card)
                log.info("the card left the field and was tapped again")
        self.poke()

    def request_retap(self) -> None:
        """:meth:`retap` at the loop's next turn: safe from a signal handler, which may interrupt the chip."""
        self._retap_due = True
        self.poke()

    # --- the loop -------------------------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        master, wake = self.pty.master, self.wake_fd
        while not self.stopping:
            with self.lock:
                deadline = self.chip.deadline
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            writers = [master] if self._pending_out else []
            try:
                readable, writable, _ = select.select([master, wake], writers, [], timeout)
            except InterruptedError:
                continue
            if wake in readable:
                os.read(wake, 64)
            if self._retap_due:
                self._retap_due = False
                self.retap()
            out = b""
            if master in readable:
                try:
                    data = os.read(master, _READ_SIZE)
                except BlockingIOError:
                    data = b""
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        raise
                    data = b""  # no client right now
                if data:
                    with self.lock:
                        out = self.chip.receive(data, time.monotonic())
            with self.lock:
                out += self.chip.due(time.monotonic())
            if out:
                self._pending_out += out
            if self._pending_out and (out or master in writable):
                self._flush(master)

    def _flush(self, master: int) -> None:
        try:
            written = os.write(master, self._pending_out)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("writing to the pty failed: %s", exc)
            self._pending_out.clear()
            return
        del self._pending_out[:written]
