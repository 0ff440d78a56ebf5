"""``ykt blacklist``: build, update, query and inspect the card blacklist file a validator maps."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import cli

if TYPE_CHECKING:
    from terminal.blacklist import Progress

_FILE = click.Path(dir_okay=False, path_type=Path)
_JSON = click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")


def _report(as_json: bool, doc: dict[str, Any], text: str) -> None:
    """The command's result: ``doc`` as JSON, or ``text`` for people."""
    from sim.render import to_json

    click.echo(to_json(doc) if as_json else text)


@contextlib.contextmanager
def _progress_bars() -> Iterator[Progress | None]:
    """A progress callback drawing tqdm bars on stderr, or ``None`` when stderr is not a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}
    units = {"read": ("B", True), "write": ("serials", True), "copy": ("serials", True)}

    def update(phase: str, done: int, total: int | None) -> None:
        bar = bars.get(phase)
        if bar is None:
            unit, scale = units.get(phase, ("it", False))
            bar = bars[phase] = tqdm(desc=phase, total=total, unit=unit, unit_scale=scale, file=sys.stderr,
                                     leave=False)
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        for bar in bars.values():
            bar.close()


@cli.group()
def blacklist() -> None:
    """The card blacklist: a memory-mapped file of 10-byte application serials (file 0x15), checked bucket by bucket.

    Serials are written as 20 digits or as the 19-digit number printed on the card (the leading 0 dropped).
    Input lists are text (one serial per line, # comments) or CSV (a column named "serial", or one column).
    """


@blacklist.command()
@click.argument("src", type=_FILE)
@click.option("--out", "out", type=_FILE, required=True, help="The list file to write (replaced atomically).")
@click.option("--format", "fmt", type=click.Choice(["auto", "text", "csv"]), default="auto", show_default=True,
              help="auto: a .csv file is CSV, anything else text.")
@click.option("--generation", type=click.IntRange(0, 2**32 - 1), default=1, show_default=True,
              help="The generation number written in the header.")
@_JSON
def build(src: Path, out: Path, fmt: str, generation: int, as_json: bool) -> None:
    """Build the list file OUT from the list SRC. Nothing is written if any entry is bad."""
    from terminal.blacklist import build_blacklist

    with _progress_bars() as progress:
        report = build_blacklist(src, out, fmt=None if fmt == "auto" else fmt, generation=generation,
                                 progress=progress)
    _report(as_json, {"path": report.path, "count": report.count, "entries": report.entries,
                      "duplicates": report.duplicates, "generation": report.generation},
            f"{report.path}: {report.count:,} serials ({report.entries:,} read, {report.duplicates:,} duplicates), "
            f"generation {report.generation}")


@blacklist.command()
@click.argument("file", type=_FILE)
@click.option("--add", "add", type=_FILE, help="A list of serials to add.")
@click.option("--remove", "remove", type=_FILE, help="A list of serials to remove.")
@click.option("--out", "out", type=_FILE, help="Write the result here instead of replacing FILE.")
@_JSON
def update(file: Path, add: Path | None, remove: Path | None, out: Path | None, as_json: bool) -> None:
    """Apply additions and removals to FILE (replaced atomically); the generation goes up by one."""
    from terminal.blacklist import apply_delta

    if add is None and remove is None:
        raise click.UsageError("nothing to do: give --add and/or --remove")
    with _progress_bars() as progress:
        report = apply_delta(file, add=add, remove=remove, out=out, progress=progress)
    _report(as_json, {"path": report.path, "count": report.count, "generation": report.generation,
                      "added": report.added, "already_present": report.already_present, "removed": report.removed,
                      "absent": report.absent},
            f"{report.path}: {report.count:,} serials, generation {report.generation}: "
            f"{report.added:,} added, {report.already_present:,} already listed, "
            f"{report.removed:,} removed, {report.absent:,} not listed")


@blacklist.command()
@click.argument("file", type=_FILE)
@click.argument("serials", nargs=-1, required=True)
@_JSON
@click.pass_context
def check(ctx: click.Context, file: Path, serials: tuple[str, ...], as_json: bool) -> None:
    """Say whether each SERIAL is listed in FILE.

    Exit code: 0 when none is listed, 1 when any is listed, 2 on bad input or an unusable file.
    """
    from protocols import bcd
    from terminal.blacklist import Blacklist, parse_serial

    wanted = [parse_serial(text) for text in serials]
    with Blacklist.open(file) as listed:
        hits = [serial in listed for serial in wanted]
    answers = list(zip(wanted, hits, strict=True))
    lines = [f"{bcd.digits(serial)}  {'listed' if hit else 'not listed'}" for serial, hit in answers]
    found = [{"serial": bcd.digits(serial), "listed": hit} for serial, hit in answers]
    _report(as_json, {"file": file, "serials": found, "any_listed": any(hits)}, "\n".join(lines))
    if any(hits):
        ctx.exit(1)


@blacklist.command()
@click.argument("file", type=_FILE)
@click.option("--check-order", is_flag=True,
              help="Also check that every record is in its bucket and in order (slower).")
@_JSON
def info(file: Path, check_order: bool, as_json: bool) -> None:
    """Check every bucket of FILE (a lookup checks only the buckets it touches) and show its header and size."""
    from terminal.blacklist import Blacklist

    with Blacklist.open(file) as listed:
        largest = listed.verify(check_order=check_order)
        header = listed.header
        buckets = f"{listed.buckets:,} bucket{'s' if listed.buckets > 1 else ''}"
        rows = [
            ("file", str(file)),
            ("format", f"version {header.version}, {header.record_size}-byte records in {buckets} (by CRC-32)"),
            ("serials", f"{header.count:,}"),
            ("generation", str(header.generation)),
            ("checksums", "every bucket's CRC-32 verified"),
            ("order", "every record checked" if check_order else "not checked (--check-order checks it)"),
            ("largest bucket", f"{largest:,} records"),
            ("size", f"{file.stat().st_size:,} bytes"),
        ]
        doc = {"file": file, "version": header.version, "record_size": header.record_size, "count": header.count,
               "generation": header.generation, "buckets": listed.buckets, "largest_bucket": largest,
               "checksums_verified": True, "order_checked": check_order, "size": file.stat().st_size}
    _report(as_json, doc, "\n".join(f"{name:<15} {value}" for name, value in rows))
