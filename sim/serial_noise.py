"""A noisy serial line: a relay between a serial driver and an emulated device that damages bytes, seeded.

:class:`LineNoise` decides, byte by byte, whether a byte passes, is corrupted (XOR with a random non-zero value: a
framing or parity fault the UART did not catch) or is lost (an overrun, a glitch that ate a start bit). The draws
come from a seeded generator, one per direction, so a run is repeatable for a given sequence of bytes whatever the
pieces the operating system hands them over in.

:class:`NoisyRelay` puts that on a real serial path: it offers a pty of its own at ``link`` (a driver opens it like
any serial port) and opens ``target`` (the emulator's pty, through its symlink) as a client, moving bytes both ways
through one :class:`LineNoise` each. When the device behind ``target`` goes away (its process killed), the relay
keeps the driver's side open and opens ``target`` again once it is back: a chip that lost power, on an intact cable.

One thread runs the loop (:meth:`NoisyRelay.serve_forever`); :meth:`NoisyRelay.stop` is safe from any thread or a
signal handler.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import select
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

from protocols.errors import YktError

from .pty import EmulatorError, PtyService

log = logging.getLogger("sim.serial_noise")

_READ_SIZE = 4096
_REOPEN_S = 0.02  # how often a relay whose device is gone looks for it again


class NoiseError(YktError):
    """Noise settings out of range."""


@dataclass(slots=True)
class LineNoise:
    """Damage a ``rate`` fraction of bytes (0 to 1): of those, a ``drop_share`` fraction is lost and the rest
    corrupted. ``seed`` and ``direction`` name the generator, so each direction of a line draws its own sequence."""

    rate: float
    seed: int = 0
    direction: str = ""
    drop_share: float = 0.5
    passed: int = 0
    corrupted: int = 0
    dropped: int = 0

    @property
    def seen(self) -> int:
        """Bytes sent into the line so far."""
        return self.passed + self.corrupted + self.dropped
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise NoiseError(f"noise rate must be between 0 and 1, got {self.rate}")
        if not 0.0 <= self.drop_share <= 1.0:
            raise NoiseError(f"drop share must be between 0 and 1, got {self.drop_share}")
        self._rng = random.Random(f"{self.seed}:{self.direction}")

    def apply(self, data: bytes) -> bytes:
        """What arrives at the other end when ``data`` is sent."""
        if not self.rate:
            self.passed += len(data)
            return data
        rng = self._rng
        out = bytearray()
        for byte in data:
            if rng.random() >= self.rate:
                out.append(byte)
                self.passed += 1
            elif rng.random() < self.drop_share:
                self.dropped += 1
            else:
                out.append(byte ^ rng.randrange(1, 256))
                self.corrupted += 1
        return bytes(out)


class NoisyRelay(PtyService):
    """A pty at ``link`` relayed to the serial device at ``target``, through ``to_device`` (host → device) and
    ``to_host`` (device → host) noise."""

    thread_name = "noise"

    def __init__(self, target: str | os.PathLike[str], link: str | os.PathLike[str], *, to_device: LineNoise,
                 to_host: LineNoise) -> None:
        super().__init__(link)
        self.target = Path(target)
        self.to_device = to_device
        self.to_host = to_host
        self.reopened = 0
        """Times the device was opened again after it went away."""
        self._device = -1
        self._out = {"host": bytearray(), "device": bytearray()}

    def open(self) -> None:
        """Open the device behind ``target``, then create the pty and its symlink."""
        if not self._open_device():
            raise EmulatorError(f"cannot open {self.target}: no serial device there")
        super().open()

    def close(self) -> None:
        super().close()
        self._close_device()

    # --- the device side ------------------------------------------------------------------------------------------

    def _open_device(self) -> bool:
        try:
            fd = os.open(self.target, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            tty.setraw(fd)
        except OSError:
            os.close(fd)
            return False
        self._device = fd
        return True

    def _close_device(self) -> None:
        if self._device >= 0:
            os.close(self._device)
        self._device = -1
        self._out["device"].clear()

    # --- the loop -------------------------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        host, wake = self.pty.master, self.wake_fd
        while not self.stopping:
            device = self._device
            readers = [host, wake] + ([device] if device >= 0 else [])
            writers = [fd for fd, side in ((host, "host"), (device, "device")) if fd >= 0 and self._out[side]]
            timeout = None if device >= 0 else _REOPEN_S
            try:
                readable, _, _ = select.select(readers, writers, [], timeout)
            except InterruptedError:
                continue
            if wake in readable:
                os.read(wake, 64)
            if device < 0 and self._open_device():
                self.reopened += 1
                log.info("%s is back", self.target)
            if host in readable:
                data = self._read(host)
                if data and self._device >= 0:
                    self._out["device"] += self.to_device.apply(data)  # nobody listens while the device is away
            if device >= 0 and device in readable:
                data = self._read(device)
                if data is None:
                    log.info("%s went away", self.target)
                    self._close_device()
                elif data:
                    self._out["host"] += self.to_host.apply(data)
            self._flush(host, "host")
            if self._device >= 0:
                self._flush(self._device, "device")

    @staticmethod
    def _read(fd: int) -> bytes | None:
        """Bytes waiting on ``fd``; ``b""`` when none; ``None`` when its other side has closed (EIO on a pty)."""
        try:
            return os.read(fd, _READ_SIZE) or None
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                return None
            raise

    def _flush(self, fd: int, side: str) -> None:
        pending = self._out[side]
        if not pending:
            return
        try:
            written = os.write(fd, pending)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("writing to the %s side failed: %s", side, exc)
            pending.clear()
            return
        del pending[:written]


def wait_for_link(link: Path, timeout: float = 10.0) -> bool:
    """Whether ``link`` (a pty symlink an emulator or a relay makes when ready) appears within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not link.is_symlink():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
