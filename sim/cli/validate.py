"""``ykt validate``: the validator loop on real (or simulated) readers, one line per tap, journaled to SQLite."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import cli
from .journal import damaged_option, report_set_aside
from .trace import TRACE_HELP, open_trace

if TYPE_CHECKING:
    from terminal.outcome import TapOutcome

DEMO_FARES = Path(__file__).resolve().parent.parent / "fares" / "demo-flat.toml"


def _yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"


def _card_number(serial: bytes | None, technology: str = "") -> str:
    """The digits printed on a card: a CPU card's 19 (the serial's 20 BCD digits without the leading 0), an M1 card's
    16-digit card number (city, industry, issuer serial)."""
    from terminal.records import Technology, m1_card_number

    if serial is None:
        return "-"
    if technology == Technology.M1.value:
        serial = m1_card_number(serial)
        digits = serial.hex()
        return digits if digits.isdigit() else digits.upper()
    digits = serial.hex()
    return digits[1:] if digits.isdigit() and digits[0] == "0" else digits.upper()


def _tap_ms(outcome: TapOutcome) -> float:
    """Wall-clock time from the tap's first command to its last answer."""
    if not outcome.exchanges:
        return 0.0
    first, last = outcome.exchanges[0], outcome.exchanges[-1]
    return (last.start_ns + last.duration_ns - first.start_ns) / 1e6


def _line(outcome: TapOutcome, when: str) -> str:
    parts = [when, f"{outcome.status.value:<14}", f"card {_card_number(outcome.card_serial, outcome.technology)}",
             outcome.message]
    if outcome.tac is not None:
        parts.append(f"TAC {outcome.tac.hex().upper()}")
    if outcome.journal_row is not None:
        parts.append(f"row {outcome.journal_row}")
    count = len(outcome.exchanges)
    parts.append(f"({count} APDU{'' if count == 1 else 's'}, {_tap_ms(outcome):.1f} ms)")
    return "  ".join(parts)


def _json(outcome: TapOutcome, when: str) -> str:
    doc: dict[str, Any] = {
        "time": when,
        "status": outcome.status.value,
        "decline": outcome.decline.name.lower() if outcome.decline else None,
        "message": outcome.message,
        "detail": outcome.detail,
        "card_serial": None if outcome.card_serial is None else outcome.card_serial.hex().upper(),
        "technology": outcome.technology or None,
        "card_type": outcome.card_type,
        "fare": outcome.fare,
        "rule": outcome.rule,
        "balance_before": outcome.balance_before,
        "balance_after": outcome.balance_after,
        "tac": None if outcome.tac is None else outcome.tac.hex().upper(),
        "mac2_verified": outcome.mac2_verified,
        "recovered": outcome.recovered,
        "journal_row": outcome.journal_row,
        "apdus": len(outcome.exchanges),
        "duration_ms": round(_tap_ms(outcome), 3),
    }
    return json.dumps(doc, ensure_ascii=False)


@cli.command()
@click.option("--reader", "reader", metavar="DEVICE", required=True,
              help="The card reader: pcsc:<index|name>, pn532:<path>[@baud], sim:<fixture|random>.")
@click.option("--sam", "sam", metavar="DEVICE", required=True,
              help="The PSAM's slot: pcsc:<index|name>, sim:psam or sim:<keyset.json>.")
@click.option("--fares", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=DEMO_FARES,
              help="Fare file (docs/fares.md). Default: the demo flat fare, 2.00 CNY.")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("validator.db"), show_default=True, help="The SQLite debit journal (created if absent).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Validator settings (TOML, terminal/config.py). Default: built-in settings.")
@click.option("--blacklist", "blacklist_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A blacklist file made with 'ykt blacklist build'.")
@click.option("--taps", type=click.IntRange(min=1), metavar="N",
              help="Stop after N taps. Default: run until Ctrl-C or SIGTERM (one tap with a sim: card reader).")
@click.option("--poll", "poll_s", type=click.FloatRange(0.01, 60), default=0.5, show_default=True, metavar="SECONDS",
              help="How long each poll waits for a card; Ctrl-C and SIGTERM take effect between polls.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per tap instead of a line of text.")
@click.option("--save", is_flag=True,
              help="With a sim:<fixture> card reader: write the card's state back to the fixture, atomically, before "
                   "each answer that changed it (a kill at any moment loses nothing the card committed).")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help=TRACE_HELP)
@damaged_option(default=None)
def validate(reader: str, sam: str, fares: Path, journal_path: Path, config_path: Path | None,
             blacklist_path: Path | None, taps: int | None, poll_s: float, as_json: bool, save: bool,
             trace_path: Path | None, damaged: str | None) -> None:
    """Run the validator on a card reader and a PSAM: one line per tap on standard output, every debit journaled.

    A card resting on a PC/SC reader is one tap; lift it and tap again for the next.
    A sim: card is always in the field, so every poll is a tap of the same card.
    Stops after --taps taps, or on Ctrl-C / SIGTERM once the tap in progress is done,
    then prints a summary on standard error. Against pcscd and 'ykt sim vpcd':

    \b
        ykt validate --reader pcsc:0 --sam pcsc:1 --taps 1
    --damaged overrides the settings' damaged_rows (default: stop).
    """
    import dataclasses

    from sim.devices import SIM_TERMINAL, open_link, parse_device
    from terminal.blacklist import Blacklist
    from terminal.clock import SystemClock
    from terminal.config import ValidatorConfig, load_config
    from terminal.fares import load_fares
    from terminal.journal import SqliteJournal
    from terminal.outcome import TapStatus
    from terminal.validator import Validator

    card_spec, sam_spec = parse_device(reader), parse_device(sam)
    if save and (card_spec.kind != "sim" or card_spec.target == "random"):
        raise click.UsageError("--save needs a sim:<fixture file> card reader")
    if taps is None and card_spec.kind == "sim":
        taps = 1
        click.echo("note: a sim: card is always in the field; stopping after one tap (use --taps for more)", err=True)
    config = load_config(config_path) if config_path is not None else ValidatorConfig()
    if damaged is not None:
        config = dataclasses.replace(config, damaged_rows=damaged)
    rules = load_fares(fares)
    stopping: list[int] = []

    def stop(signum: int, frame: object) -> None:
        stopping.append(signum)

    tracer = None
    counts = {status: 0 for status in TapStatus}
    charged = 0
    with SqliteJournal(journal_path) as journal, open_link(card_spec, role="card", save=save) as card_link, \
            open_link(sam_spec, role="sam", tsn_after=journal.highest_tsn(SIM_TERMINAL)) as sam_link:
        blacklist = Blacklist.open(blacklist_path) if blacklist_path is not None else None
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            clock = SystemClock()
            if trace_path is not None:
                tracer = open_trace(trace_path, "validate", [(card_link.name, "card"), (sam_link.name, "sam")],
                                    config=config, fares=fares, clock=clock)
            validator = Validator(card_link, sam_link, rules, journal, clock=clock, blacklist=blacklist,
                                  config=config, tracer=tracer)
            validator.start()
            report_set_aside(journal)
            click.echo(f"validator ready: card reader {card_link.name}, PSAM {sam_link.name} (terminal "
                       f"{validator.psam.terminal_id.hex().upper()}), journal {journal_path}", err=True)
            while not stopping and (taps is None or sum(counts.values()) < taps):
                outcome = validator.poll(poll_s)
                if outcome is None:
                    continue
                counts[outcome.status] += 1
                if outcome.status is TapStatus.ACCEPTED:  # a recovered debit too: the card paid it
                    charged += outcome.fare
                when = validator.clock.now().isoformat(sep=" ")
                click.echo(_json(outcome, when) if as_json else _line(outcome, when))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if blacklist is not None:
                blacklist.close()
            if tracer is not None:
                tracer.close()
            tapped = sum(counts.values())
            click.echo(f"{tapped} tap{'' if tapped == 1 else 's'}: {counts[TapStatus.ACCEPTED]} accepted "
                       f"({_yuan(charged)} CNY charged), "
                       f"{counts[TapStatus.DECLINED]} declined, {counts[TapStatus.RETRY]} to tap again, "
                       f"{counts[TapStatus.OUT_OF_SERVICE]} out of service; journal {journal_path}"
                       + (" (stopped by signal)" if stopping else ""), err=True)
