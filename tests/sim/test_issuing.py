"""Issuing: card keys derived as the PSAM derives them, the files personalisation writes, refusals that name the field
(never a key), and seeded populations (deterministic, mixed, valid, with the odd traits QA asks for)."""

from __future__ import annotations

import collections
import datetime as dt

import pytest

from protocols import card_commands as cc
from protocols.card_files import MANAGEMENT_INFO, PUBLIC_APP_INFO, CardType
from protocols.crypto import Algorithm, TdesKey, diversify
from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex as h
from sim.card import DEFAULT_ATS, KeySlot
from sim.fixture import dumps
from sim.issuing import (
    DEFAULT_ISSUERS, DEMO_KEYSET, LOCAL_ISSUER, ODD_TRAITS, IssueError, card_keys, generate_population, issue_card,
    load_demo_keyset, personalise,
)
from sim.psam import SimPsam
from terminal.keyset import KeyUsage, parse_keyset

from .card_support import ISSUER, KEYSET, SELECT_EP, SERIAL, TERMINAL, composite_purchase, e2e_psam, sw

MASTERS = {"purchase": "00112233445566778899AABBCCDDEEFF", "load": "F0E1D2C3B4A5968778695A4B3C2D1E0F",
           "tac": "FFEEDDCCBBAA99887766554433221100", "damk": "404142434445464748494A4B4C4D4E4F"}
ON = dt.date(2025, 6, 1)


def test_demo_keyset_is_test_only() -> None:
    assert DEMO_KEYSET.name == "demo-keyset.json" and load_demo_keyset().test_only


def test_card_keys_are_the_psams_derivation() -> None:
    card = issue_card(KEYSET, issuer_id=ISSUER, serial=SERIAL)
    slot = card.image.keys[1]
    assert slot.version == 1
    assert slot.purchase.export() == h("1EA06A5CD2621CFB23F65172C5C2A893")  # spec §3.5 DPK
    assert slot.tac.export() == h("2917830D4877A288623E37D2B382009D")  # spec §3.5 DTK
    for usage, key in (("load", slot.load), ("damk", card.image.maintenance_key)):
        expected = diversify(TdesKey(h(MASTERS[usage])), SERIAL[2:], ISSUER)
        assert key.export() == expected.export()
    assert card.image.keys[1].load.export() == KEYSET.card_key(KeyUsage.LOAD, 1, issuer_id=ISSUER,
                                                               card_serial=SERIAL).export()


def test_personalised_files_and_activation() -> None:
    card = issue_card(KEYSET, issuer_id=ISSUER, serial="3104991585000011383", balance=1234, overdraft=50,
                      card_type=CardType.STUDENT, start=dt.date(2021, 2, 3), expiry=dt.date(2031, 2, 2))
    image = card.image
    assert image.public_info == h("02403640FFFFFFFF 02 01 03104991585000011383 20210203 20310202 0000")
    assert image.management == h("00000156 3600 3640 0001 02 00000000") + bytes(45)
    assert image.cardholder == h("0000") + b" " * 52 + h("00")
    assert list(image.process_records) == [1, 2]
    assert image.process_records[1] == h("27017D0101") + bytes(123)
    assert image.process_records[2] == h("27027D0101") + bytes(123)
    assert image.transaction_log == [] and image.transit_log == [] and image.proofs == {}
    assert (image.purse.balance, image.purse.overdraft_limit, image.purse.offline_atc) == (1234, 50, 0)
    assert image.passbook is None and not image.blocked and not image.ppse
    activation = card.power_on()
    assert activation.protocol == "T=CL" and activation.sak == 0x20 and activation.ats == DEFAULT_ATS
    assert len(activation.uid) == 4 and activation.atqa == h("0004")
    assert activation.uid == issue_card(KEYSET, issuer_id=ISSUER, serial=SERIAL).image.uid  # fixed by the serial
    assert card.info.card_number == "3104991585000011383"


def test_explicit_fields() -> None:
    card = issue_card(KEYSET, issuer_id=h("02002900FFFFFFFF"), serial=SERIAL, city=h("2901"), province=h("2999"),
                      interop_class=0, uid=h("1D2233445566 77"), app_version=2, ppse=True)
    info = MANAGEMENT_INFO.parse(card.image.management)
    assert (info.city_code, info.province_code, info.interop_class) == (h("2901"), h("2999"), 0)
    assert PUBLIC_APP_INFO.parse(card.image.public_info).app_version == 2
    assert card.image.atqa == h("0044") and card.image.ppse


def test_issued_cards_work_with_a_psam_of_the_same_key_set() -> None:
    psam = e2e_psam()
    for issuer in DEFAULT_ISSUERS:
        card = issue_card(KEYSET, issuer_id=issuer, serial=SERIAL, balance=500)
        purchase = composite_purchase(card, psam, 120)
        assert purchase.debit is not None and purchase.debit.sw == 0x9000 and purchase.mac2_check == 0x9000


def test_several_key_indexes() -> None:
    keyset = parse_keyset({"format": "yikatong-keyset", "version": 1, "test_only": True, "algorithm": "3DES",
                           "diversification_levels": 2,
                           "master_keys": {"purchase": {"01": MASTERS["purchase"], "02": MASTERS["load"]},
                                           "tac": {"01": MASTERS["tac"], "02": MASTERS["damk"]}}})
    card = issue_card(keyset, serial=SERIAL)
    assert sorted(card.image.keys) == [1, 2] and card.image.keys[2].version == 2
    assert card.image.keys[1].load is None and card.image.maintenance_key is None
    only_two = issue_card(keyset, serial=SERIAL, key_indexes=[2], balance=100)
    assert list(only_two.image.keys) == [2]
    assert card_keys(keyset, LOCAL_ISSUER, SERIAL, [2])[2].purchase.export() == only_two.image.keys[2].purchase.export()
    only_two.power_on()
    assert sw(only_two, SELECT_EP) == 0x9000
    assert sw(only_two, cc.InitializeForCappPurchase(1, 10, TERMINAL).to_bytes()) == 0x9403
    psam = SimPsam(keyset, TERMINAL, key_index=2)
    psam.power_on()
    psam.execute(h("00A40000028011"))
    purchase = composite_purchase(only_two, psam, 10, key_index=2)
    assert purchase.init.key_version == 2 and purchase.mac2_check == 0x9000


@pytest.mark.parametrize("fields, message", [
    ({"serial": "123"}, "serial '123': 3 digits, expected 20 (or 19 without the leading 0)"),
    ({"serial": h("0310499158500001138A")}, "serial: 0310499158500001138A is not packed BCD"),
    ({"serial": b"\x03"}, "serial: 10 bytes of BCD"),
    ({"issuer_id": h("02403640FFFF")}, "issuer_id: 8 bytes"),
    ({"start": dt.date(2030, 1, 1), "expiry": dt.date(2029, 1, 1)}, "start: the start date 2030-01-01 is after"),
    ({"balance": -1}, "balance: 0 to 2147483647 fen"),
    ({"balance": -51, "overdraft": 50}, "balance: -50 to 2147483647 fen"),
    ({"overdraft": 1 << 24}, "overdraft: 0 to 16777215 fen"),
    ({"card_type": 256}, "card_type: one byte"),
    ({"interop_class": -1}, "interop_class: two bytes"),
    ({"city": h("29")}, "city: 2 bytes"),
    ({"uid": h("88112233")}, "uid: UID 88112233: byte 0 is the cascade tag 88"),
    ({"uid": h("0011223344")}, "uid: UID of 5 bytes"),
    ({"algorithm": Algorithm.SM4}, "algorithm: the key set is 3DES; it issues 3DES cards only"),
    ({"maintenance_index": 2}, "maintenance_index: the key set has no damk key at index 02"),
])
def test_issue_refusals_name_the_field(fields: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"serial": SERIAL} | fields
    with pytest.raises(IssueError) as caught:
        issue_card(KEYSET, **arguments)  # type: ignore[arg-type]
    assert message in str(caught.value)
    for master in MASTERS.values():
        assert master not in str(caught.value).upper()


def test_key_set_without_purchase_keys() -> None:
    keyset = parse_keyset({"format": "yikatong-keyset", "version": 1, "test_only": True, "algorithm": "3DES",
                           "diversification_levels": 1, "master_keys": {"tac": {"01": MASTERS["tac"]}}})
    with pytest.raises(IssueError, match="keys: the key set has no purchase key"):
        issue_card(keyset, serial=SERIAL)
    with pytest.raises(IssueError, match=r"keys\.03: the key set has no purchase key at this index"):
        issue_card(KEYSET, serial=SERIAL, key_indexes=[3])


def test_personalise_checks_key_algorithms() -> None:
    with pytest.raises(IssueError, match=r"keys\.01\.purchase: not a SM4 key"):
        personalise(issuer_id=ISSUER, serial=SERIAL, algorithm=Algorithm.SM4,
                    keys={1: KeySlot(1, purchase=TdesKey(bytes(16)))})
    with pytest.raises(IssueError, match="keys: a card needs at least one key index"):
        personalise(issuer_id=ISSUER, serial=SERIAL, algorithm=Algorithm.TDES, keys={})


def test_a_key_slot_without_a_tac_key_answers_9403() -> None:
    slot = KeySlot(2, purchase=TdesKey(bytes(16)))
    with pytest.raises(ProtocolError, match=r"^key version 02 has no TAC key \(DTK\)$") as raised:
        slot.tac_key()
    assert raised.value.sw == 0x9403


# --- populations ------------------------------------------------------------------------------------------------------

def test_population_is_deterministic() -> None:
    first = generate_population(KEYSET, 40, seed=7, on=ON)
    again = generate_population(KEYSET, 40, seed=7, on=ON)
    other = generate_population(KEYSET, 40, seed=8, on=ON)
    assert [dumps(card.image) for card in first] == [dumps(card.image) for card in again]
    assert [dumps(card.image) for card in first] != [dumps(card.image) for card in other]
    # the cards' randoms come from the seed too
    first[0].power_on()
    again[0].power_on()
    assert first[0].randbytes(8) == again[0].randbytes(8)


def test_population_by_default_is_valid_and_mixed() -> None:
    cards = generate_population(KEYSET, 300, seed=1, on=ON)
    assert len(cards) == 300
    assert len({card.serial for card in cards}) == 300
    infos = [card.info for card in cards]
    managements = [MANAGEMENT_INFO.parse(card.image.management) for card in cards]
    assert all(info.start_date <= ON <= info.expiry_date for info in infos)
    assert all(m.interop_class == 1 for m in managements)
    assert not any(card.image.blocked for card in cards)
    assert all(500 <= card.balance <= 50000 for card in cards)
    types = collections.Counter(m.card_type for m in managements)
    assert set(types) == {t.value for t in CardType} and types[CardType.NORMAL] > 150
    issuers = collections.Counter(info.issuer_id for info in infos)
    assert set(issuers) == set(DEFAULT_ISSUERS) and issuers[LOCAL_ISSUER] > 100
    uid_sizes = collections.Counter(len(card.image.uid) for card in cards)
    assert set(uid_sizes) == {4, 7}


def test_population_odd_traits() -> None:
    cards = generate_population(KEYSET, 200, seed=3, odd_share=1.0, on=ON)
    seen = collections.Counter()
    for card in cards:
        info = card.info
        management = MANAGEMENT_INFO.parse(card.image.management)
        traits = {
            "expired": info.expiry_date < ON,
            "not_yet_valid": info.start_date > ON,
            "blocked": card.image.blocked,
            "low_balance": card.balance < 100,
            "non_interoperable": management.interop_class == 0,
        }
        assert sum(traits.values()) == 1, traits
        seen.update(name for name, present in traits.items() if present)
    assert set(seen) == set(ODD_TRAITS)


def test_population_odd_share() -> None:
    cards = generate_population(KEYSET, 400, seed=5, odd_share=0.1, on=ON)
    odd = sum(card.image.blocked or card.balance < 100 or not card.info.start_date <= ON <= card.info.expiry_date
              or MANAGEMENT_INFO.parse(card.image.management).interop_class == 0 for card in cards)
    assert 20 <= odd <= 65


def test_population_cards_pay() -> None:
    psam = e2e_psam()
    for card in generate_population(KEYSET, 12, seed=11, on=ON):
        purchase = composite_purchase(card, psam, 100)
        assert purchase.debit is not None and purchase.debit.sw == 0x9000 and purchase.mac2_check == 0x9000


@pytest.mark.parametrize("arguments, message", [
    ({"n": -1}, "n: a count of cards"), ({"odd_share": 1.5}, "odd_share: a share between 0 and 1"),
    ({"issuers": ()}, "issuers: at least one issuer"),
])
def test_population_refusals(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(IssueError, match=message):
        generate_population(KEYSET, **({"n": 1, "seed": 0} | arguments))  # type: ignore[arg-type]
