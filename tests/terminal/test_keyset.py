"""Key sets: the file format's checks (each naming the field, never showing a key) and the keys they derive."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from protocols.crypto import Algorithm, TdesKey, diversify, serial_factor
from terminal.errors import ConfigError
from terminal.keyset import Keyset, KeyUsage, load_keyset, parse_keyset

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "sim" / "keys" / "demo-keyset.json"
ISSUER = bytes.fromhex("02403640FFFFFFFF")
SERIAL = bytes.fromhex("03104991585000011383")
MPK = "00112233445566778899AABBCCDDEEFF"
MTK = "FFEEDDCCBBAA99887766554433221100"
DAMK = "404142434445464748494A4B4C4D4E4F"
SECRET = "0123456789ABCDEFFEDCBA9876543210"


def good() -> dict[str, Any]:
    return {"format": "yikatong-keyset", "version": 1, "test_only": True, "description": "unit test",
            "algorithm": "3DES", "diversification_levels": 2,
            "master_keys": {"purchase": {"01": MPK, "02": SECRET}, "tac": {"01": MTK}, "damk": {"01": DAMK}}}


def test_demo_keyset_is_marked_test_only_and_holds_the_spec_masters() -> None:
    raw = json.loads(DEMO.read_text())
    assert raw["test_only"] is True and "TEST ONLY" in raw["description"]
    keyset = load_keyset(DEMO)
    assert keyset.test_only and keyset.algorithm is Algorithm.TDES and keyset.levels == 2
    assert keyset.master(KeyUsage.PURCHASE, 1).export() == bytes.fromhex(MPK)
    assert keyset.master(KeyUsage.TAC, 1).export() == bytes.fromhex(MTK)
    assert keyset.master(KeyUsage.MAINTENANCE, 1).export() == bytes.fromhex(DAMK)
    assert len(keyset.master(KeyUsage.LOAD, 1).export()) == 16
    assert [keyset.indexes(u) for u in KeyUsage] == [(1,)] * 8  # four CPU masters, four M1 masters


def test_two_level_card_keys_match_the_spec_example() -> None:
    keyset = load_keyset(DEMO)
    dpk = keyset.card_key(KeyUsage.PURCHASE, 1, issuer_id=ISSUER, card_serial=SERIAL)
    dtk = keyset.card_key(KeyUsage.TAC, 1, issuer_id=ISSUER, card_serial=SERIAL)
    assert dpk.export() == bytes.fromhex("1EA06A5CD2621CFB23F65172C5C2A893")
    assert dtk.export() == bytes.fromhex("2917830D4877A288623E37D2B382009D")
    # a second card of the same issuer reuses the issuer-level key and still gets its own key
    other = keyset.card_key(KeyUsage.PURCHASE, 1, issuer_id=ISSUER, card_serial=bytes.fromhex("03104991585000011384"))
    assert other.export() != dpk.export()
    assert other.export() == diversify(TdesKey(bytes.fromhex(MPK)), bytes.fromhex("4991585000011384"), ISSUER).export()


def test_one_level_card_keys_use_the_serial_only() -> None:
    data = good() | {"diversification_levels": 1}
    keyset = parse_keyset(data)
    dpk = keyset.card_key(KeyUsage.PURCHASE, 1, issuer_id=ISSUER, card_serial=SERIAL)
    assert dpk.export() == diversify(TdesKey(bytes.fromhex(MPK)), serial_factor(SERIAL)).export()


def test_sm4_key_set() -> None:
    keyset = parse_keyset(good() | {"algorithm": "SM4"})
    assert keyset.algorithm is Algorithm.SM4
    assert len(keyset.card_key(KeyUsage.TAC, 1, issuer_id=ISSUER, card_serial=SERIAL).export()) == 16


def test_missing_key_is_a_config_error() -> None:
    keyset = parse_keyset(good())
    with pytest.raises(ConfigError, match="the key set has no load key with version/index 01"):
        keyset.master(KeyUsage.LOAD, 1)
    with pytest.raises(ConfigError, match="no purchase key with version/index 03"):
        keyset.card_key(KeyUsage.PURCHASE, 3, issuer_id=ISSUER, card_serial=SERIAL)


def test_repr_never_shows_a_key() -> None:
    keyset = parse_keyset(good())
    text = repr(keyset) + str(keyset)
    assert text == "Keyset(3DES, 2 level(s), keys: damk 01, purchase 01, purchase 02, tac 01, test only)" * 2
    for key in (MPK, MTK, DAMK, SECRET):
        assert key not in text.upper() and key.lower() not in text


def _mutate(path: str, value: Any) -> dict[str, Any]:
    """A copy of the good key set with the field at dotted ``path`` set to ``value`` (``...`` deletes it)."""
    data = copy.deepcopy(good())
    *parents, last = path.split(".")
    node = data
    for name in parents:
        node = node[name]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


BAD = [
    ("format", ..., "format: missing"),
    ("master_keys", ..., "master_keys: missing"),
    ("test_only", ..., "test_only: missing"),
    ("extra", 1, "extra: unknown field"),
    ("format", "keyset", "format: must be 'yikatong-keyset'"),
    ("version", 2, "version: version 2 is unknown \\(this software reads 1\\)"),
    ("version", "1", "version: version '1' is unknown"),
    ("test_only", "yes", "test_only: must be true or false"),
    ("description", 5, "description: must be text"),
    ("algorithm", "DES", "algorithm: must be one of 3DES, SM4"),
    ("diversification_levels", 3, "diversification_levels: must be 1 or 2"),
    ("diversification_levels", True, "diversification_levels: must be 1 or 2"),
    ("master_keys", {}, "master_keys: must be an object with at least one usage"),
    ("master_keys.mac", {"01": MPK},
     "master_keys.mac: unknown usage \\(known: purchase, load, tac, damk, m1_key_a, m1_key_b, m1_auth, m1_tac\\)"),
    ("master_keys.tac", {}, "master_keys.tac: must map key versions/indexes to keys"),
    ("master_keys.tac", {"1": MTK}, "master_keys.tac.1: a key version/index is two hex digits"),
    ("master_keys.tac", {"0x": MTK}, "master_keys.tac.0x: a key version/index is two hex digits"),
    ("master_keys.tac", {"0a": MTK, "0A": MTK}, "master_keys.tac.0A: the same key version/index is given twice"),
    ("master_keys.tac.01", 5, "master_keys.tac.01: a key is a string of hex digits"),
    ("master_keys.tac.01", MTK[:30], "master_keys.tac.01: a key is 32 hex digits \\(16 bytes\\), got 30 characters"),
    ("master_keys.tac.01", MTK[:31] + "G", "master_keys.tac.01: a key is hex digits only"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[m for _, _, m in BAD])
def test_bad_fields_are_named_and_keys_never_shown(tmp_path: Path, path: str, value: Any, message: str) -> None:
    file = tmp_path / "keys.json"
    file.write_text(json.dumps(_mutate(path, value)))
    with pytest.raises(ConfigError, match=f"^{file}: {message}") as err:
        load_keyset(file)
    for key in (MPK, MTK, DAMK, SECRET, MTK[:30], MTK[:31] + "G"):
        assert key not in str(err.value)


def test_not_json_and_not_an_object(tmp_path: Path) -> None:
    file = tmp_path / "keys.json"
    file.write_text('{"format": "yikatong-keyset",\n  "version": }')
    with pytest.raises(ConfigError, match=f"^{file}: not valid JSON at line 2 column 14: Expecting value$"):
        load_keyset(file)
    file.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0\)$"):
        load_keyset(file)
    file.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="a key set is a JSON object"):
        load_keyset(file)


def test_repeated_names_would_drop_a_key(tmp_path: Path) -> None:
    file = tmp_path / "keys.json"
    text = json.dumps(good()).replace(f'"01": "{MTK}"', f'"01": "{MTK}", "01": "{SECRET}"')
    file.write_text(text)
    with pytest.raises(ConfigError, match="the name '01' appears twice in one object") as err:
        load_keyset(file)
    assert SECRET not in str(err.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the key set \\(No such file or directory\\)"):
        load_keyset(tmp_path / "absent.json")


def test_constructor_checks_levels_and_key_lengths() -> None:
    with pytest.raises(ConfigError, match="diversification levels must be 1 or 2, got 3"):
        Keyset(algorithm=Algorithm.TDES, levels=3, keys={}, test_only=True)
    with pytest.raises(ConfigError, match=r"^master key tac 01: must be 16 bytes$"):
        Keyset(algorithm=Algorithm.TDES, levels=2, keys={(KeyUsage.TAC, 1): bytes(8)}, test_only=True)


# --- M1 masters and the key rule ------------------------------------------------------------------------------------

M1_A, M1_B = "0123456789ABCDEFFEDCBA9876543210", "FEDCBA98765432100123456789ABCDEF"
UID = bytes.fromhex("40C2AB5C")


def m1_set(rule: Any = None, **extra: dict[str, str]) -> Keyset:
    data = good()
    data["master_keys"].update({"m1_key_a": {"01": M1_A, "02": MPK}, "m1_key_b": {"01": M1_B}, **extra})
    if rule is not None:
        data["m1_key_rule"] = rule
    return parse_keyset(data, source="keys.json")


def test_m1_sector_keys_follow_the_rule() -> None:
    from protocols.mifare import KeyType

    keyset = m1_set()
    master = TdesKey(bytes.fromhex(M1_A))
    assert keyset.m1_sector_key(KeyType.A, UID, 2, 1) == master.encrypt(UID + b"\x02" + bytes(3))[:6]
    assert keyset.m1_sector_key(KeyType.A, UID, 2, 2) == TdesKey(bytes.fromhex(MPK)).encrypt(UID + b"\x02\0\0\0")[:6]
    assert keyset.m1_sector_key(KeyType.A, UID, 1, 2) == master.encrypt(UID + b"\x01" + bytes(3))[:6]  # issuance: 01
    assert keyset.m1_sector_key(KeyType.A, UID, 0, 2) == bytes.fromhex("A0A1A2A3A4A5")
    with pytest.raises(ConfigError, match="no m1_key_b key with version/index 02"):
        keyset.m1_sector_key(KeyType.B, UID, 2, 2)
    ruled = m1_set({"issuance_version": "02", "constant": "ABCDEF"})
    assert ruled.m1_sector_key(KeyType.A, UID, 1, 1) == TdesKey(bytes.fromhex(MPK)).encrypt(
        UID + bytes.fromhex("01ABCDEF"))[:6]


def test_m1_card_keys_are_one_level_by_card_number() -> None:
    keyset = m1_set(m1_tac={"01": SECRET})
    card = bytes.fromhex("3640000100000042")
    assert keyset.m1_card_key(KeyUsage.M1_TAC, 1, card).export() == diversify(TdesKey(bytes.fromhex(SECRET)),
                                                                               card).export()


@pytest.mark.parametrize("rule,message", [
    ("01", "m1_key_rule: must be an object"),
    ({"issuance": "01"}, "m1_key_rule.issuance: unknown field"),
    ({"issuance_version": "1"}, "m1_key_rule.issuance_version: must be 2 hex digits"),
    ({"constant": "0000"}, "m1_key_rule.constant: must be 6 hex digits"),
    ({"constant": 0}, "m1_key_rule.constant: must be 6 hex digits"),
])
def test_bad_m1_rules_are_named(rule: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^keys.json: {message}"):
        m1_set(rule)
