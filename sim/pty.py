"""A raw pseudo-terminal reached through a symlink: how an emulated serial device shows itself to real drivers.

The pty is in raw mode (no echo, no line discipline: every byte passes as sent) and the owner keeps its own
descriptor of the slave side open, or reads on the master fail with EIO whenever no client has the slave open.
``link`` becomes a symlink to the slave (``/dev/pts/N``), created under a temporary name and renamed into place, so
the link appearing means the device behind it is ready (an existing symlink there is replaced: a device started
again takes its old path); it is removed on close if it still points at this pty.
"""

from __future__ import annotations

import logging
import os
import tty
from pathlib import Path

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
