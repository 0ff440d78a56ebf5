"""The debit protocol and its rules, run against every journal backend alike (memory, SQLite durable, SQLite group)."""

from __future__ import annotations

import dataclasses
import gc
import re
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.errors import YktError
from terminal.journal import (BadTransition, DuplicateDebit, InvalidDebit, Journal, JournalError, MemoryJournal,
                              SqliteJournal, UnknownRow)
from terminal.journal.memory import RowStore
from terminal.records import DebitRecord, DebitState, Evidence

WHEN = dt.datetime(2018, 3, 13, 16, 43, 29)
TAC = bytes.fromhex("F252E12F")
MAC2 = bytes.fromhex("CAEC0601")


class FakeClock:
    """Local time that moves one second per reading, from 2018-03-13 16:43:30."""

    def __init__(self) -> None:
        self.t = dt.datetime(2018, 3, 13, 16, 43, 30)

    def now(self) -> dt.datetime:
        current = self.t
        self.t += dt.timedelta(seconds=1)
        return current


def spec_record(**changes: object) -> DebitRecord:
    """The spec's end-to-end example purchase (§3.5) as an intent; ``changes`` override fields."""
    rec = DebitRecord(card_serial=bytes.fromhex("03104991585000011383"), issuer_id=bytes.fromhex("02403640FFFFFFFF"),
                      card_type=0x01, offline_atc=0x36, amount=200, balance_before=5000, trans_type=0x09,
                      terminal_id=bytes.fromhex("200041599997"), tsn=0x57, when=WHEN, key_version=1, algorithm=0,
                      mac1=bytes.fromhex("2B1D974F"), fare_note="flat")
    return dataclasses.replace(rec, **changes)  # type: ignore[arg-type]


BACKENDS = ("memory", "sqlite", "sqlite-group")


def open_journal(kind: str, path: Path, clock: FakeClock | None = None) -> Journal:
    clock = clock or FakeClock()
    if kind == "memory":
        return MemoryJournal(clock=clock)
    return SqliteJournal(path, clock=clock, group_commit=3 if kind == "sqlite-group" else None)


@pytest.fixture(params=BACKENDS)
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    j = open_journal(request.param, tmp_path / "journal.db")
    yield j
    j.close()


def test_intent_round_trips_every_field(journal: Journal) -> None:
    rec = spec_record()
    row = journal.record_intent(rec)
    entry = journal.get(row)
    assert entry.row_id == row == 1
    assert entry.record == rec
    assert entry.record is not rec
    assert entry.changed_at is None and entry.reason == ""


def test_complete_keeps_tac_mac2_and_time(journal: Journal) -> None:
    row = journal.record_intent(spec_record())
    journal.complete(row, TAC, MAC2, True)
    entry = journal.get(row)
    assert entry.record == spec_record(state=DebitState.COMPLETE, tac=TAC, mac2=MAC2, mac2_verified=True,
                                       evidence=Evidence.DEBIT)
    assert entry.changed_at == dt.datetime(2018, 3, 13, 16, 43, 30)
    assert journal.pending() == []


@pytest.mark.parametrize("verified", [True, False, None])
def test_mac2_verified_keeps_all_three_values(journal: Journal, verified: bool | None) -> None:
    row = journal.record_intent(spec_record())
    journal.complete(row, TAC, MAC2, verified)
    assert journal.get(row).record.mac2_verified is verified


def test_acknowledged_counts_completions(journal: Journal) -> None:
    rows = [journal.record_intent(spec_record(offline_atc=i, tsn=i)) for i in range(2)]
    for row in rows:
        journal.complete(row, TAC, MAC2, True)
    journal.void(journal.record_intent(spec_record(offline_atc=9, tsn=9)), "no proof")
    journal.flush()
    assert journal.acknowledged == 2


def test_ids_increase_and_entries_are_in_id_order(journal: Journal) -> None:
    rows = [journal.record_intent(spec_record(offline_atc=i, tsn=100 + i)) for i in range(5)]
    assert rows == [1, 2, 3, 4, 5]
    journal.complete(2, TAC, MAC2, True)
    journal.void(4, "card says no")
    assert [e.row_id for e in journal.entries()] == rows
    assert [e.row_id for e in journal.entries([DebitState.PENDING])] == [1, 3, 5]
    assert [e.row_id for e in journal.entries(["void", DebitState.COMPLETE])] == [2, 4]
    with pytest.raises(InvalidDebit, match="unknown state"):
        journal.entries(["paid"])


def test_void_keeps_reason_and_frees_the_counter_for_the_retry(journal: Journal) -> None:
    first = journal.record_intent(spec_record())
    journal.void(first, "805A: no proof (9406)")
    entry = journal.get(first)
    assert entry.record.state is DebitState.VOID and entry.record.tac is None
    assert entry.reason == "805A: no proof (9406)"
    # the card did not debit, so a fresh INIT returns the same ATC; the PSAM gives a new TSN
    retry = journal.record_intent(spec_record(tsn=0x58))
    journal.complete(retry, TAC, MAC2, True)
    assert journal.get(retry).record.state is DebitState.COMPLETE


def test_a_void_row_still_holds_its_tsn(journal: Journal) -> None:
    journal.void(journal.record_intent(spec_record()), "no proof")
    with pytest.raises(DuplicateDebit) as err:
        journal.record_intent(spec_record(offline_atc=0x37))
    assert err.value.existing == 1


@pytest.mark.parametrize("changes", [{"tsn": 0x58}, {"offline_atc": 0x37}],
                         ids=["same card and ATC", "same terminal and TSN"])
def test_duplicates_are_refused_with_the_existing_row(journal: Journal, changes: dict[str, int]) -> None:
    first = journal.record_intent(spec_record())
    journal.complete(first, TAC, MAC2, True)
    with pytest.raises(DuplicateDebit) as err:
        journal.record_intent(spec_record(**changes))
    assert err.value.existing == first
    assert isinstance(err.value, JournalError) and isinstance(err.value, YktError)
    assert [e.row_id for e in journal.entries()] == [first]
    assert journal.record_intent(spec_record(offline_atc=0x37, tsn=0x58)) == first + 1


def test_same_atc_on_another_card_and_same_tsn_on_another_terminal_are_fine(journal: Journal) -> None:
    journal.record_intent(spec_record())
    journal.record_intent(spec_record(card_serial=bytes.fromhex("03104991585000011384"), tsn=0x58))
    journal.record_intent(spec_record(terminal_id=bytes.fromhex("200041599998"), offline_atc=0x37))
    assert len(list(journal.entries())) == 3


def test_unconfirmed_row_blocks_its_counter_until_voided(journal: Journal) -> None:
    row = journal.record_intent(spec_record())
    journal.mark_unconfirmed(row)
    assert journal.pending() == []
    assert [e.row_id for e in journal.find_pending(spec_record().card_serial, include_unconfirmed=True)] == [row]
    # the card comes back later with the same counter: the debit never happened
    with pytest.raises(DuplicateDebit) as err:
        journal.record_intent(spec_record(tsn=0x60))
    journal.void(err.value.existing, "card counter still at the row's ATC")
    assert journal.record_intent(spec_record(tsn=0x60)) == row + 1


def test_unconfirmed_row_takes_a_late_proof(journal: Journal) -> None:
    row = journal.record_intent(spec_record())
    journal.mark_unconfirmed(row)
    journal.complete(row, TAC, MAC2, None)
    assert journal.get(row).record.state is DebitState.COMPLETE


@pytest.mark.parametrize(("first", "then"), [
    ("complete", "complete"), ("complete", "void"), ("complete", "mark_unconfirmed"),
    ("void", "complete"), ("void", "void"), ("void", "mark_unconfirmed"),
    ("mark_unconfirmed", "mark_unconfirmed"),
])
def test_final_and_repeated_changes_are_refused(journal: Journal, first: str, then: str) -> None:
    row = journal.record_intent(spec_record())
    _apply(journal, first, row)
    before = journal.get(row)
    with pytest.raises(BadTransition) as err:
        _apply(journal, then, row)
    assert err.value.row_id == row
    assert err.value.current is before.record.state
    assert journal.get(row) == before


def _apply(journal: Journal, change: str, row: int) -> None:
    if change == "complete":
        journal.complete(row, TAC, MAC2, True)
    elif change == "void":
        journal.void(row, "no proof")
    else:
        journal.mark_unconfirmed(row)


@pytest.mark.parametrize("change", ["complete", "void", "mark_unconfirmed"])
def test_unknown_rows(journal: Journal, change: str) -> None:
    journal.record_intent(spec_record())
    with pytest.raises(UnknownRow):
        _apply(journal, change, 99)
    with pytest.raises(UnknownRow):
        journal.get(99)


def test_pending_and_find_pending(journal: Journal) -> None:
    other = bytes.fromhex("03104991585000011384")
    a = journal.record_intent(spec_record())
    b = journal.record_intent(spec_record(card_serial=other, tsn=0x58))
    c = journal.record_intent(spec_record(offline_atc=0x37, tsn=0x59))
    journal.complete(b, TAC, MAC2, True)
    journal.mark_unconfirmed(c)
    assert [e.row_id for e in journal.pending()] == [a]
    assert [e.row_id for e in journal.find_pending(spec_record().card_serial)] == [a]
    assert [e.row_id for e in journal.find_pending(spec_record().card_serial, include_unconfirmed=True)] == [a, c]
    assert journal.find_pending(other) == []
    with pytest.raises(InvalidDebit):
        journal.find_pending(b"\x03\x10")


BAD_INTENTS = [
    ({"card_serial": bytes(9)}, "card_serial must be 10 bytes, got 9 bytes"),
    ({"card_serial": bytearray(10)}, "card_serial must be 10 bytes, got 10 bytes"),
    ({"card_serial": "03104991585000011383"}, "card_serial must be 10 bytes, got str"),
    ({"issuer_id": bytes(7)}, "issuer_id must be 8 bytes"),
    ({"terminal_id": bytes(12)}, "terminal_id must be 6 bytes"),
    ({"mac1": bytes(8)}, "mac1 must be 4 bytes"),
    ({"offline_atc": 0x10000}, "offline_atc must be an integer 0..FFFF"),
    ({"offline_atc": -1}, "offline_atc must be an integer 0..FFFF"),
    ({"amount": 2.0}, "amount must be an integer"),
    ({"amount": True}, "amount must be an integer"),
    ({"amount": "200"}, "amount must be an integer"),
    ({"tsn": 1 << 32}, "tsn must be an integer 0..FFFFFFFF"),
    ({"trans_type": 256}, "trans_type must be an integer 0..FF"),
    ({"card_type": None}, "card_type must be an integer"),
    ({"key_version": -1}, "key_version must be an integer"),
    ({"algorithm": 300}, "algorithm must be an integer"),
    ({"balance_before": 1 << 33}, "balance_before must be an integer"),
    ({"when": dt.date(2018, 3, 13)}, "when must be a datetime"),
    ({"state": DebitState.COMPLETE}, "an intent is pending"),
    ({"tac": TAC}, "an intent is pending"),
    ({"mac2_verified": False}, "an intent is pending"),
    ({"fare_note": None}, "fare_note must be text"),
    ({"fare_note": "transfer \ud800"}, "fare_note must be text that UTF-8 can encode, got str"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_INTENTS, ids=[m for _, m in BAD_INTENTS])
def test_malformed_intents_are_refused_naming_the_field(journal: Journal, changes: dict[str, object],
                                                        message: str) -> None:
    with pytest.raises(InvalidDebit, match=f"^debit intent: {message}"):
        journal.record_intent(spec_record(**changes))
    assert list(journal.entries()) == []


def test_negative_balance_is_accepted(journal: Journal) -> None:
    row = journal.record_intent(spec_record(balance_before=-150))
    assert journal.get(row).record.balance_before == -150


def test_not_a_record(journal: Journal) -> None:
    with pytest.raises(InvalidDebit, match="expected a DebitRecord, got dict"):
        journal.record_intent({"amount": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize(("args", "message"), [
    ((TAC[:3], MAC2, True), "TAC must be 4 bytes, got 3 bytes"),
    ((TAC, None, True), "MAC2 must be 4 bytes, got NoneType"),
    ((TAC, bytearray(MAC2), True), "MAC2 must be 4 bytes, got 4 bytes"),
    ((TAC, MAC2, 1), "mac2_verified must be True, False or None, got 1"),
])
def test_malformed_completions_are_refused(journal: Journal, args: tuple[object, ...], message: str) -> None:
    row = journal.record_intent(spec_record())
    with pytest.raises(InvalidDebit, match=message):
        journal.complete(row, *args)  # type: ignore[arg-type]
    assert journal.get(row).record.state is DebitState.PENDING


@pytest.mark.parametrize("reason", ["", "   ", None, "\udc80"])
def test_void_needs_a_reason(journal: Journal, reason: object) -> None:
    row = journal.record_intent(spec_record())
    with pytest.raises(InvalidDebit, match="a void needs a reason"):
        journal.void(row, reason)  # type: ignore[arg-type]


# -- every backend behaves like a plain model of the rules -------------------------------------------------------------

_OPS = st.lists(st.one_of(
    st.tuples(st.just("intent"), st.integers(0, 3), st.integers(0, 3), st.integers(0, 5)),  # card, ATC, TSN
    st.tuples(st.sampled_from(["complete", "void", "unconfirmed"]), st.integers(1, 8)),
    st.tuples(st.just("flush")),
), max_size=25)


_SOURCES = {"complete": ("pending", "unconfirmed"), "void": ("pending", "unconfirmed"), "unconfirmed": ("pending",)}


def _conflicts(rows: dict[int, list], card: int, atc: int, tsn: int) -> bool:
    return any((r[1:3] == [card, atc] and r[0] != "void") or r[3] == tsn for r in rows.values())


def _change(rows: dict[int, list], change: str, row_id: int) -> str:
    if rows[row_id][0] not in _SOURCES[change]:
        return "BadTransition"
    rows[row_id][0] = change
    return "ok"


def _model_run(ops: list[tuple]) -> tuple[list[str], dict[int, tuple]]:
    """The rules written as plainly as possible, every call durable: what each call does, and the rows at the end."""
    rows: dict[int, list] = {}
    outcomes: list[str] = []
    for op in ops:
        if op[0] == "intent":
            if _conflicts(rows, *op[1:]):
                outcomes.append("DuplicateDebit")
            else:
                rows[len(rows) + 1] = ["pending", *op[1:]]
                outcomes.append(f"row {len(rows)}")
        elif op[0] == "flush":
            outcomes.append("flushed")
        else:
            outcomes.append("UnknownRow" if op[1] not in rows else _change(rows, *op))
    return outcomes, {k: tuple(v) for k, v in rows.items()}


def _group_model_run(ops: list[tuple], limit: int = 3) -> tuple[list[str], dict[int, tuple]]:
    """The same rules under group commit: a batch holds ``limit`` intents; a duplicate of a row on disk is dropped when
    its batch is written (judged by the row's state then), and the next explicit flush reports it."""
    disk: dict[int, list] = {}
    batch: dict[int, list] = {}
    dropped: list[int] = []
    next_id = 1
    outcomes: list[str] = []

    def commit() -> None:
        for row_id, row in sorted(batch.items()):
            card, atc, tsn = row[1:]
            if row[0] == "void":  # voided before it was written: it no longer holds the card's counter
                card = -1
            if _conflicts(disk, card, atc, tsn):
                dropped.append(row_id)
            else:
                disk[row_id] = row
        batch.clear()

    for op in ops:
        if op[0] == "intent":
            if len(batch) >= limit:
                commit()
            if _conflicts(batch, *op[1:]):
                outcomes.append("DuplicateDebit")
            else:
                batch[next_id] = ["pending", *op[1:]]
                outcomes.append(f"row {next_id}")
                next_id += 1
        elif op[0] == "flush":
            commit()
            outcomes.append("DuplicateDebit" if dropped else "flushed")
            dropped.clear()
        else:
            change, row_id = op
            rows = batch if row_id in batch else disk
            outcomes.append("UnknownRow" if row_id not in rows else _change(rows, change, row_id))
    return outcomes, {k: tuple(v) for k, v in sorted({**disk, **batch}.items())}


def _journal_run(journal: Journal, ops: list[tuple]) -> tuple[list[str], dict[int, tuple]]:
    outcomes: list[str] = []
    for op in ops:
        try:
            if op[0] == "intent":
                _, card, atc, tsn = op
                rec = spec_record(card_serial=bytes(9) + bytes([card]), offline_atc=atc, tsn=tsn)
                outcomes.append(f"row {journal.record_intent(rec)}")
                continue
            if op[0] == "flush":
                journal.flush()
                outcomes.append("flushed")
                continue
            change, row_id = op
            if change == "complete":
                journal.complete(row_id, TAC, MAC2, True)
            elif change == "void":
                journal.void(row_id, "no proof")
            else:
                journal.mark_unconfirmed(row_id)
            outcomes.append("ok")
        except JournalError as exc:
            outcomes.append(type(exc).__name__)
    rows = {e.row_id: (e.record.state.value, e.record.card_serial[-1], e.record.offline_atc, e.record.tsn)
            for e in journal.entries()}
    return outcomes, rows


@pytest.mark.parametrize("kind", BACKENDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_backends_follow_the_model(kind: str, tmp_path_factory: pytest.TempPathFactory, ops: list[tuple]) -> None:
    journal = open_journal(kind, tmp_path_factory.mktemp("j") / "journal.db")
    ops = [*ops, ("flush",)]  # end on a commit, so the final rows are the durable ones
    try:
        assert _journal_run(journal, ops) == (_group_model_run(ops) if kind == "sqlite-group" else _model_run(ops))
    finally:
        journal.close()


# -- any well-formed record round-trips through every backend ----------------------------------------------------------

def _bytes(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=n, max_size=n)


_RECORDS = st.builds(
    DebitRecord, card_serial=_bytes(10), issuer_id=_bytes(8), card_type=st.integers(0, 0xFF),
    offline_atc=st.integers(0, 0xFFFF), amount=st.integers(0, 0xFFFFFFFF),
    balance_before=st.integers(-0xFFFFFFFF, 0xFFFFFFFF), trans_type=st.integers(0, 0xFF), terminal_id=_bytes(6),
    tsn=st.integers(0, 0xFFFFFFFF), when=st.datetimes(), key_version=st.integers(0, 0xFF),
    algorithm=st.integers(0, 0xFF), mac1=_bytes(4), fare_note=st.text())
_ENDINGS = st.sampled_from(["pending", "complete", "void", "unconfirmed"])


@pytest.mark.parametrize("kind", BACKENDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rec=_RECORDS, ending=_ENDINGS, tac=_bytes(4), mac2=_bytes(4), verified=st.sampled_from([True, False, None]),
       reason=st.text(min_size=1).filter(str.strip))
def test_any_record_round_trips(kind: str, tmp_path_factory: pytest.TempPathFactory, rec: DebitRecord, ending: str,
                                tac: bytes, mac2: bytes, verified: bool | None, reason: str) -> None:
    path = tmp_path_factory.mktemp("j") / "journal.db"
    journal = open_journal(kind, path)
    row = journal.record_intent(rec)
    expected = dataclasses.replace(rec)
    if ending == "complete":
        journal.complete(row, tac, mac2, verified)
        expected = dataclasses.replace(rec, state=DebitState.COMPLETE, tac=tac, mac2=mac2, mac2_verified=verified,
                                       evidence=Evidence.DEBIT)
    elif ending == "void":
        journal.void(row, reason)
        expected = dataclasses.replace(rec, state=DebitState.VOID, evidence=Evidence.DEBIT)
    elif ending == "unconfirmed":
        journal.mark_unconfirmed(row)
        expected = dataclasses.replace(rec, state=DebitState.UNCONFIRMED)
    journal.close()
    if kind != "memory":
        journal = open_journal(kind, path)  # read back from the file
    entry = journal.get(row)
    assert entry.record == expected
    assert entry.reason == (reason if ending == "void" else "")
    journal.close()


_EDGES = [sign * (edge + delta) for edge in (0, 0xFF, 0xFFFF, 0xFFFFFFFF) for delta in (-1, 0, 1) for sign in (1, -1)]
_ODD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 40), 1 << 40), st.floats(allow_nan=False),
                        st.binary(max_size=12), st.text(max_size=3), st.text(st.characters(categories=["Cs"])),
                        st.just(bytearray(10)), st.dates(), st.sampled_from(list(DebitState)))


def _check_agreement(rec: DebitRecord) -> None:
    from terminal.journal.base import _bad_field, _check_intent

    reason = _bad_field(rec)
    if reason:
        with pytest.raises(InvalidDebit, match=f"^debit intent: {re.escape(reason)}$"):
            _check_intent(rec)
    else:
        _check_intent(rec)


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(DebitRecord)])
@settings(max_examples=150)
@given(rec=_RECORDS, value=_ODD_VALUES)
def test_quick_check_and_diagnosis_agree(rec: DebitRecord, field: str, value: object) -> None:
    """The intent check has a fast path and a field-by-field diagnosis; they must accept exactly the same records."""
    setattr(rec, field, value)
    _check_agreement(rec)


@pytest.mark.parametrize("field", ["card_type", "offline_atc", "amount", "balance_before", "trans_type", "tsn",
                                   "key_version", "algorithm"])
def test_quick_check_and_diagnosis_agree_on_range_edges(field: str) -> None:
    for value in _EDGES:
        _check_agreement(spec_record(**{field: value}))


@pytest.mark.parametrize("freeze", [True, False])
def test_final_rows_of_a_long_lived_store_are_frozen(freeze: bool) -> None:
    store = RowStore(freeze=freeze)
    row = [None, "AA" * 10, "BB" * 8, 1, 5, 200, 1000, 9, "CC" * 6, 7, "2026-03-02T06:00:00", 1, 0, "DD" * 4, "",
           "pending", None, None, None, "", "", None]
    store.add(1, row)
    assert store.change(1, DebitState.COMPLETE, ["complete", "11" * 4, "22" * 4, 1, "", "debit"],
                        "2026-03-02T06:00:01")
    kept = store.rows[1]
    assert list(kept)[15:] == ["complete", "11" * 4, "22" * 4, 1, "", "debit", "2026-03-02T06:00:01"]
    # frozen: a tuple of plain values, which the garbage collector stops tracking once it has seen it
    assert type(kept) is (tuple if freeze else list)
    gc.collect()
    assert gc.is_tracked(kept) is not freeze
    # final either way: no change applies to it, even one that names its state as a source
    with pytest.raises(BadTransition):
        store.change(1, DebitState.VOID, ["void", None, None, None, "why", "counter"], "2026-03-02T06:00:02",
                     ("complete",) if freeze else None)
    assert store.rows[1] is kept
