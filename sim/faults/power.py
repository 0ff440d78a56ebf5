"""Scenario: the validator's power cut at random moments.

``ykt validate`` runs as a process of its own on an on-disk journal, with a simulated card whose state lives in its
fixture file (``--save``: written atomically before each answer that changed it, as a card commits to EEPROM before
it answers), the simulated PSAM, a trace and its JSON lines kept. Each run taps one of a few cards over and over
(``repeat_tap_s = 0``: every poll is a tap) and is killed with SIGKILL at a random moment: a quarter of the runs
while the process starts (journal opening, the PSAM's start, open rows taken up), the others up to half a second
after its first tap, anywhere in a tap. After each kill, from the files alone:

* the journal's ``PRAGMA integrity_check`` says ``ok``;
* every debit each card committed (its counter on disk, from where the campaign began) is in a row that is complete
  or still open (pending, unconfirmed), never only in a void one or in none; every complete row is on its card; no
  two live rows share a card's counter; each card's balance is its starting balance less what its counter says;

and the next run is the restart: its first tap must come out accepted (a card with a debit left open is settled
first, "recovered" or charged as its ride), never out of service, never declined as a copy of the card.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from protocols.errors import YktError
from terminal.journal import SqliteJournal
from terminal.records import DebitState

from ..card.image import CardImage
from ..fixture import load_image, save_fixture
from ..issuing import issue_card, load_demo_keyset
from ..process import YktProcess
from .campaign import Campaign, Figures

FARE = 200  # the demo flat fare
CARDS = 4
BALANCE = 50_000_000
START_UP_S = 0.4  # about how long ``ykt validate`` takes to its first tap here
TAPPING_S = 0.5  # kills fall up to this long after the first tap (a few hundred taps: the journal stays small)
TAP_WAIT_S = 30.0  # a restart that shows no tap in this long is a stopped validator (a loaded CI machine is slow)


@dataclass
class _Card:
    path: Path
    atc: int
    balance: int


def power_cuts(campaign: Campaign) -> Figures:
    figures = Figures("power", "The validator killed with SIGKILL at random moments, then restarted")
    rng = random.Random(f"power {campaign.seed}")
    where = campaign.path("power")
    where.mkdir(parents=True, exist_ok=True)
    journal = where / "journal.db"
    config = where / "validator.toml"
    config.write_text("format = 1\nrepeat_tap_s = 0\n", encoding="utf-8")
    cards = [_issue(campaign, n) for n in range(CARDS)]
    runs = campaign.size(8, 500)
    counts: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    with campaign.progress("power", runs, "kill") as advance:
        for run in range(runs):
            card = rng.choice(cards)
            start_up = rng.random() < 0.25
            process = YktProcess(
                ["validate", "--reader", f"sim:{card.path}", "--save", "--sam", "sim:psam", "--journal", str(journal),
                 "--config", str(config), "--taps", "100000000", "--poll", "0.01", "--json",
                 "--trace", str(where / f"trace-{run:04d}.jsonl")],
                ready=lambda: True, log=where / "validate.log", output=where / f"run-{run:04d}.jsonl")
            began = dt.datetime.now().replace(microsecond=0)
            process.start()
            if start_up:
                time.sleep(rng.uniform(0.0, START_UP_S))
                counts["kills_while_starting"] += 1
            elif _first_tap(process):
                time.sleep(rng.uniform(0.0, TAPPING_S))
                counts["kills_while_tapping"] += 1
            else:
                counts["restarts_without_a_tap"] += 1
                figures.note(f"run {run}: no tap in {TAP_WAIT_S:g} s: {process.tail(3)}")
            status = process.kill()
            counts["killed_by_sigkill"] += status == -9
            counts["exited_before_the_kill"] += status not in (-9, None)
            lines = _outcomes(process)
            statuses.update(str(line.get("decline") or line.get("status", "?")) for line in lines)
            if not start_up and lines and lines[0].get("status") != "accepted":
                counts["first_tap_not_accepted"] += 1
                figures.note(f"run {run}: first tap after the restart: {lines[0]}")
            for line in lines:
                campaign.said(str(line.get("detail", "")))
            _check(journal, cards, counts, figures, run, began)
            advance(1)
    _figures(figures, runs, counts, statuses)
    return figures


def _issue(campaign: Campaign, number: int) -> _Card:
    card = issue_card(load_demo_keyset(), serial=f"0310364000000000{number + 90:04d}", balance=BALANCE,
                      randbytes=random.Random(f"power card {campaign.seed} {number}").randbytes)
    campaign.keys.add_card(card.image)
    path = campaign.cards / f"power-{number}.json"
    save_fixture(card, path)
    return _Card(path, card.image.purse.offline_atc, card.image.purse.balance)


def _first_tap(process: YktProcess) -> bool:
    """Wait until the process has written the JSON line of a tap; whether it did in time."""
    deadline = time.monotonic() + TAP_WAIT_S
    assert process.output is not None
    while time.monotonic() < deadline:
        if b"\n" in process.output.read_bytes():
            return True
        if not process.running:
            return False
        time.sleep(0.005)
    return False


def _outcomes(process: YktProcess) -> list[dict[str, object]]:
    """The taps a run printed (the last line may be cut short by the kill: left out)."""
    assert process.output is not None
    lines = []
    for text in process.output.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            continue
    return lines


def _check(journal: Path, cards: list[_Card], counts: Counter[str], figures: Figures, run: int,
           since: dt.datetime) -> None:
    """What must hold on disk after a kill (``since``: when the killed run began)."""
    if not journal.exists():
        return
    with sqlite3.connect(journal) as db:  # a writer's connection: it recovers the write-ahead log as a restart does
        verdict = db.execute("PRAGMA integrity_check").fetchall()
    if verdict != [("ok",)]:
        counts["integrity_check_failures"] += 1
        figures.note(f"run {run}: PRAGMA integrity_check: {verdict[:3]}")
    with SqliteJournal(journal, readonly=True) as read:
        rows = [entry.record for entry in read.entries()]
    live = Counter((row.card_serial, row.offline_atc) for row in rows if row.state is not DebitState.VOID)
    counts["duplicate_rows"] += sum(n - 1 for n in live.values() if n > 1)
    counts["kills_leaving_a_debit_pending"] += any(row.state is DebitState.PENDING and row.when >= since
                                                   for row in rows)
    for card in cards:
        try:
            image = load_image(card.path)
            if not isinstance(image, CardImage):
                raise YktError("not a T-Union card fixture any more")
        except YktError as exc:  # a fixture that does not load is a card that lost what it committed
            counts["card_fixtures_unreadable"] += 1
            figures.note(f"run {run}: {card.path.name}: {type(exc).__name__}: {exc}")
            continue
        serial = image.public_info[10:20]
        atc, balance = image.purse.offline_atc, image.purse.balance
        mine = [row for row in rows if row.card_serial == serial]
        journaled = {row.offline_atc for row in mine if row.state is not DebitState.VOID}
        missing = [n for n in range(card.atc, atc) if n not in journaled]
        counts["committed_debits_not_journaled"] += len(missing)
        counts["complete_rows_not_on_the_card"] += sum(1 for row in mine if row.state is DebitState.COMPLETE
                                                        and row.offline_atc >= atc)
        counts["balances_off"] += balance != card.balance - FARE * (atc - card.atc)
        if missing:
            figures.note(f"run {run}: card {serial.hex()} committed counters {missing[:5]} not journaled")


def _figures(figures: Figures, runs: int, counts: Counter[str], statuses: Counter[str]) -> None:
    figures.count("runs", runs)
    for name in ("kills_while_starting", "kills_while_tapping", "killed_by_sigkill",
                 "kills_leaving_a_debit_pending"):
        figures.count(name, counts[name])
    figures.count("taps", sum(statuses.values()))
    figures.count("outcomes", dict(sorted(statuses.items())))
    figures.must_be_zero("committed_debits_not_journaled", counts["committed_debits_not_journaled"])
    figures.must_be_zero("complete_rows_not_on_the_card", counts["complete_rows_not_on_the_card"])
    figures.must_be_zero("duplicate_rows", counts["duplicate_rows"])
    figures.must_be_zero("integrity_check_failures", counts["integrity_check_failures"])
    figures.must_be_zero("card_fixtures_unreadable", counts["card_fixtures_unreadable"])
    figures.must_be_zero("balances_off", counts["balances_off"])
    figures.must_be_zero("restarts_without_a_tap", counts["restarts_without_a_tap"])
    figures.must_be_zero("first_tap_not_accepted", counts["first_tap_not_accepted"])
    figures.must_be_zero("exited_before_the_kill", counts["exited_before_the_kill"])
    figures.must_be_zero("out_of_service", statuses["out_of_service"])
    figures.must_be_zero("declined_as_copies", statuses["duplicate_card"])
