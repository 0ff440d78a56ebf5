"""Cards of other schemes at a T-Union validator: each declined as a card of its own scheme, named, never charged.

The cards are scripted with the bytes real cards of those schemes answer, as Trip Reader's card emulator
(domosekai/cardemulator, HCEService.kt) plays them back to card readers.
"""

from __future__ import annotations

from protocols.fci import DirectoryEntry, Fci
from protocols.hexutil import parse_hex, to_hex
from protocols.schemes import MOHURD, T_UNION_CASH
from sim.scripted import ApduPattern, ScriptedCard, Step
from terminal.outcome import Decline, TapStatus

from .validator_support import Rig

SELECT_T_UNION = "00A4040008A000000632010105"
SELECT_PPSE = "00A404000E325041592E5359532E444446303100"
SELECT_FID_1001 = "00A40000021001"
SELECT_MOHURD = "00A4040009A0000000038698070100"
# Trip Reader's card emulator: a Shenzhen Tong card's FCI, and a Hangzhou MOHURD card's.
SZT_FCI = "6F3284075041592E535A54A5279F0801029F0C200000000000000000FD44000051800000E63C1D292017120120271201101000009000"
HZ_FCI = "6F2E8409A00000000386980701A5219F0C1E8475310000000000000031003100000151073028201912252069122500009000"


def scripted(*exchanges: tuple[str, str]) -> ScriptedCard:
    return ScriptedCard([Step(ApduPattern.parse(command, prefix=True), parse_hex(answer))
                         for command, answer in exchanges], strict=True)


def test_a_shenzhen_tong_card_is_declined_as_one():
    rig = Rig()
    szt = scripted((SELECT_T_UNION, "6A82"), (SELECT_PPSE, "6A82"), (SELECT_FID_1001, SZT_FCI))
    outcome = rig.tap(szt)
    assert outcome is not None and outcome.status is TapStatus.DECLINED
    assert outcome.decline is Decline.SCHEME_NOT_ACCEPTED and outcome.detail == "Shenzhen Tong 深圳通"
    assert outcome.message == "card not accepted here (Shenzhen Tong 深圳通)"
    szt.check()
    assert len(outcome.exchanges) == 3 and list(rig.journal.entries()) == []


def test_a_mohurd_card_answering_fid_1001_without_an_fci_is_named_by_its_own_select():
    rig = Rig()
    hangzhou = scripted((SELECT_T_UNION, "6A82"), (SELECT_PPSE, "6A82"), (SELECT_FID_1001, "9000"),
                        (SELECT_MOHURD, HZ_FCI))
    outcome = rig.tap(hangzhou)
    assert outcome is not None and outcome.decline is Decline.SCHEME_NOT_ACCEPTED
    assert outcome.message == "card not accepted here (MOHURD city card 住建部城市一卡通)"
    hangzhou.check()


def test_a_card_listing_its_purse_in_a_ppse_is_named_from_the_directory():
    # Built with the codec: a directory listing a T-Union cash application and a MOHURD purse.
    directory = Fci.ppse([DirectoryEntry(T_UNION_CASH.aids[0], b"MOT_T_CASH", 1), DirectoryEntry(MOHURD.aids[0])])
    card = scripted((SELECT_T_UNION, "6A82"), (SELECT_PPSE, to_hex(directory.to_bytes()) + "9000"))
    outcome = Rig().tap(card)
    assert outcome is not None and outcome.detail == "MOHURD city card 住建部城市一卡通"
    card.check()


def test_a_select_answered_with_another_application_is_that_scheme():
    card = scripted((SELECT_T_UNION, HZ_FCI))
    outcome = Rig().tap(card)
    assert outcome is not None and outcome.decline is Decline.SCHEME_NOT_ACCEPTED
    assert outcome.detail == "MOHURD city card 住建部城市一卡通" and len(outcome.exchanges) == 1


def test_a_card_that_names_no_scheme_is_not_a_t_union_card():
    card = scripted((SELECT_T_UNION, "6A82"), (SELECT_PPSE, "6A82"), (SELECT_FID_1001, "6A82"),
                    (SELECT_MOHURD, "6A82"))
    outcome = Rig().tap(card)
    assert outcome is not None and outcome.decline is Decline.NOT_TRANSIT_CARD
    assert outcome.message == "not a T-Union card (SELECT: 6A82 (file or application not found))"
    card.check()


def test_a_blocked_t_union_card_is_not_probed():
    card = scripted((SELECT_T_UNION, "6283"))
    outcome = Rig().tap(card)
    assert outcome is not None and outcome.decline is Decline.CARD_LOCKED and len(outcome.exchanges) == 1
