"""``ykt`` servers as child processes that a test or a fault campaign can kill at any moment and start again.

:class:`YktProcess` runs ``ykt ARGS`` with its standard error in a log file (a pipe nobody reads would block it) and
its standard output in another when asked, waits until it is ready (a check the caller gives: a link that appears, a
reader that pcscd reports), sends it any signal (SIGKILL: a power cut, with no handler run) and starts it again on
the same arguments, as a supervisor would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from .pty import EmulatorError

YKT = (sys.executable, "-c", "import sys; from sim.cli import main; sys.argv[0] = 'ykt'; main()")
"""``ykt`` run by this interpreter, whatever installed the package."""
READY_S = 30.0


class YktProcess:
    """``ykt`` with ``args``, ready when ``ready()`` says so; its standard error goes to ``log``."""

    def __init__(self, args: Sequence[str], *, ready: Callable[[], bool], log: str | os.PathLike[str],
                 before_start: Callable[[], None] | None = None, output: str | os.PathLike[str] | None = None) -> None:
        self.args = [*YKT, *args]
        self.ready = ready
        self.log = Path(log)
        self.output = None if output is None else Path(output)
        """Where standard output goes (appended), when it is wanted."""
        self.before_start = before_start
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = READY_S) -> Self:
        """Start the process and wait until it is ready; :class:`~sim.pty.EmulatorError` if it exits or is not
        ready in ``timeout`` seconds (the log's tail in the message)."""
        if self.running:
            raise EmulatorError(f"{self.args[3:]} is already running")
        if self.before_start is not None:
            self.before_start()
        with open(self.log, "ab") as log, \
                open(self.output if self.output is not None else os.devnull, "ab") as output:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=output, stderr=log)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise EmulatorError(f"ykt {' '.join(self.args[3:])} exited with {self.proc.returncode}: "
                                    f"{self.tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise EmulatorError(f"ykt {' '.join(self.args[3:])} not ready in {timeout:g} s: {self.tail()}")
            time.sleep(0.01)
        return self

    def kill(self, sig: int = signal.SIGKILL, timeout: float = READY_S) -> int | None:
        """Send ``sig`` and wait for the process to end; its exit status (``None`` when none was running)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def stop(self) -> int | None:
        """SIGTERM: the process stops as a user stops it."""
        return self.kill(signal.SIGTERM)

    def restart(self, timeout: float = READY_S) -> Self:
        self.kill()
        return self.start(timeout)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def pn532_emulator(card: str | os.PathLike[str], link: Path, *options: str, log: Path) -> YktProcess:
    """``ykt sim pn532 --card CARD --link LINK OPTIONS``: ready when the link appears. A killed emulator leaves its
    link behind (pointing at a pty that is gone), so it is removed before each start."""
    return YktProcess(["sim", "pn532", "--card", str(card), "--link", str(link), *options],
                      ready=link.is_symlink, log=log, before_start=lambda: link.unlink(missing_ok=True))
