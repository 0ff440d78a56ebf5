"""``ykt sim``: emulated hardware, simulated cards and PSAMs behind real reader software (pcscd's vpcd driver here).

Other modules add their emulators to the :data:`sim` group by importing it.
"""

from __future__ import annotations

import signal
from pathlib import Path

import click

from . import cli

_VPCD_HELP = """Serve a simulated card (and PSAM) to pcscd through vsmartcard's vpcd reader driver.

The card is in reader 'Virtual PCD 00 00' (TCP PORT), the PSAM of --sam in
'Virtual PCD 00 01' (PORT+1). vpcd, inside pcscd, listens on those ports and this
command connects to them; it waits for pcscd and reconnects when pcscd restarts.
Debian 12: apt-get install pcscd vsmartcard-vpcd. Its /etc/reader.conf.d/vpcd uses
port 35963, the default here. Start pcscd in the foreground (as root, or as a user
owning /run/pcscd after 'sudo install -d -o $USER /run/pcscd'):

\b
    rm -f /run/pcscd/pcscd.comm /run/pcscd/pcscd.pid
    pcscd --foreground --apdu &
    ykt card new --out card.json
    ykt sim vpcd --card card.json --sam psam --save &
    ykt validate --reader pcsc:0 --sam pcsc:1 --taps 1

Stop pcscd with SIGTERM: after SIGKILL its stale pid and socket files block the next
start. For other ports give pcscd a directory holding only one file, with these lines,
start it with 'pcscd --foreground -c DIR' and pass --port 40100 here:

\b
    FRIENDLYNAME "Virtual PCD"
    DEVICENAME /dev/null:40100
    LIBPATH /usr/lib/pcsc/drivers/serial/libifdvpcd.so
    CHANNELID 40100

Stops on SIGTERM or Ctrl-C (the cards leave the readers); --save then writes the
card's new state back to the fixture. Status lines go to standard error.
"""


@cli.group("sim")
def sim() -> None:
    """Emulated hardware: simulated cards and PSAMs behind real reader software."""


@sim.command("vpcd", help=_VPCD_HELP)
@click.option("--card", "card_path", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The card fixture to serve (ykt card new makes one).")
@click.option("--sam", "sam", metavar="psam|KEYSET",
              help="Also serve a simulated T=0 PSAM on PORT+1: 'psam' for the demo key set, or a key set file.")
@click.option("--sam-tsn", "sam_tsn", type=click.IntRange(0, 0xFFFFFFFF), metavar="N",
              help="The PSAM's first TSN. Default: the Unix time (a simulated PSAM keeps no state between runs, and a "
                   "journal must never see a TSN twice).")
@click.option("--port", type=click.IntRange(1, 65534), default=35963, show_default=True,
              help="vpcd's port for the card's reader; the PSAM's is the next one.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Where pcscd runs.")
@click.option("--save", is_flag=True, help="On stop, write the card's new state back to the fixture file.")
@click.option("--no-quickack", is_flag=True,
              help="Leave out the TCP_QUICKACK workaround (each APDU then costs about 48 ms; for measurements).")
@click.option("-v", "--verbose", is_flag=True, help="Also show every APDU and its answer.")
def vpcd(card_path: Path, sam: str | None, sam_tsn: int | None, port: int, host: str, save: bool, no_quickack: bool,
         verbose: bool) -> None:
    from protocols.hexutil import to_hex
    from sim.devices import sim_psam
    from sim.fixture import load_fixture, save_fixture
    from sim.vpcd import VpcdServer, VpcdSlot

    def status(line: str) -> None:
        click.echo(f"ykt sim vpcd: {line}", err=True)

    def show(name: str, command: bytes, response: bytes) -> None:
        click.echo(f"{name} > {to_hex(command)}\n{name} < {to_hex(response)}", err=True)

    card = load_fixture(card_path)
    devices = [("card", card)] if sam is None else [("card", card), ("PSAM", sim_psam(sam, tsn=sam_tsn))]
    slots = [VpcdSlot(device, port + offset, host=host, name=name, quickack=not no_quickack,
                      on_exchange=show if verbose else None)
             for offset, (name, device) in enumerate(devices)]
    server = VpcdServer(slots, status=status)

    def stop(signum: int, frame: object) -> None:
        server.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    status(f"serving card {to_hex(card.serial)} (balance {card.balance} fen) from {card_path}")
    try:
        server.serve()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()
    served = ", ".join(f"{slot.name} {slot.apdus} APDUs" for slot in slots)
    status(f"stopped ({served}); card balance {card.balance} fen")
    if save:
        save_fixture(card, card_path)
        status(f"saved the card's state to {card_path}")

