"""M1 card fixtures and .mfd dumps: save → load → save byte for byte, every rule named when broken; and ``ykt card``
for M1 cards: new, show (text and JSON), export and import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocols.hexutil import parse_hex
from protocols.mifare import CardSize, KeyType
from sim.card.m1_card import M1Card, M1Image
from sim.card.m1_dump import export_mfd, import_mfd
from sim.cli import run
from sim.fixture import (
    FixtureError,
    dumps,
    load_fixture,
    load_image,
    loads,
    save_fixture,
)

from .m1_support import KEYSET, UID, new_m1

H = parse_hex


def fixture_dict(card: M1Card | None = None) -> dict:
    return json.loads(dumps((card or new_m1()).image))


def test_the_fixture_format() -> None:
    data = fixture_dict()
    assert list(data) == ["format", "version", "description", "activation", "blocks"]
    assert (data["format"], data["version"]) == ("yikatong-m1-card", 1)
    assert data["activation"] == {"uid": "40C2AB5C", "atqa": "0004", "sak": "08"}
    assert len(data["blocks"]) == 64 and data["blocks"][9] == "10270000EFD8FFFF1027000009F609F6"
    assert data["blocks"][3] == "A0A1A2A3A4A5787788" + "69E2C2F60F4CF4"  # the card's own keys, as the card holds them


def test_save_load_save_is_byte_for_byte(tmp_path: Path) -> None:
    card = new_m1(size=CardSize.K4, uid=H("04112233445566"))
    card.image.description = "4K, 7-byte UID"
    path = tmp_path / "m1.json"
    save_fixture(card, path)
    loaded = load_fixture(path)
    assert isinstance(loaded, M1Card) and loaded.image == card.image
    first = path.read_bytes()
    save_fixture(loaded, path)
    assert path.read_bytes() == first
    assert json.loads(first)["blocks"][0].startswith("04112233445566")


@pytest.mark.parametrize("change,message", [
    (lambda d: d.update(version=2), "version: version 2 is unknown"),
    (lambda d: d.update(extra=1), "extra: unknown field"),
    (lambda d: d.pop("blocks"), "blocks: missing"),
    (lambda d: d.update(blocks=d["blocks"][:63]), "blocks: expected a list of 64 \\(1K\\) or 256 \\(4K\\) blocks"),
    (lambda d: d["blocks"].__setitem__(7, "00" * 15), "blocks\\[7\\]: expected 16 bytes, got 15"),
    (lambda d: d["blocks"].__setitem__(7, "zz" * 16), "blocks\\[7\\]: 'z' is not a hex digit"),
    (lambda d: d["activation"].update(uid="01020304"), "blocks: block 0: starts 40C2AB5C, not the UID 01020304"),
    (lambda d: d["activation"].update(uid="0102030405"), "activation.uid: UID of 5 bytes"),
    (lambda d: d["activation"].update(sak="18"), "blocks: block 0: SAK 18 does not announce .* 1024 bytes"),
    (lambda d: d["blocks"].__setitem__(0, "40C2AB5C00" + "00" * 11), "blocks: block 0: BCC 00 is not the XOR"),
    (lambda d: d["blocks"].__setitem__(11, "00" * 6 + "FFFFFF" + "00" * 7),
     "blocks: block 11 \\(sector 2 trailer\\): access bits FFFFFF: inverted copies do not match"),
])
def test_broken_fixtures_are_named(change, message: str) -> None:
    data = fixture_dict()
    change(data)
    with pytest.raises(FixtureError, match=f"^m1.json: {message}"):
        loads(json.dumps(data), source="m1.json")


def test_mfd_round_trip_and_refusals() -> None:
    card = new_m1()
    dump = export_mfd(card.image)
    assert len(dump) == 1024 and dump[48:64] == card.image.block(3)
    image = import_mfd(dump)
    assert image == card.image
    with pytest.raises(Exception, match="dump of 1023 bytes is neither"):
        import_mfd(dump[:1023])
    broken = bytearray(dump)
    broken[4] ^= 1
    with pytest.raises(Exception, match="block 0: BCC 74 is not the XOR of UID 40C2AB5C"):
        import_mfd(bytes(broken))
    broken = bytearray(dump)
    broken[5] = 0x18
    with pytest.raises(Exception, match="block 0: SAK 18 does not announce"):
        import_mfd(bytes(broken))
    broken = bytearray(dump)
    broken[27 * 16 + 8] ^= 0x10
    with pytest.raises(Exception, match="block 27 \\(sector 6 trailer\\): access bits 7F0798"):
        import_mfd(bytes(broken))
    four_k = new_m1(size=CardSize.K4)
    assert import_mfd(export_mfd(four_k.image)).sak == 0x18


# --- the CLI -------------------------------------------------------------------------------------------------------

def test_card_new_m1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m1.json"
    assert run(["card", "new", "--kind", "m1", "--serial", "3640000100000042", "--balance", "12345", "--type",
                "student", "--out", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: M1 card 3640000100000042 (UID 40C2AB5C), student, balance 123.45 CNY (12345 fen)\n"
    assert "test-only" in err
    image = load_image(path)
    assert isinstance(image, M1Image)
    assert image.block(4)[13] == 2 and image.block(9)[:4] == (12345).to_bytes(4, "little")
    assert image.block(7)[:6] == KEYSET.m1_sector_key(KeyType.A, UID, 1, 1)
    assert run(["card", "new", "--kind", "m1", "--seed", "9", "--uid", "04112233445566", "--size", "4k", "--out",
                str(tmp_path / "b.json")]) == 0
    four_k = load_image(tmp_path / "b.json")
    assert isinstance(four_k, M1Image) and four_k.size == CardSize.K4 and four_k.uid == H("04112233445566")
    assert run(["card", "new", "--kind", "m1", "--seed", "9", "--uid", "04112233445566", "--size", "4k", "--out",
                str(tmp_path / "c.json")]) == 0
    assert (tmp_path / "b.json").read_bytes() == (tmp_path / "c.json").read_bytes()


@pytest.mark.parametrize("args,message", [
    (["--size", "2k"], "--size: '2k' is not 1k or 4k"),
    (["--uid", "0102"], "--uid: a MIFARE Classic UID is 4 or 7 bytes, got 2"),
    (["--serial", "123"], "--serial: an M1 card number is 16 digits"),
    (["--serial", "36400001000000AB"], "--serial"),
    (["--issuer", "02403640FFFFFFFF"], "--issuer: an M1 card has no issuer ID"),
    (["--balance", "16777216"], "--balance: must be 0 to 16777215"),
])
def test_card_new_m1_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                              message: str) -> None:
    assert run(["card", "new", "--kind", "m1", *args, "--out", str(tmp_path / "x.json")]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"ykt: {message}")
    assert not (tmp_path / "x.json").exists()


def test_m1_options_on_a_cpu_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["card", "new", "--size", "4k", "--out", str(tmp_path / "x.json")]) == 2
    assert capsys.readouterr().err == "ykt: --size: for M1 cards only (--kind m1)\n"


def test_card_show_m1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m1.json"
    save_fixture(new_m1(), path)
    assert run(["card", "show", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["kind"], data["size"], data["uid"], data["card_number"], data["balance"], data["state"],
            data["counter"]) == ("m1", "1K", "40C2AB5C", "3640000100000042", 10000, "clean", 0)
    sectors = data["sectors"]
    assert len(sectors) == 16 and [s["purpose"] for s in sectors[:7]] == [
        "directory", "issuance", "purse", "trip records", "trip records", "trip records", "public info"]
    issuance = sectors[1]["blocks"][0]
    assert issuance == {
        "block": 4, "name": "issuance", "raw": "3640000100000042BE2F4CD502010100", "city": "3640", "industry": "0001",
        "issuer_serial": "00000042", "auth_code": "BE2F4CD5", "enable_flag": 2, "card_type": 1, "key_version": 1,
        "reserved": 0, "card_number": "3640000100000042", "enable_flag_name": "normal", "card_type_name": "normal"}
    purse = sectors[2]["blocks"][1]
    assert (purse["name"], purse["balance"], purse["address"]) == ("purse", 10000, 9)
    assert sectors[2]["trailer"]["data"]["block 9"] == {
        "read": "key A or B", "write": "key B", "increment": "key B", "decrement/transfer/restore": "key A or B"}
    assert sectors[2]["trailer"]["keys"] == "held (not shown)"
    public = sectors[6]["blocks"][0]
    assert (public["valid"], public["record_pointer"], public["process_flag_name"], public["check"]) == (
        True, 8, "no debit under way", "F7")
    assert sectors[5]["blocks"][2]["name"] == "trip record, slot 8 (newest)"
    text = json.dumps(data)
    for sector in range(16):  # no key of the card appears
        assert KEYSET.m1_sector_key(KeyType.B, UID, sector, 1).hex().upper() not in text
    assert run(["card", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  sector 2: purse\n" in out and "      enable_flag_name: normal\n" in out
    assert ("        block 9: read key A or B; write key B; increment key B; decrement/transfer/restore key A or B"
            in out)
    assert "  sector 15: not used by the purse (data blocks all zero)\n" in out


def test_card_show_an_interrupted_debit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from protocols.m1.layout import public_info

    card = new_m1()
    card.image.set_block(24, public_info(0, 1, 0x01))
    path = tmp_path / "m1.json"
    save_fixture(card, path)
    assert run(["card", "show", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["state"], data["balance"], data["state_reason"]) == (
        "damaged", None, "the record in slot 0 is not the interrupted debit's")


def test_card_export_and_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fixture, dump, back = tmp_path / "m1.json", tmp_path / "m1.mfd", tmp_path / "back.json"
    card = new_m1()
    save_fixture(card, fixture)
    assert run(["card", "export", str(fixture), "--mfd", str(dump)]) == 0
    assert capsys.readouterr().out == f"{dump}: 64 blocks of card 40C2AB5C\n"
    assert dump.read_bytes() == bytes(card.image.memory)
    assert run(["card", "import", "--mfd", str(dump), "--out", str(back), "--description", "from a dump"]) == 0
    assert capsys.readouterr().out == f"{back}: MIFARE Classic 1K, UID 40C2AB5C\n"
    imported = load_image(back)
    assert isinstance(imported, M1Image) and imported.memory == card.image.memory
    assert imported.description == "from a dump"


def test_card_export_and_import_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cpu = tmp_path / "cpu.json"
    assert run(["card", "new", "--out", str(cpu)]) == 0
    capsys.readouterr()
    assert run(["card", "export", str(cpu), "--mfd", str(tmp_path / "x.mfd")]) == 2
    assert capsys.readouterr().err == f"ykt: {cpu}: a T-Union CPU card fixture; only M1 cards have a MIFARE dump\n"
    dump = tmp_path / "bad.mfd"
    data = bytearray(new_m1().image.memory)
    data[63 * 16 + 7] ^= 0xFF  # sector 15's trailer: access bits byte 7
    dump.write_bytes(bytes(data))
    assert run(["card", "import", "--mfd", str(dump), "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ykt: {dump}: block 63 (sector 15 trailer): access bits ") and err.count("\n") == 1
    assert run(["card", "import", "--mfd", str(tmp_path / "none.mfd"), "--out", str(tmp_path / "x.json")]) == 2
    assert capsys.readouterr().err.startswith(f"ykt: {tmp_path / 'none.mfd'}: cannot read the dump")
    assert not (tmp_path / "x.json").exists()


def test_a_new_m1_card_is_accepted_by_the_validator_on_its_built_in_settings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An M1 card is valid in its own city only: without --serial, ``ykt card new --kind m1`` issues one of the city
    where ``ykt validate`` stands by default, so the first tap a newcomer tries is accepted."""
    path = tmp_path / "m1.json"
    assert run(["card", "new", "--kind", "m1", "--seed", "1", "--out", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: M1 card 2900")
    assert run(["validate", "--reader", f"sim:{path}", "--sam", "sim:psam", "--journal", str(tmp_path / "v.db"),
                "--taps", "1"]) == 0
    assert "  accepted  " in capsys.readouterr().out
