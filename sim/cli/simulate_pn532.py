"""``ykt sim pn532``: an emulated PN532 on a pseudo-terminal, with a simulated card in its field."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path

import click

from .simulate import sim

_HELP = """Emulate a PN532 reader on a pseudo-terminal, the card of a fixture in its field.

LINK becomes a symlink to the pty (/dev/pts/N); it appears when the chip is
ready and goes when the emulator stops. Anything that drives a PN532 over a
serial line opens it: libnfc's pn532_uart driver (Debian 12: apt-get install
libnfc-bin libnfc-examples), or 'ykt validate --reader pn532:LINK':

\b
    ykt card new --out card.json
    ykt sim pn532 --card card.json --link /tmp/pn532 --save &
    LIBNFC_DEVICE=pn532_uart:/tmp/pn532 LIBNFC_AUTO_SCAN=false nfc-list
    ykt validate --reader pn532:/tmp/pn532 --sam sim:psam --taps 1

Like a real card left on a reader, the card is halted once a reader releases
it and is not listed again until the field is switched off and on (each new
Pn532Link or libnfc session does that) or it is tapped again: send SIGUSR1 to
take it out of the field and put it back. libnfc takes no lock on a serial
port: run one client at a time.

Stops on SIGTERM or Ctrl-C; --save then writes the card's new state back to the
fixture. Status lines go to standard error; -v adds every frame.
"""


@sim.command("pn532", help=_HELP)
@click.option("--card", "card_path", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The card fixture in the field (ykt card new makes one).")
@click.option("--link", "link_path", required=True, type=click.Path(path_type=Path),
              help="Where to put the symlink to the pty (an existing symlink there is replaced).")
@click.option("--save", is_flag=True, help="On stop, write the card's new state back to the fixture file.")
@click.option("-v", "--verbose", is_flag=True, help="Also show every command and answer the chip handles.")
def pn532(card_path: Path, link_path: Path, save: bool, verbose: bool) -> None:
    from protocols.hexutil import to_hex
    from sim.fixture import load_fixture, save_fixture
    from sim.pn532 import Pn532Chip, Pn532PtyServer

    def status(line: str) -> None:
        click.echo(f"ykt sim pn532: {line}", err=True)

    card = load_fixture(card_path)
    chip = Pn532Chip(card)
    server = Pn532PtyServer(chip, link_path)
    handler = _StderrHandler(status)
    logger = logging.getLogger("sim.pn532")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)

    def stop(signum: int, frame: object) -> None:
        server.stop()

    def retap(signum: int, frame: object) -> None:
        server.request_retap()

    handlers = {signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGUSR1: retap}
    previous = {sig: signal.signal(sig, handler_) for sig, handler_ in handlers.items()}
    try:
        server.open()
        status(f"PN532 v1.6 on {link_path} -> {server.slave_name}; card {to_hex(card.serial)} "
               f"(UID {to_hex(card.image.uid)}, balance {card.balance} fen) from {card_path}")
        server.serve_forever()
    finally:
        for sig, handler_ in previous.items():
            signal.signal(sig, handler_)
        server.close()
        logger.removeHandler(handler)
        logger.setLevel(level)
    status(f"stopped ({chip.commands} commands, {chip.apdus} APDUs); card balance {card.balance} fen")
    if save:
        save_fixture(card, card_path)
        status(f"saved the card's state to {card_path}")


class _StderrHandler(logging.Handler):
    """The emulator's log lines as status lines."""

    def __init__(self, status: Callable[[str], None]) -> None:
        super().__init__()
        self._status = status

    def emit(self, record: logging.LogRecord) -> None:
        self._status(record.getMessage())
