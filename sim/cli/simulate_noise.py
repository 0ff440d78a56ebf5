"""``ykt sim noise``: a noisy serial line between a serial driver and an emulated device."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from .simulate import sim

_HELP = """Relay a serial device through a line that corrupts or drops a share of the bytes.

\b
LINK becomes a pty a driver opens like any serial port; the bytes go on to
DEVICE (an emulator's link) and back, each one damaged with probability --rate
(a --drop-share of the damaged ones lost, the rest corrupted), from a seeded
generator per direction. A device that goes away (its process killed) is
opened again once it is back, the driver's side staying open:

\b
    ykt sim pn532 --card card.json --link /tmp/pn532 &
    ykt sim noise --device /tmp/pn532 --link /tmp/pn532-noisy --rate 0.01 &
    ykt validate --reader pn532:/tmp/pn532-noisy --sam sim:psam --taps 1

Stops on SIGTERM or Ctrl-C and prints how many bytes it damaged.
"""


@sim.command("noise", help=_HELP)
@click.option("--device", "device", required=True, type=click.Path(path_type=Path),
              help="The serial device to relay to (an emulator's link, /dev/pts/N).")
@click.option("--link", "link_path", required=True, type=click.Path(path_type=Path),
              help="Where to put the symlink to the noisy line's pty.")
@click.option("--rate", type=click.FloatRange(0.0, 1.0), default=0.001, show_default=True,
              help="Share of the bytes damaged, each way (0.01 is 1%).")
@click.option("--drop-share", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Share of the damaged bytes that are lost; the others are corrupted.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the damage.")
def noise(device: Path, link_path: Path, rate: float, drop_share: float, seed: int) -> None:
    from sim.serial_noise import LineNoise, NoisyRelay

    to_device = LineNoise(rate, seed, "host->device", drop_share)
    to_host = LineNoise(rate, seed, "device->host", drop_share)
    relay = NoisyRelay(device, link_path, to_device=to_device, to_host=to_host)

    def stop(signum: int, frame: object) -> None:
        relay.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        relay.open()
        click.echo(f"ykt sim noise: {rate:.2%} of bytes damaged (seed {seed}) on {link_path} -> {device}", err=True)
        relay.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        relay.close()
    for name, line in (("to the device", to_device), ("to the host", to_host)):
        click.echo(f"ykt sim noise: {name}: {line.seen} bytes, {line.corrupted} corrupted, {line.dropped} lost",
                   err=True)
