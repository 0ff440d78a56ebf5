"""A raw pseudo-terminal reached through a symlink: how an emulated serial device shows itself to real drivers.

The pty is in raw mode (no echo, no line discipline: every byte passes as sent) and the owner keeps its own
descriptor of the slave side open, or reads on the master fail with EIO whenever no client has the slave open.
``link`` becomes a symlink to the slave (``/dev/pts/N``), created under a temporary name and renamed into place, so
the link appearing means the device behind it is ready (an existing symlink there is replaced: a device started
again takes its old path); it is removed on close if it still points at this pty.
"""

from __future__ import annotations

import abc
import logging
import os
import threading
import tty
from pathlib import Path
from typing import Self

from protocols.errors import YktError

log = logging.getLogger("sim.pty")


class EmulatorError(YktError):
    """An emulated serial device cannot start: the link path is taken by something that is not a symlink, no pty
    is left, or the device it should reach cannot be opened."""


class PtyLink:
    """A raw pty whose slave is reachable at ``link`` once :meth:`open` has run; :attr:`master` is the owner's end
    (non-blocking)."""

    def __init__(self, link: str | os.PathLike[str]) -> None:
        self.link = Path(link)
        self.slave_name = ""
        self.master = -1
        self._slave = -1

    def open(self) -> int:
        """Create the pty and the symlink; return the master descriptor."""
        if self.link.exists() and not self.link.is_symlink():
            raise EmulatorError(f"{self.link} exists and is not a symlink; choose another --link path")
        try:
            self.master, self._slave = os.openpty()
        except OSError as exc:
            raise EmulatorError(f"cannot open a pseudo-terminal: {exc}") from exc
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.slave_name = os.ttyname(self._slave)
        temporary = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
        try:
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(self.slave_name)
            os.replace(temporary, self.link)
        except OSError as exc:
            self.close()
            raise EmulatorError(f"cannot create the link {self.link}: {exc}") from exc
        return self.master

    def close(self) -> None:
        """Remove the symlink (if it is still ours) and close the pty."""
        try:
            if self.slave_name and self.link.is_symlink() and os.readlink(self.link) == self.slave_name:
                self.link.unlink()
        except OSError as exc:
            log.warning("could not remove %s: %s", self.link, exc)
        for fd in (self.master, self._slave):
            if fd >= 0:
                os.close(fd)
        self.master = self._slave = -1


class PtyService(abc.ABC):
    """A loop that serves a :class:`PtyLink` on a thread of its own: open, start, stop (from any thread or a signal
    handler, through a wake-up pipe the loop selects on), shut down. Subclasses write :meth:`serve_forever`, which
    returns once :attr:`stopping` is set, and extend :meth:`open` and :meth:`close` with what else they hold."""

    thread_name = "pty"

    def __init__(self, link: str | os.PathLike[str]) -> None:
        self.pty = PtyLink(link)
        self.stopping = False
        self.wake_fd = -1
        """What the loop selects on to be woken: by :meth:`stop` and :meth:`poke`."""
        self._wake_w = -1
        self._thread: threading.Thread | None = None

    @property
    def link(self) -> Path:
        return self.pty.link

    @property
    def slave_name(self) -> str:
        return self.pty.slave_name

    def open(self) -> None:
        """The wake-up pipe, then the pty and its symlink: the link appears last, once everything is ready."""
        self.wake_fd, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        try:
            self.pty.open()
        except EmulatorError:
            self.close()
            raise

    def close(self) -> None:
        self.pty.close()
        for fd in (self.wake_fd, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self.wake_fd = self._wake_w = -1

    @abc.abstractmethod
    def serve_forever(self) -> None:
        """Serve until :attr:`stopping`."""

    def poke(self) -> None:
        """Wake the loop up (safe from a signal handler or another thread)."""
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"p")
            except OSError:
                pass  # the pipe is full: the loop is waking up anyway

    def stop(self) -> None:
        """Ask the loop to end (safe from a signal handler or another thread)."""
        self.stopping = True
        self.poke()

    def start(self) -> Self:
        """Open and serve in a background thread; :meth:`shutdown` ends it."""
        self.open()
        self._thread = threading.Thread(target=self.serve_forever, name=f"{self.thread_name} {self.link}",
                                        daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
