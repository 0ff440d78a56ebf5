"""``ykt card new`` and ``ykt card show``: fixtures written as asked, deterministic for a seed, every file decoded, JSON
for programs, and bad input as one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocols.card_files import MANAGEMENT_INFO
from protocols.hexutil import parse_hex as h
from sim.cli import run
from sim.fixture import load_image

FIXTURES = Path(__file__).resolve().parents[2] / "sim" / "fixtures"
KEYSET = {"format": "yikatong-keyset", "version": 1, "test_only": False, "algorithm": "3DES",
          "diversification_levels": 2,
          "master_keys": {"purchase": {"01": "0123456789ABCDEFFEDCBA9876543210"},
                          "tac": {"01": "00112233445566778899AABBCCDDEEFF"}}}


def test_new_with_a_seed_is_deterministic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["card", "new", "--seed", "5", "--out", str(tmp_path / "a.json")]) == 0
    out, err = capsys.readouterr()
    assert err == "note: the demo key set is test-only; this card is for simulation only\n"
    image = load_image(tmp_path / "a.json")
    number = image.public_info[10:20].hex()[1:]
    assert out == (f"{tmp_path / 'a.json'}: card {number} of issuer 02403640FFFFFFFF, normal, "
                   "balance 50.00 CNY (5000 fen)\n")
    assert image.purse.balance == 5000 and image.public_info[:8] == h("02403640FFFFFFFF")
    assert run(["card", "new", "--seed", "5", "--out", str(tmp_path / "b.json")]) == 0
    assert run(["card", "new", "--seed", "6", "--out", str(tmp_path / "c.json")]) == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "a.json").read_bytes() != (tmp_path / "c.json").read_bytes()


def test_new_with_every_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(KEYSET))
    path = tmp_path / "card.json"
    assert run(["card", "new", "--balance", "250", "--type", "elderly", "--keys", str(keys), "--serial",
                "3104991585000011383", "--issuer", "02002900 FFFFFFFF", "--description", "gate test",
                "--out", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # not a test-only key set: no note
    assert out == f"{path}: card 3104991585000011383 of issuer 02002900FFFFFFFF, elderly, balance 2.50 CNY (250 fen)\n"
    image = load_image(path)
    assert image.public_info[:8] == h("02002900FFFFFFFF") and image.public_info[10:20] == h("03104991585000011383")
    assert MANAGEMENT_INFO.parse(image.management).card_type == 3
    assert image.description == "gate test" and image.maintenance_key is None and image.keys[1].load is None
    for master in KEYSET["master_keys"].values():
        assert master["01"] not in path.read_text()


@pytest.mark.parametrize("args, message", [
    (["--balance", "x"], "--balance: 'x' is not a whole number"),
    (["--balance", "-5"], "--balance: must be 0 to 2147483647, got -5"),
    (["--type", "vip"], "--type: 'vip' is not one of normal, student, elderly, test, military"),
    (["--seed", "-1"], "--seed: must be 0 to 18446744073709551615, got -1"),
    (["--serial", "123"], "serial '123': 3 digits, expected 20 (or 19 without the leading 0)"),
    (["--issuer", "zz"], "--issuer: 'z' is not a hex digit"),
    (["--issuer", "0102"], "--issuer: 8 bytes (16 hex digits), got 2"),
    (["--keys", "{dir}/none.json"], "{dir}/none.json: cannot read the key set (No such file or directory)"),
    (["--out", "{dir}/no/card.json"], "{dir}/no/card.json: cannot write next to it (No such file or directory)"),
    ([], "--out: the fixture file to write is required"),
])
def test_new_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                   message: str) -> None:
    filled = [arg.format(dir=tmp_path) for arg in args]
    if "--out" not in filled and args:
        filled += ["--out", str(tmp_path / "card.json")]
    assert run(["card", "new", *filled]) == 2
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if not line.startswith("note:")]
    assert lines == [f"ykt: {message.format(dir=tmp_path)}"]
    assert not (tmp_path / "card.json").exists()


def test_show_decodes_every_file(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "torn-debit.json"
    assert run(["card", "show", str(path)]) == 0
    out = capsys.readouterr().out
    for line in ("  serial: 03104991585000011383", "  balance: 98.00 CNY (9800 fen)", "  blocked: no",
                 "  file 15, public application info:", "    start_date: 2020-01-01",
                 "  file 17, management info:", "    card_type_name: normal",
                 "  file 18, transaction log (newest first):", "      transaction_type_name: composite_purchase",
                 "      amount: 2.00 CNY (200 fen)", "      date: 2018-03-13", "      time: 16:43:29",
                 "  file 1A, process records (by id):", "      trade_state_name: boarded/entered",
                 "  file 1E, transit records (newest first):", "      transaction_time: 2025-01-14T14:29:37",
                 "  transaction proofs (by type):", "      mac2: CAEC0601"):
        assert line + "\n" in out, line
    image = load_image(path)
    assert image.keys[1].purchase.export().hex().upper() not in out  # keys are never shown


def test_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["card", "show", str(FIXTURES / "torn-debit.json"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["balance"] == 9800 and data["serial"] == "03104991585000011383"
    assert data["card_number"] == "3104991585000011383"
    assert data["public_info"]["start_date"] == "2020-01-01" and data["public_info"]["expiry_date"] == "2040-12-31"
    assert data["transaction_log"] == [{
        "atc": 0x36, "overdraft_limit": 0, "amount": 200, "transaction_type": 9,
        "transaction_type_name": "composite_purchase", "terminal_number": "200041599997", "date": "2018-03-13",
        "time": "16:43:29"}]
    assert data["transit_log"][0]["transaction_time"] == "2025-01-14T14:29:37"
    assert data["process_records"]["02"]["boarding_time"] == "2020-12-28T21:45:11"
    assert data["record_counts"] == {"18": 1, "1A": 2, "1E": 1}
    assert data["keys"] == {"01": {"version": "01", "usages": ["purchase", "load", "tac"]}}
    assert data["proofs"] == {"09": {"atc": 0x37, "mac2": "CAEC0601", "tac": "F252E12F"}}


def test_show_limits_records_and_reports_undecodable_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads((FIXTURES / "torn-debit.json").read_text())
    data["records"]["18"] = [data["records"]["18"][0]] * 3 + ["FF" * 23]
    data["files"]["15"] = data["files"]["15"][:40] + "FFFFFFFF" + data["files"]["15"][48:]  # start date not BCD
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(data))
    assert run(["card", "show", str(path), "--json", "--records", "2"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert len(view["transaction_log"]) == 2 and view["record_counts"]["18"] == 4
    assert view["public_info"]["start_date"] == "FFFFFFFF"  # shown raw, and said why
    assert view["public_info"]["warnings"] == [
        "start_date: FFFFFFFF does not decode (date: FFFFFFFF is not packed BCD); shown raw"]
    assert view["public_info"]["expiry_date"] == "2040-12-31" and view["serial"] == "03104991585000011383"
    assert run(["card", "show", str(path), "--records", "4"]) == 0
    shown = capsys.readouterr().out
    assert "    warning: start_date: FFFFFFFF does not decode (date: FFFFFFFF is not packed BCD); shown raw\n" in shown
    assert "      warning: transaction_type FF: not a known code (shown raw)\n" in shown


@pytest.mark.parametrize("args, message", [
    (["{dir}/none.json"], "{dir}/none.json: cannot read the fixture (No such file or directory)"),
    (["{dir}/bad.json"], "{dir}/bad.json: not valid JSON at line 1 column 2: Expecting property name enclosed in "
                         "double quotes"),
    ([str(FIXTURES / "demo-card.json"), "--records", "x"], "--records: 'x' is not a whole number"),
])
def test_show_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                    message: str) -> None:
    (tmp_path / "bad.json").write_text("{,}")
    assert run(["card", "show", *(a.format(dir=tmp_path) for a in args)]) == 2
    assert capsys.readouterr().err == f"ykt: {message.format(dir=tmp_path)}\n"
