"""What the PN532 peer tests share: an emulated PN532 per test, libnfc's environment and its way of printing bytes.

Every test gets a pty of its own: libnfc takes no lock on a serial port, so two clients on one pty would read each
other's answers. Within a test, clients run one after another.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sim.device import Device
from sim.pn532 import Pn532Chip, Pn532PtyServer

from .conftest import missing, require_tool, wait_until

YKT = (sys.executable, "-c", "import sys; from sim.cli import main; sys.argv[0] = 'ykt'; main()")
"""``ykt`` as a subprocess of this interpreter (whatever installed the package)."""


@contextmanager
def emulated_pn532(card: Device, directory: Path) -> Iterator[Pn532PtyServer]:
    """A PN532 with ``card`` in its field on a pty of its own, served from a thread; ``server.link`` is its path."""
    server = Pn532PtyServer(Pn532Chip(card), directory / "pn532").start()
    try:
        yield server
    finally:
        server.shutdown()


def libnfc_env(link: Path) -> dict[str, str]:
    """libnfc's settings for one PN532 on ``link``: no USB scan, no other device."""
    return {**os.environ, "LIBNFC_DEVICE": f"pn532_uart:{link}", "LIBNFC_AUTO_SCAN": "false",
            "LIBNFC_INTRUSIVE_SCAN": "false", "LIBNFC_LOG_LEVEL": "1"}


def libnfc_hex(data: bytes) -> str:
    """Bytes as libnfc's examples print them: lower-case pairs, two spaces apart."""
    return "  ".join(f"{byte:02x}" for byte in data)


def require_nfc_tool(name: str) -> str:
    return require_tool(name, "libnfc-bin" if name in ("nfc-list", "nfc-scan-device") else "libnfc-examples")


def load_libnfc() -> ctypes.CDLL:
    try:
        return ctypes.CDLL("libnfc.so.6")
    except OSError:
        missing("libnfc.so.6", "apt-get install libnfc6 (it comes with libnfc-bin)")


@contextmanager
def ykt_sim_pn532(fixture: Path, link: Path, *options: str) -> Iterator[subprocess.Popen[str]]:
    """``ykt sim pn532`` as a subprocess, ready once its link exists; stopped with SIGTERM (output kept on it)."""
    proc = subprocess.Popen([*YKT, "sim", "pn532", "--card", str(fixture), "--link", str(link), *options],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: link.is_symlink() or proc.poll() is not None, f"ykt sim pn532 to create {link}")
        assert proc.poll() is None, f"ykt sim pn532 exited with {proc.returncode}: {proc.stderr.read()}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=False, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)
