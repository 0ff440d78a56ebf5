"""Real third-party peers for the PC/SC tests: our own pcscd with vsmartcard's vpcd, and the vpcd card server.

The session's pcscd is isolated from any system one: its reader configuration lives in a temporary directory (vpcd on
two free ports of its own) and its client socket is a temporary unix socket handed over by socket activation
(``LISTEN_FDS``), which this process and its children reach through ``PCSCLITE_CSOCK_NAME``. pcscd still writes
``/run/pcscd/pcscd.pid`` (and needs that directory: root, or ``sudo install -d -o $USER /run/pcscd`` once).

Readiness is awaited, never slept for: pcscd is ready when it lists its two readers, a served card when pcscd reports
it present, a removed one when pcscd reports the reader empty. pcscd is stopped with SIGTERM (after SIGKILL its stale
pid file is removed here).

Outside CI a missing peer skips these tests with the Debian package to install; in CI (``CI=true``) it fails them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from sim.device import Device
from sim.vpcd import VpcdServer, VpcdSlot

IN_CI = os.environ.get("CI", "").lower() == "true"
READY_TIMEOUT_S = 30.0  # generous: a loaded 2-core CI machine
VPCD_DRIVERS = "/usr/lib*/pcsc/drivers/serial/libifdvpcd.so*"
PID_FILE = Path("/run/pcscd/pcscd.pid")
CARD_READER, SAM_READER = "Virtual PCD 00 00", "Virtual PCD 00 01"

# pcscd wants its listening socket as fd 3 (sd_listen_fds) and LISTEN_PID equal to its own pid: this trampoline moves
# the socket to fd 3, sets both, and execs pcscd in its own process.
_ACTIVATE = ("import os, sys\n"
             "os.dup2(int(sys.argv[1]), 3)\n"
             "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))\n"
             "os.execvp(sys.argv[2], sys.argv[2:])\n")


def missing(what: str, install: str) -> NoReturn:
    """Skip (fail in CI) because a peer is missing; the message says how to install it."""
    message = f"{what} is missing: {install}"
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"the program {name}", f"apt-get install {package}")
    return path


def require_pcsc() -> None:
    """pcscd, the vpcd driver, pyscard and a run directory pcscd can write."""
    require_tool("pcscd", "pcscd")
    if not glob.glob(VPCD_DRIVERS):
        missing("vsmartcard's vpcd reader driver (libifdvpcd.so)", "apt-get install vsmartcard-vpcd")
    try:
        import smartcard.scard  # noqa: F401
    except ImportError:
        missing("pyscard", "pip install 'yikatong[pcsc]' (after apt-get install gcc libc6-dev libpcsclite-dev)")
    run_dir = PID_FILE.parent
    if not (os.access(run_dir, os.W_OK) if run_dir.exists() else os.access(run_dir.parent, os.W_OK)):
        missing(f"a writable {run_dir} for pcscd", f"run as root, or once: sudo install -d -o $USER {run_dir}")


def free_port_pair() -> int:
    """A TCP port P such that P and P+1 are both free now (vpcd's two slots)."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind(("", 0))
            port = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no pair of free TCP ports")


def wait_until(check: Callable[[], Any], what: str, timeout: float = READY_TIMEOUT_S) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}", pytrace=False)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class Pcscd:
    """One pcscd of our own: config dir, vpcd ports, client socket, log; :meth:`start` / :meth:`stop` / restart."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.conf = workdir / "reader.conf.d"
        self.socket_path = workdir / "pcscd.comm"
        self.log_path = workdir / "pcscd.log"
        self.port = free_port_pair()
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf.mkdir()
        driver = min(glob.glob(VPCD_DRIVERS))
        (self.conf / "vpcd").write_text(f'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:{self.port}\n'
                                        f"LIBPATH {driver}\nCHANNELID {self.port}\n")

    def start(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.socket_path))
            listener.listen(64)
            os.chmod(self.socket_path, 0o666)
            fd = listener.fileno()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-c", _ACTIVATE, str(fd), "pcscd", "--foreground", "--debug", "--apdu",
                     "-c", str(self.conf)], pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT)
        finally:
            listener.close()  # ours must go: with it open, clients would queue on a dead daemon instead of failing
        wait_until(self._ready, f"pcscd to list its readers (log: {self.log_path})")

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"pcscd exited with {self.proc.returncode}:\n{self.log_tail()}", pytrace=False)
        return reader_names() == [CARD_READER, SAM_READER]

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            with contextlib.suppress(OSError, ValueError):
                if int(PID_FILE.read_text().strip("\0\n ")) == proc.pid:
                    PID_FILE.unlink()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def reader_names() -> list[str]:
    """The readers pcscd lists now (empty when it does not answer)."""
    from smartcard import scard

    code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if code != scard.SCARD_S_SUCCESS:
        return []
    try:
        code, readers = scard.SCardListReaders(context, [])
        return list(readers) if code == scard.SCARD_S_SUCCESS else []
    finally:
        scard.SCardReleaseContext(context)


def wait_reader(reader: str, *, present: bool, atr: bytes | None = None, timeout: float = READY_TIMEOUT_S) -> None:
    """Wait until pcscd reports ``reader`` holding a card (with ``atr`` when given) or empty."""
    from smartcard import scard

    code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert code == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(code)
    try:
        deadline = time.monotonic() + timeout
        known = scard.SCARD_STATE_UNAWARE
        while True:
            remaining = deadline - time.monotonic()
            code, states = scard.SCardGetStatusChange(context, max(0, int(remaining * 1000)), [(reader, known)])
            if code == scard.SCARD_S_SUCCESS:
                _, state, card_atr = states[0]
                known = state & ~scard.SCARD_STATE_CHANGED
                if present and state & scard.SCARD_STATE_PRESENT and (atr is None or bytes(card_atr) == atr):
                    return
                if not present and state & scard.SCARD_STATE_EMPTY:
                    return
            elif code != scard.SCARD_E_TIMEOUT:
                pytest.fail(f"waiting for {reader}: {scard.SCardGetErrorMessage(code)}", pytrace=False)
            if remaining <= 0:
                pytest.fail(f"timed out after {timeout:g} s waiting for {reader} to be "
                            f"{'present' if present else 'empty'}", pytrace=False)
    finally:
        scard.SCardReleaseContext(context)


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    """The session's pcscd; a test that stops it must start it again."""
    require_pcsc()
    daemon = Pcscd(tmp_path_factory.mktemp("pcscd"))
    previous = os.environ.get("PCSCLITE_CSOCK_NAME")
    os.environ["PCSCLITE_CSOCK_NAME"] = str(daemon.socket_path)  # libpcsclite reads it once, at the first context
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        if previous is None:
            os.environ.pop("PCSCLITE_CSOCK_NAME", None)
        else:
            os.environ["PCSCLITE_CSOCK_NAME"] = previous


class Served:
    """A :class:`VpcdServer` running on a thread, serving a card in reader 0 and/or a SAM in reader 1."""

    def __init__(self, pcscd: Pcscd, card: Device | None, sam: Device | None, quickack: bool) -> None:
        self.card_slot = None if card is None else VpcdSlot(card, pcscd.port, name="card", quickack=quickack)
        self.sam_slot = None if sam is None else VpcdSlot(sam, pcscd.port + 1, name="PSAM", quickack=quickack)
        self.slots = [(slot, reader) for slot, reader in ((self.card_slot, CARD_READER), (self.sam_slot, SAM_READER))
                      if slot is not None]
        self.status: list[str] = []
        self.server = VpcdServer([slot for slot, _ in self.slots], status=self.status.append)
        self.thread = threading.Thread(target=self.server.serve, name="vpcd server", daemon=True)
        self.thread.start()
        for slot, reader in self.slots:
            wait_reader(reader, present=True, atr=slot.atr)

    def stop(self) -> None:
        """The cards leave the readers; returns once pcscd has seen them go (if it is still running)."""
        self.server.stop()
        self.thread.join(timeout=READY_TIMEOUT_S)
        assert not self.thread.is_alive(), "the vpcd server did not stop"
        self.server.close()

    def wait_gone(self) -> None:
        for _, reader in self.slots:
            wait_reader(reader, present=False)


@pytest.fixture
def serve(pcscd: Pcscd) -> Iterator[Callable[..., Served]]:
    """``serve(card, sam=None, quickack=True)``: serve devices until the test ends, the readers empty again after."""
    started: list[Served] = []

    def start(card: Device | None, sam: Device | None = None, *, quickack: bool = True) -> Served:
        served = Served(pcscd, card, sam, quickack)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.thread.is_alive():
            served.stop()
    if pcscd.running:
        for reader in {reader for served in started for _, reader in served.slots}:
            wait_reader(reader, present=False)

