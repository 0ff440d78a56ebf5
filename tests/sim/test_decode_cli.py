"""``ykt decode``: exact output for spec messages, JSON types, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest

from sim.cli import run

FCI = "6F318408A000000632010105A5259F0801029F0C1E02002900FFFFFFFF02010310477004006744280220200115204012310114"


def ykt(capsys, *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_command_by_name(capsys):
    code, out, err = ykt(capsys, "decode", "apdu", "805003020B0100000064200041599997", "0F")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "command: InitializeForCappPurchase", "cla: 80", "ins: 50", "p1: 03", "p2: 02", "case: 4", "extended: False",
        "fields:", "  key_index: 1", "  amount: 100", "  terminal_number: 200041599997", "  purse: EP", "  le: 15"]


def test_debit_json(capsys):
    code, out, _ = ykt(capsys, "decode", "apdu", "805401000F00000001201202291351 00F15CAB7508", "--json")
    assert code == 0
    assert json.loads(out) == {
        "command": "DebitForPurchase", "cla": "80", "ins": "54", "p1": "01", "p2": "00", "case": 4, "extended": False,
        "fields": {"tsn": 1, "when": "2012-02-29T13:51:00", "mac1": "F15CAB75", "le": 8}}


def test_psam_command(capsys):
    code, out, _ = ykt(capsys, "decode", "apdu", "8072000004CAEC0601", "--json")
    assert code == 0
    assert json.loads(out)["command"] == "CreditSamForPurchase"
    assert json.loads(out)["fields"] == {"mac": "CAEC0601"}


def test_unknown_command_is_shown_not_refused(capsys):
    code, out, _ = ykt(capsys, "decode", "apdu", "00CA9F7F00", "--json")
    assert code == 0
    decoded = json.loads(out)
    assert decoded["command"] == "unknown"
    assert decoded["fields"]["le"] == 256


def test_response(capsys):
    code, out, _ = ykt(capsys, "decode", "response", "9401", "--json")
    assert code == 0
    assert json.loads(out) == {"data": "", "sw": "9401", "meaning": "insufficient balance"}


def test_fci_json(capsys):
    code, out, _ = ykt(capsys, "decode", "fci", FCI, "--json")
    assert code == 0
    assert json.loads(out) == {
        "df_name": "A000000632010105", "label": None, "priority": None, "version": "02", "preferred_name": None,
        "file15": {"issuer_id": "02002900FFFFFFFF", "city_code": "2900", "app_type": 2, "app_version": 1,
                   "serial": "03104770040067442802", "card_number": "3104770040067442802",
                   "start_date": "2020-01-15", "expiry_date": "2040-12-31", "issuer_defined": "0114"}}


def test_transit_record_with_names(capsys):
    record = "03 0000000279001102 04 0000 0000 0000 15 00000000 0000224A 20250114142937 5840 12215840FFFFFFFF 000000000000"
    code, out, _ = ykt(capsys, "decode", "file:1e", record, "--json")
    assert code == 0
    decoded = json.loads(out)
    assert decoded["record_type"] == 3 and decoded["record_type_name"] == "entry"
    assert decoded["balance"] == 0x224A and decoded["transaction_time"] == "2025-01-14T14:29:37"
    assert decoded["acceptor_institution"] == "12215840FFFFFFFF"


def test_pn532_frames(capsys):
    code, out, _ = ykt(capsys, "decode", "pn532", "0000FF00FF00")
    assert (code, out) == (0, "frame: ACK\n")
    code, out, _ = ykt(capsys, "decode", "pn532", "0000FF11EFD54B0101000420041020304005787780703200", "--json")
    decoded = json.loads(out)
    assert (code, decoded["direction"], decoded["name"]) == (0, "chip to host", "InListPassiveTarget response")
    target = decoded["fields"]["targets"][0]
    assert (target["uid"], target["sak"], target["ats"]) == ("10203040", 0x20, "0578778070")


@pytest.mark.parametrize("argv,message", [
    (("apdu", "00A4"), "ykt: not a valid apdu: command APDU of 2 bytes is shorter than its 4-byte header\n"),
    (("file:15", "zz"), "ykt: file:15: 'z' is not a hex digit\n"),
    (("file:17", "00"), "ykt: not a valid file:17: ManagementInfo: expected 60 bytes, got 1\n"),
    (("pn532", "0000FF04FCD44A0100E200"), "ykt: not a valid pn532: PN532 frame: bad data checksum (DCS)\n"),
    (("response", "90"), "ykt: not a valid response: response APDU of 1 bytes has no status word\n"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = ykt(capsys, "decode", *argv)
    assert (code, out, err) == (2, "", message)


def test_unknown_kind_is_a_usage_error(capsys):
    code, _, err = ykt(capsys, "decode", "file:99", "00")
    assert code == 2
    assert "Invalid value for 'WHAT'" in err
