"""A full composite purchase through the terminal core over pyscard → pcscd → vpcd → the simulated card and T=0
PSAM: journaled in SQLite, its TAC verified as the back office does, the debit read back from the saved fixture."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from protocols.card_files import TRANSIT_RECORD
from sim.fixture import load_image, save_fixture
from sim.issuing import issue_card, load_demo_keyset
from sim.psam import SimPsam
from terminal.clock import ManualClock
from terminal.drivers.pcsc import PcscLink
from terminal.fares import load_fares
from terminal.journal import SqliteJournal
from terminal.outcome import TapStatus
from terminal.records import DebitState
from terminal.settlement import verify
from terminal.validator import Validator

from .conftest import CARD_READER, SAM_READER

pytestmark = pytest.mark.peers

FARES = Path(__file__).resolve().parents[2] / "sim" / "fares" / "demo-flat.toml"
SERIAL = bytes.fromhex("03103640000000000042")
TERMINAL = bytes.fromhex("200041599997")
WHEN = dt.datetime(2025, 3, 1, 8, 30, 5)


def test_composite_purchase_through_pcscd(serve, tmp_path: Path) -> None:
    keyset = load_demo_keyset()
    card = issue_card(keyset, serial=SERIAL, balance=5000)
    psam = SimPsam(keyset, TERMINAL, tsn=0x57, t0=True)
    served = serve(card, psam)
    db = tmp_path / "validator.db"
    with PcscLink(CARD_READER, new_cards_only=True) as card_link, PcscLink(SAM_READER) as sam_link, \
            SqliteJournal(db) as journal:
        validator = Validator(card_link, sam_link, load_fares(FARES), journal, clock=ManualClock(WHEN))
        validator.start()
        assert validator.psam.terminal_id == TERMINAL
        outcome = validator.poll(10.0)
        assert outcome is not None
        assert outcome.status is TapStatus.ACCEPTED, outcome.message
        assert (outcome.card_serial, outcome.fare, outcome.balance_before, outcome.balance_after) == \
            (SERIAL, 200, 5000, 4800)
        assert outcome.mac2_verified is True
        assert outcome.tac is not None and len(outcome.tac) == 4
        entry = journal.get(outcome.journal_row)
        # a resting card is one tap: the next poll sees no new card
        assert validator.poll(0.3) is None

    record = entry.record
    assert record.state is DebitState.COMPLETE
    assert (record.card_serial, record.amount, record.balance_before, record.trans_type, record.terminal_id,
            record.tsn, record.when, record.offline_atc) == (SERIAL, 200, 5000, 0x09, TERMINAL, 0x57, WHEN, 0)
    assert record.tac == outcome.tac and record.mac2_verified is True

    report = verify(db, keyset)
    assert report.ok and report.verified == 1 and not report.mismatches

    # every byte went through pcscd: the card saw the purse commands, the T=0 PSAM answered 8070 by GET RESPONSE
    # (GET DATA UID, SELECT, READ BINARY 0x17, INITIALIZE, UPDATE CAPP DATA CACHE 0x1E, DEBIT)
    assert [command[:2].hex().upper() for command, _ in served.card_slot.history] == \
        ["FFCA", "00A4", "00B0", "8050", "80DC", "8054"]
    sam_exchanges = list(served.sam_slot.history)
    init = next(i for i, (command, _) in enumerate(sam_exchanges) if command[:2] == b"\x80\x70")
    assert sam_exchanges[init][1] == bytes.fromhex("6108")
    get_response, answer = sam_exchanges[init + 1]
    assert get_response == bytes.fromhex("00C0000008")
    assert answer[:4] == bytes.fromhex("00000057") and answer[-2:] == b"\x90\x00"

    served.stop()
    fixture = tmp_path / "card.json"
    save_fixture(card, fixture)
    image = load_image(fixture)
    assert (image.purse.balance, image.purse.offline_atc) == (4800, 1)
    newest = TRANSIT_RECORD.parse(image.transit_log[0])
    assert (newest.amount, newest.balance, newest.transaction_time) == (200, 4800, WHEN)
