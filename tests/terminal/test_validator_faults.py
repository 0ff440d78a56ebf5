"""Faults around the tap: a missing or failing PSAM, a card or PSAM answering garbage, a journal that cannot write.

Whatever happens, nothing is charged that is not journaled, and the validator says why it stopped.
"""

from __future__ import annotations

import pytest

from sim.psam import demo_psam
from sim.scripted import ApduPattern, ScriptedCard, Step
from terminal.errors import OutOfService
from terminal.journal import JournalStorageError, MemoryJournal
from terminal.outcome import Decline, TapStatus
from terminal.records import DebitState

from .validator_support import Rig, card


class Garbling:
    """A device wrapper that answers garbage to commands starting with ``prefix``, after running them."""

    def __init__(self, device, prefix: bytes, answer: bytes) -> None:
        self.device, self.prefix, self.answer = device, prefix, answer

    def power_on(self):
        return self.device.power_on()

    def execute(self, apdu: bytes) -> bytes:
        response = self.device.execute(apdu)
        return self.answer if apdu.startswith(self.prefix) else response


class Dying:
    """A PSAM that stops answering (its slot raises) from command ``prefix`` on."""

    def __init__(self, device, prefix: bytes) -> None:
        self.device, self.prefix, self.dead = device, prefix, False

    def power_on(self):
        return self.device.power_on()

    def execute(self, apdu: bytes) -> bytes:
        from terminal.errors import CardRemoved

        if self.dead or apdu.startswith(self.prefix):
            self.dead = True
            raise CardRemoved("PSAM contact lost")
        return self.device.execute(apdu)


def test_missing_psam_keeps_the_validator_out_of_service():
    rig = Rig(start=False)
    rig.sam.take()
    with pytest.raises(OutOfService, match="no PSAM in the SAM slot"):
        rig.validator.start()
    rig.reader.put(card())
    with pytest.raises(OutOfService, match="no PSAM"):
        rig.validator.poll()


def test_psam_answering_garbage_at_start():
    rig = Rig(start=False, psam=Garbling(demo_psam(), bytes.fromhex("00B096"), b"\x01"))
    with pytest.raises(OutOfService, match="PSAM answered garbage"):
        rig.validator.start()


def test_psam_refusing_start_up():
    rig = Rig(start=False, psam=Garbling(demo_psam(), bytes.fromhex("00A40000"), bytes.fromhex("6A82")))
    with pytest.raises(OutOfService, match="PSAM refused start-up: PSAM SELECT DF 8011: 6A82"):
        rig.validator.start()


def test_psam_dies_before_mac1_nothing_is_charged():
    rig, c = Rig(psam=Dying(demo_psam(), bytes.fromhex("8070"))), card()
    outcome = rig.tap(c)
    assert outcome.status is TapStatus.OUT_OF_SERVICE
    assert "PSAM not answering (INIT SAM FOR PURCHASE)" in outcome.detail
    assert c.balance == 10000 and list(rig.journal.entries()) == []
    with pytest.raises(OutOfService):
        rig.tap(card("03102900000000000009"))


def test_psam_dies_at_mac2_the_debit_is_still_journaled():
    rig, c = Rig(psam=Dying(demo_psam(), bytes.fromhex("8072"))), card()
    outcome = rig.tap(c)
    assert outcome.status is TapStatus.ACCEPTED and c.balance == 9800
    assert outcome.mac2_verified is None and "debit journaled; then PSAM not answering" in outcome.detail
    [entry] = rig.journal.entries()
    assert entry.record.state is DebitState.COMPLETE and entry.record.tac == outcome.tac
    rig.check_tacs()
    with pytest.raises(OutOfService):
        rig.validator.poll()


def test_psam_garbage_for_mac1():
    rig, c = Rig(psam=Garbling(demo_psam(), bytes.fromhex("8070"), bytes.fromhex("0102039000"))), card()
    outcome = rig.tap(c)
    assert outcome.status is TapStatus.OUT_OF_SERVICE and "garbage" in outcome.detail
    assert c.balance == 10000 and list(rig.journal.entries()) == []


def test_wrong_psam_keys_mac1_rejected_and_voided():
    from sim.psam import SimPsam
    from terminal.keyset import parse_keyset

    wrong = parse_keyset({"format": "yikatong-keyset", "version": 1, "test_only": True, "algorithm": "3DES",
                          "diversification_levels": 2,
                          "master_keys": {"purchase": {"01": "0F" * 16}, "tac": {"01": "1E" * 16}}}, source="wrong")
    rig, c = Rig(psam=SimPsam(wrong, bytes.fromhex("200041599997"))), card()
    outcome = rig.tap(c)
    assert (outcome.status, outcome.decline) == (TapStatus.DECLINED, Decline.MAC1_REJECTED)
    assert outcome.detail == "DEBIT: 9302 (MAC invalid)"
    assert c.balance == 10000
    [entry] = rig.journal.entries()
    assert entry.record.state is DebitState.VOID and "9302" in entry.reason


@pytest.mark.parametrize("prefix,answer,detail", [
    ("00A404", "6F01029000", "malformed answer"),
    ("00B097", "00009000", "malformed answer: ManagementInfo: expected 60 bytes, got 2"),
    ("8050", "00009000", "malformed answer"),
    ("8050", "6E00", "card INITIALIZE FOR PURCHASE: 6E00 (class not supported)"),
    ("80DC", "6581", "card UPDATE CAPP DATA CACHE 0x1E: 6581 (memory failure)"),
])
def test_card_garbage_before_debit_charges_nothing(prefix, answer, detail):
    c = card()
    rig = Rig()
    outcome = rig.tap(Garbling(c, bytes.fromhex(prefix), bytes.fromhex(answer)))
    assert (outcome.status, outcome.decline) == (TapStatus.DECLINED, Decline.CARD_ERROR)
    assert detail in outcome.detail
    assert c.balance == 10000 and rig.journaled() == 0


def test_card_garbage_for_debit_is_settled_as_a_tear():
    c = card()
    rig = Rig()
    outcome = rig.tap(Garbling(c, bytes.fromhex("8054"), bytes.fromhex("01029000")))
    assert outcome.status is TapStatus.RETRY and c.balance == 9800
    back = rig.tap(c, advance=2)
    assert back.recovered and rig.journaled() == 200
    rig.check_tacs()


def test_journal_failure_before_debit_sends_no_debit():
    class Broken(MemoryJournal):
        def record_intent(self, rec):
            raise JournalStorageError("disk full")

    rig, c = Rig(journal=Broken()), card()
    outcome = rig.tap(c)
    assert outcome.status is TapStatus.OUT_OF_SERVICE and outcome.detail == "journal: disk full"
    assert c.balance == 10000
    assert "8054" not in [e.command[:2].hex().upper() for e in outcome.exchanges]


def test_scripted_card_answering_nothing_useful():
    odd = ScriptedCard([Step(ApduPattern.parse("00A4040008A000000632010105"), bytes.fromhex("9000"))])
    outcome = Rig().tap(odd)
    assert (outcome.status, outcome.decline) == (TapStatus.DECLINED, Decline.CARD_ERROR)


def test_reader_gone_is_raised_from_poll():
    from terminal.errors import ReaderGone

    rig = Rig()
    rig.reader.close()
    with pytest.raises(ReaderGone):
        rig.validator.poll()


def test_t0_psam_through_get_response():
    rig, c = Rig(psam=demo_psam(t0=True)), card()
    outcome = rig.tap(c)
    assert outcome.accepted and c.balance == 9800
    sam_commands = [e.command[:2].hex().upper() for e in outcome.exchanges if e.link == "sam"]
    assert sam_commands == ["8070", "00C0", "8072"]


class GarbledActivation:
    """A card whose activation the reader cannot make sense of once (``error``), then a good card."""

    def __init__(self, device, error: Exception) -> None:
        self.device, self.error = device, error

    def power_on(self):
        error, self.error = self.error, None
        if error is not None:
            raise error
        return self.device.power_on()

    def execute(self, apdu: bytes) -> bytes:
        return self.device.execute(apdu)


@pytest.mark.parametrize("error", ["malformed", "timeout"])
def test_an_activation_gone_wrong_is_no_tap_and_the_validator_serves_on(error: str):
    from protocols.errors import ProtocolError
    from terminal.errors import LinkTimeout

    raised = ProtocolError("ATS: bad length") if error == "malformed" else LinkTimeout("no answer to RATS")
    rig, good = Rig(), card()
    rig.reader.put(GarbledActivation(good, raised))
    assert rig.validator.poll() is None
    outcome = rig.validator.poll()
    assert outcome is not None and outcome.accepted and good.balance == 9800
