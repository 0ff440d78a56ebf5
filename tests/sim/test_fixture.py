"""Card fixtures: byte-exact round trips, saving after use and replaying, every validation message, corrupt JSON,
atomic saving, and the example fixtures shipped in sim/fixtures."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from protocols import card_commands as cc
from protocols.crypto import purchase_tac, tac_key
from protocols.hexutil import parse_hex as h
from sim.card import PurseState
from sim.fixture import (
    FixtureError, dumps, image_from_dict, image_to_dict, load_fixture, load_image, loads, save_fixture,
)

from .card_support import SELECT_EP, TERMINAL, call, composite_purchase, e2e_card, e2e_psam, fixed_random, sw

FIXTURES = Path(__file__).resolve().parents[2] / "sim" / "fixtures"
DEMO_MASTERS = ("00112233445566778899AABBCCDDEEFF", "F0E1D2C3B4A5968778695A4B3C2D1E0F",
                "FFEEDDCCBBAA99887766554433221100", "404142434445464748494A4B4C4D4E4F")
RECORD_1E = h("03 0000000279001102 04 0000 0000 0000 15 00000000 0000224A 20250114142937 5840 12215840FFFFFFFF "
              "000000000000")


def used_card():  # type: ignore[no-untyped-def]
    """A card with a little of everything: a purchase with CAPP records, a load on the passbook, a proof, a blocked
    flag and a description."""
    card = e2e_card(balance=5000, passbook=PurseState(100, 20, 3, 4), ppse=True)
    psam = e2e_psam()
    records = (cc.UpdateCappDataCache(0x1E, 0, RECORD_1E).to_bytes(),)
    purchase = composite_purchase(card, psam, 250, records=records)
    assert purchase.debit is not None and purchase.debit.sw == 0x9000
    card.image.blocked = True
    card.image.description = "a used card, 用过的卡"
    return card


def test_round_trip_is_byte_exact(tmp_path: Path) -> None:
    card = used_card()
    path = tmp_path / "card.json"
    save_fixture(card, path)
    text = path.read_text(encoding="utf-8")
    assert text == dumps(card.image) and text.endswith("}\n")
    loaded = load_image(path)
    assert image_to_dict(loaded) == image_to_dict(card.image)
    save_fixture(loaded, tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()
    data = json.loads(text)
    assert list(data) == ["format", "version", "description", "activation", "algorithm", "blocked", "ppse", "purse",
                          "passbook", "files", "records", "keys", "maintenance_key", "proofs"]
    assert data["purse"] == {"balance": 4750, "overdraft_limit": 0, "offline_atc": 0x37, "online_atc": 0}
    assert data["records"]["1E"] == [RECORD_1E.hex().upper()]
    assert list(data["proofs"]) == ["09"] and data["proofs"]["09"]["atc"] == 0x37


def test_issued_fixture_holds_card_keys_only(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    save_fixture(e2e_card(), path)
    text = path.read_text()
    assert "1EA06A5CD2621CFB23F65172C5C2A893" in text  # the card's own DPK
    for master in DEMO_MASTERS:
        assert master not in text


def test_save_after_use_and_replay(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    save_fixture(e2e_card(balance=1000), path)
    outcomes = []
    for _ in range(2):  # replaying the same fixture gives the same bytes
        card = load_fixture(path, randbytes=fixed_random())
        purchase = composite_purchase(card, e2e_psam(), 300)
        assert purchase.debit is not None
        outcomes.append(purchase.debit.data)
    assert outcomes[0] == outcomes[1] and len(outcomes[0]) == 8
    save_fixture(card, path)
    after = load_fixture(path)
    assert after.balance == 700 and after.image.purse.offline_atc == 0x37
    after.power_on()
    assert call(after, SELECT_EP).sw == 0x9000
    assert call(after, cc.GetTransactionProve(0x09, 0x37).to_bytes()).data == card.image.proofs[9].mac2 + \
        card.image.proofs[9].tac


def test_loaded_card_keys_still_work() -> None:
    card = load_fixture(FIXTURES / "demo-card.json")
    purchase = composite_purchase(card, e2e_psam(), 100)
    assert purchase.debit is not None and purchase.debit.sw == 0x9000 and purchase.mac2_check == 0x9000


def test_shipped_fixtures() -> None:
    names = sorted(path.name for path in FIXTURES.glob("*.json"))
    assert names == ["blocked-card.json", "demo-card.json", "expired-shanghai.json", "low-balance-student.json",
                     "torn-debit.json"]
    for name in names:
        path = FIXTURES / name
        image = load_image(path)
        assert dumps(image) == path.read_text(encoding="utf-8"), name  # saved by save_fixture, canonical
        assert image.description
        for master in DEMO_MASTERS:
            assert master not in path.read_text()
    blocked = load_fixture(FIXTURES / "blocked-card.json")
    blocked.power_on()
    assert blocked.execute(SELECT_EP) == h("6283")
    low = load_fixture(FIXTURES / "low-balance-student.json")
    low.power_on()
    low.execute(SELECT_EP)
    assert sw(low, cc.InitializeForCappPurchase(1, 100, TERMINAL).to_bytes()) == 0x9401


def test_torn_debit_fixture_is_explained_by_its_proof() -> None:
    card = load_fixture(FIXTURES / "torn-debit.json")
    card.power_on()
    card.execute(SELECT_EP)
    assert card.execute(cc.GetTransactionProve(0x09, 0x37).to_bytes()) == h("CAEC0601 F252E12F 9000")
    tac = purchase_tac(tac_key(card.image.keys[1].tac), 200, 0x09, TERMINAL, 0x57, h("20180313164329"))
    assert tac == h("F252E12F")
    assert card.balance == 9800


# --- validation -------------------------------------------------------------------------------------------------------

def base() -> dict[str, Any]:
    return image_to_dict(used_card().image)


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("/")
    for name in parents:
        data = data[name] if not name.isdigit() or not isinstance(data, list) else data[int(name)]
    if value is _DELETE:
        del data[last]
    elif isinstance(data, list):
        data[int(last)] = value
    else:
        data[last] = value


_DELETE = object()
CASES = [
    ("files", _DELETE, "files: missing"),
    ("balance", 3, "balance: unknown field"),
    ("format", "yikatong-keyset", "format: expected 'yikatong-card', got \"yikatong-keyset\""),
    ("version", 2, "version: version 2 is unknown (this software reads 1)"),
    ("version", "1", "version: version \"1\" is unknown (this software reads 1)"),
    ("description", 5, "description: expected text"),
    ("activation", [], "activation: expected an object"),
    ("activation/uid", "88112233", "activation.uid: UID 88112233: byte 0 is the cascade tag 88"),
    ("activation/uid", "7FZZ3EF7", "activation.uid: 'Z' is not a hex digit"),
    ("activation/uid", 1234, "activation.uid: expected a string of hex digits"),
    ("activation/atqa", "00", "activation.atqa: expected 2 bytes, got 1"),
    ("activation/sak", "2020", "activation.sak: expected 1 byte, got 2"),
    ("activation/ats", "0675", "activation.ats: ATS 0675: TL does not give its length 2"),
    ("activation/atr", "3B00", "activation.atr: unknown field"),
    ("activation/ats", _DELETE, "activation.ats: missing"),
    ("algorithm", "AES", "algorithm: must be one of 3DES, SM4"),
    ("blocked", "yes", "blocked: expected true or false"),
    ("ppse", 1, "ppse: expected true or false"),
    ("purse/balance", "10", "purse.balance: expected a whole number, got \"10\""),
    ("purse/balance", 1.5, "purse.balance: expected a whole number, got 1.5"),
    ("purse/balance", -1, "purse.balance: must be 0 to 2147483647, got -1"),
    ("purse/overdraft_limit", True, "purse.overdraft_limit: expected a whole number, got true"),
    ("purse/overdraft_limit", 1 << 24, "purse.overdraft_limit: must be 0 to 16777215, got 16777216"),
    ("purse/offline_atc", 65536, "purse.offline_atc: must be 0 to 65535, got 65536"),
    ("purse/online_atc", _DELETE, "purse.online_atc: missing"),
    ("passbook/balance", -21, "passbook.balance: must be -20 to 2147483647, got -21"),
    ("passbook", 0, "passbook: expected an object"),
    ("files/15", "02403640FFFFFFFF0201031049915850000113832020010120401231", "files.15: expected 30 bytes, got 28"),
    ("files/15", "02403640FFFFFFFF02010310499158500001138320200101204012310",
     "files.15: odd number of hex digits (57)"),
    ("files/16", "00", "files.16: expected 55 bytes, got 1"),
    ("files/17", None, "files.17: expected a string of hex digits"),
    ("files/18", "00", "files.18: unknown field"),
    ("records/18", "00", "records.18: expected a list of records, newest first"),
    ("records/18", ["00" * 23] * 11, "records.18: at most 10 records, got 11"),
    ("records/18/0", "00" * 22, "records.18[0]: expected 23 bytes, got 22"),
    ("records/1E", ["00" * 48] * 31, "records.1E: at most 30 records, got 31"),
    ("records/1E/0", "00" * 49, "records.1E[0]: expected 48 bytes, got 49"),
    ("records/1A", [], "records.1A: expected an object of records by id"),
    ("records/1A/2", "27027D0101" + "00" * 123, "records.1A.2: expected one byte in two hex digits, e.g. \"01\""),
    ("records/1A/03", "27027D0101" + "00" * 123, "records.1A.03: a record with id 03 starts 27 03, got 2702"),
    ("records/1A/03", "27037D0101" + "00" * 122, "records.1A.03: expected 128 bytes, got 127"),
    ("records/1A/0a", "270A7D0101" + "00" * 123, None),  # fine alone: ids are hex, either case
    ("records/1B", [], "records.1B: unknown field"),
    ("keys", {}, "keys: expected an object with at least one key index"),
    ("keys/01/version", _DELETE, "keys.01.version: missing"),
    ("keys/01/version", "1", "keys.01.version: expected one byte in two hex digits, e.g. \"01\""),
    ("keys/01/version", 1, "keys.01.version: expected one byte in two hex digits, e.g. \"01\""),
    ("keys/01/purchase", "00" * 15, "keys.01.purchase: expected 16 bytes, got 15"),
    ("keys/01/pin", "1234", "keys.01.pin: unknown field"),
    ("keys/1", {"version": "01"}, "keys.1: expected one byte in two hex digits, e.g. \"01\""),
    ("maintenance_key", "00" * 8, "maintenance_key: expected 16 bytes, got 8"),
    ("proofs", [], "proofs: expected an object of proofs by transaction type"),
    ("proofs/09/atc", -1, "proofs.09.atc: must be 0 to 65535, got -1"),
    ("proofs/09/mac2", "CAEC06", "proofs.09.mac2: expected 4 bytes, got 3"),
    ("proofs/09/tac", _DELETE, "proofs.09.tac: missing"),
    ("proofs/X9", {}, "proofs.X9: expected one byte in two hex digits, e.g. \"01\""),
]


@pytest.mark.parametrize("path, value, message", CASES,
                         ids=[f"{c[0]}-{'deleted' if c[1] is _DELETE else repr(c[1])[:20]}" for c in CASES])
def test_every_validation_error_names_the_field(path: str, value: Any, message: str | None) -> None:
    data = base()
    _set(data, path, value if value is _DELETE else copy.deepcopy(value))
    if message is None:
        image_from_dict(data, source="card.json")
        return
    with pytest.raises(FixtureError) as caught:
        image_from_dict(data, source="card.json")
    assert str(caught.value) == f"card.json: {message}"


def test_duplicate_ids_in_either_case() -> None:
    data = base()
    data["records"]["1A"]["0a"] = "270A7D0101" + "00" * 123
    data["records"]["1A"]["0A"] = "270A7D0101" + "00" * 123
    with pytest.raises(FixtureError, match=r"^card.json: records.1A.0A: the same id is given twice$"):
        image_from_dict(data, source="card.json")
    data = base()
    data["keys"]["0a"] = data["keys"]["0A"] = data["keys"]["01"]
    with pytest.raises(FixtureError, match=r"^card.json: keys.0A: the same key index is given twice$"):
        image_from_dict(data, source="card.json")


def test_missing_parts_that_have_defaults() -> None:
    data = base()
    for name in ("description", "blocked", "ppse", "passbook", "maintenance_key", "proofs"):
        del data[name]
    image = image_from_dict(data)
    assert (image.description, image.blocked, image.ppse, image.passbook, image.maintenance_key, image.proofs) == \
        ("", False, False, None, None, {})
    assert sorted(image.process_records) == [1, 2]


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(FixtureError, match=r"^card.json: a card fixture is a JSON object$"):
        loads("[]", source="card.json")


def test_corrupt_json_gives_line_and_column() -> None:
    text = dumps(e2e_card().image)
    broken = text.replace('"algorithm": "3DES",', '"algorithm": "3DES"', 1)
    line = broken[:broken.index('"algorithm"')].count("\n") + 2
    with pytest.raises(FixtureError) as caught:
        loads(broken, source="card.json")
    assert str(caught.value) == f"card.json: not valid JSON at line {line} column 3: Expecting ',' delimiter"
    with pytest.raises(FixtureError, match=r"^card.json: the name 'ppse' appears twice in one object$"):
        loads(text.replace('"ppse": false,', '"ppse": false, "ppse": true,'), source="card.json")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match=r"nope.json: cannot read the fixture \(No such file or directory\)$"):
        load_image(tmp_path / "nope.json")
    (tmp_path / "latin.json").write_bytes(b'{"description": "\xe9"}')
    with pytest.raises(FixtureError, match=r"latin.json: not UTF-8 text$"):
        load_image(tmp_path / "latin.json")


def test_save_is_atomic_and_keeps_the_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "card.json"
    save_fixture(e2e_card(balance=1), path)
    assert path.stat().st_mode & 0o777 == 0o644
    os.chmod(path, 0o600)
    original = path.read_bytes()

    def refuse(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(FixtureError, match=r"card.json: cannot write \(No space left on device\)$"):
        save_fixture(e2e_card(balance=2), path)
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json"]  # no temporary file left
    monkeypatch.undo()
    save_fixture(e2e_card(balance=3), path)
    assert load_image(path).purse.balance == 3 and path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FixtureError, match=r"cannot write next to it"):
        save_fixture(e2e_card(), tmp_path / "missing-dir" / "card.json")
