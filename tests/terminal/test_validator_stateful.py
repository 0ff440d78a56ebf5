"""The validator under any sequence of taps, tears, late re-taps, restarts, copied cards, blacklist updates, clock jumps
and rides on another validator, with money checked against what the cards themselves committed.

Invariants, after every step, for the validator under test (A, a SQLite journal restarted at will):

* **Each ride paid at most once.** A ride is a tap at A and the taps of the same card at A that follow while the last
  one ended "please tap again" or "card removed" (however late the rider comes back); the card commits at most one
  debit over a ride's taps. A tap at another validator (B) starts a ride there.
* **Every committed debit journaled, nothing else.** For each (card serial, counter) a card committed at A's terminal,
  A's journal holds a row that is complete or still open (pending, unconfirmed), never only a void one. Money: what
  the cards paid at A equals the money of A's complete rows plus the money of A's open rows whose debit the card
  committed.
* **Nothing is claimed that no card paid.** A complete row's (serial, counter) was committed at A by a card with that
  serial.
* **No card stops the validator.** No tap ends out of service and the validator's ``out_of_service`` stays ``None``.

Copies of a card share its serial, and the validator can only believe the card in front of it: a copy's evidence may
settle a row another copy made (a copy that spent the counter elsewhere voids it; the next tap of the copy that paid is
then a new ride). So the first two invariants hold for every serial held by one card; for copied serials only the last
two are checked (and the copies are declined as such when they show a counter the journal holds).

``YKT_STATEFUL_EXAMPLES`` (default 20) and ``YKT_STATEFUL_STEPS`` (default 30) make runs longer.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections import Counter
import os
import random
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from sim.card import SimCard
from sim.issuing import LOCAL_ISSUER, issue_card, load_demo_keyset
from sim.psam import demo_psam
from sim.reader import SimReader, SimSamSlot, Tear
from sim.tears import Witness
from terminal.blacklist import Blacklist, build_blacklist
from terminal.clock import ManualClock
from terminal.fares import load_fares
from terminal.journal import MemoryJournal, SqliteJournal
from terminal.outcome import Decline, TapStatus
from terminal.records import DebitState
from terminal.validator import Validator

from .validator_support import FARES

START = dt.datetime(2026, 11, 24, 7, 0, 0)
A_TERMINAL = bytes.fromhex("200041599997")
B_TERMINAL = bytes.fromhex("200041590002")
KEYSET = load_demo_keyset()
JUMPS = st.sampled_from([0, 1, 2, 29, 30, 31, 59, 60, 61, 600, 3600, 86400, 7 * 86400])
TEARS = st.none() | st.tuples(st.booleans(), st.integers(0, 8))
_OPEN = (DebitState.PENDING, DebitState.UNCONFIRMED)


class ValidatorMachine(RuleBasedStateMachine):
    cards = Bundle("cards")

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="ykt-stateful-"))
        self.clock = ManualClock(START)
        self.fares = load_fares(FARES / "demo-flat.toml")
        self.reader, self.sam = SimReader(timing=None), SimSamSlot(demo_psam(A_TERMINAL), timing=None)
        self.journal = SqliteJournal(self.directory / "a.db", clock=self.clock)
        self.blacklist: Blacklist | None = None
        self.validator = self._validator()
        self.b_reader = SimReader(timing=None)
        self.b_journal = MemoryJournal(clock=self.clock)
        self.b = Validator(self.b_reader, SimSamSlot(demo_psam(B_TERMINAL), timing=None), self.fares, self.b_journal,
                           clock=self.clock)
        self.b.start()
        self.witnesses: list[Witness] = []
        self.riding: dict[int, int] = {}  # id(witness) -> its debits committed when its ride at A began
        self.open_ride: set[int] = set()  # witnesses whose last tap at A asked for another tap
        self.double_charges: set[bytes] = set()  # serials of the cards charged twice for one ride
        self.stopped = 0
        self.serials = 0
        self.blacklists = 0

    def _validator(self) -> Validator:
        validator = Validator(self.reader, self.sam, self.fares, self.journal, clock=self.clock,
                              blacklist=self.blacklist)
        validator.start()
        return validator

    def teardown(self) -> None:
        self.journal.close()
        if self.blacklist is not None:
            self.blacklist.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- the riders ---------------------------------------------------------------------------------------------------

    @initialize(target=cards)
    def first_card(self) -> Witness:
        return self._issue()

    @rule(target=cards)
    def another_card(self) -> Witness:
        return self._issue()

    def _issue(self) -> Witness:
        self.serials += 1
        witness = Witness(issue_card(KEYSET, issuer_id=LOCAL_ISSUER, serial=f"031029{self.serials:014d}",
                                     balance=1_000_000, start=dt.date(2024, 1, 1), expiry=dt.date(2044, 1, 1),
                                     randbytes=random.Random(self.serials).randbytes))
        self.witnesses.append(witness)
        return witness

    @rule(target=cards, original=cards)
    def copy_a_card(self, original: Witness) -> Witness:
        """A copy of a card image (a clone, or a card restored from an earlier copy later on)."""
        witness = Witness(SimCard(copy.deepcopy(original.card.image), randbytes=random.Random(-self.serials).randbytes))
        self.witnesses.append(witness)
        return witness

    @rule(card=cards, wait=JUMPS, tear=TEARS)
    def tap(self, card: Witness, wait: int, tear: tuple[bool, int] | None) -> None:
        """A tap at A: a re-tap when the card's last tap at A asked for one, else a new ride."""
        self.clock.advance(wait)
        key = id(card)
        if key not in self.open_ride:
            self.riding[key] = len(card.committed)
        if tear is not None:
            self.reader.plan_tear((Tear.after if tear[0] else Tear.before)(tear[1]))
        self.reader.put(card)
        try:
            outcome = self.validator.poll()
        finally:
            if self.reader.present:
                self.reader.take()
            self.reader.cancel_tears()
        assert outcome is not None
        if outcome.status is TapStatus.OUT_OF_SERVICE:
            self.stopped += 1
        at_a = sum(1 for c in card.committed[self.riding[key]:] if c.terminal == A_TERMINAL)
        if at_a > 1:
            self.double_charges.add(card.serial)
        if outcome.status is TapStatus.RETRY or outcome.decline is Decline.CARD_REMOVED:
            self.open_ride.add(key)
        else:
            self.open_ride.discard(key)

    @rule(card=cards, wait=JUMPS)
    def ride_elsewhere(self, card: Witness, wait: int) -> None:
        """A tap at another validator of the operator: the card's ride at A, if one was open, was abandoned."""
        self.clock.advance(wait)
        self.open_ride.discard(id(card))
        self.b_reader.put(card)
        try:
            self.b.poll()
        finally:
            if self.b_reader.present:
                self.b_reader.take()

    # -- the validator ------------------------------------------------------------------------------------------------

    @rule()
    def restart(self) -> None:
        """Power off and on: the journal is closed and reopened, a new validator starts on it."""
        self.journal.close()
        self.journal = SqliteJournal(self.directory / "a.db", clock=self.clock)
        self.validator = self._validator()

    @rule(wait=JUMPS)
    def time_passes(self, wait: int) -> None:
        self.clock.advance(wait)
        self.validator.expire()

    @rule(data=st.data())
    def blacklist_update(self, data: st.DataObject) -> None:
        listed = data.draw(st.lists(st.sampled_from(self.witnesses), max_size=2))
        self.blacklists += 1
        source, path = self.directory / f"list-{self.blacklists}.txt", self.directory / f"list-{self.blacklists}.ykbl"
        source.write_text("".join(w.serial.hex() + "\n" for w in listed))
        build_blacklist(source, path, fmt="text", generation=self.blacklists)
        if self.blacklist is not None:
            self.blacklist.close()
        self.blacklist = self.validator.blacklist = Blacklist.open(path)

    # -- what must hold -----------------------------------------------------------------------------------------------

    @invariant()
    def no_card_stops_the_validator(self) -> None:
        assert self.stopped == 0 and self.validator.out_of_service is None

    def _copied(self) -> set[bytes]:
        """Serials held by more than one card."""
        held = Counter(w.serial for w in self.witnesses)
        return {serial for serial, cards in held.items() if cards > 1}

    @invariant()
    def each_ride_paid_at_most_once(self) -> None:
        assert not self.double_charges - self._copied()

    @invariant()
    def every_committed_debit_is_journaled_and_nothing_else(self) -> None:
        copied = self._copied()
        committed = {(c.serial, c.atc): c.amount for w in self.witnesses for c in w.committed
                     if c.terminal == A_TERMINAL}
        complete, open_rows = {}, {}
        for entry in self.journal.entries():
            rec = entry.record
            key = (rec.card_serial, rec.offline_atc)
            if rec.state is DebitState.COMPLETE:
                assert key in committed, f"row {entry.row_id} complete, but the card never made that debit"
                complete[key] = rec.amount
            elif rec.state in _OPEN:
                open_rows[key] = rec.amount
        # the journal holds a (serial, counter) in one row that is not void at the most, so a debit the card made is
        # never only in a void row: it is in a complete or an open one
        single = {key: amount for key, amount in committed.items() if key[0] not in copied}
        for key, amount in single.items():
            assert key in complete or key in open_rows, f"a debit the card committed is not journaled: {key}"
            assert complete.get(key, open_rows.get(key)) == amount
        paid = sum(single.values())
        assert paid == sum(a for k, a in complete.items() if k[0] not in copied) + \
            sum(a for k, a in open_rows.items() if k in single)


TestValidatorMachine = ValidatorMachine.TestCase
TestValidatorMachine.settings = settings(
    max_examples=int(os.environ.get("YKT_STATEFUL_EXAMPLES", "20")),
    stateful_step_count=int(os.environ.get("YKT_STATEFUL_STEPS", "30")),
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
