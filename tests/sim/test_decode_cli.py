"""``ykt decode``: exact output for spec messages and for bytes real cards sent, JSON types, and one-line errors with
exit code 2.

Real answers come from public sources, each named where it is used:

* TUM: T-Union Master's card-format notes (tkerby/flipperzero-firmware-wPlugins, docs/card_data_format.md): what a
  Beijing T-Union card answered to GET BALANCE and to READ RECORD of 0x18 and 0x1E;
* NFSEE: nfsee's reader mock (nfcim/nfsee, assets/reader-mock.js), answers of real cards it plays back;
* TRIP: Trip Reader's card emulator (domosekai/cardemulator, HCEService.kt), the answers of real cards of several
  schemes it plays back to card readers, records of real rides among them;
* NFCDEMO: an iOS NFC demo's NFCCommandManager.swift, which keeps a T-Union card's whole SELECT answer in a comment;
* SH: the Shanghai T-Union SELECT answer of the spec (§1.1), from a public validator's unit test;
* BLOG-P, BLOG-L: the published purchase and load traces of the spec (§3.5).
"""

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


def test_an_m1_cards_pseudo_apdus_by_name(capsys):
    code, out, err = ykt(capsys, "decode", "apdu", "FFD700090502000000C8")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "command: ValueBlockOperation"
    assert out.splitlines()[-3:] == ["  block: 9", "  operation: 2", "  value: 200"]  # DECREMENT 9 by 200 fen
    code, out, _ = ykt(capsys, "decode", "apdu", "FF82000006A0A1A2A3A4A5", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["command"] == "LoadKey" and "key" not in doc["fields"]  # a log never shows the key


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
    code, out, _ = ykt(capsys, "decode", "fci", FCI, "--json")  # SH
    assert code == 0
    assert json.loads(out) == {
        "df_name": "A000000632010105", "scheme": "T-Union purse 交通联合", "label": None, "priority": None,
        "version": "02", "preferred_name": None,
        "file15": {"issuer_id": "02002900FFFFFFFF", "city_code": "2900", "app_type": 2, "app_version": 1,
                   "serial": "03104770040067442802", "card_number": "3104770040067442802",
                   "start_date": "2020-01-15", "expiry_date": "2040-12-31", "issuer_defined": "0114"}}


def test_transit_record_with_names(capsys):
    record = ("03 0000000279001102 04 0000 0000 0000 15 00000000 0000224A 20250114142937 5840 12215840FFFFFFFF "
              "000000000000")
    code, out, _ = ykt(capsys, "decode", "file:1e", record, "--json")
    assert code == 0
    decoded = json.loads(out)
    assert decoded["record_type"] == 3 and decoded["record_type_name"] == "entry/board"
    assert decoded["industry_code"] == 4 and decoded["industry_code_name"] is None  # the gate test tool's own code
    assert decoded["warnings"] == ["industry_code 04: not a known code (shown raw)"]
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
    (("fci", "6F0384"), "ykt: not a valid fci: TLV 6F at offset 0: 3 bytes of value run past the end (1 left)\n"),
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


# --- decoding as captured: real answers ------------------------------------------------------------------------------

NFCDEMO_FCI = ("6F508408A000000632010105A54450084D4F545F545F45508701029F0801029F120F4341524420494D414745203030"
               "30319F0C1E02403640FFFFFFFF020103104991585000011383202107262025093085009000")
TUM_18 = "042D000000000001F409300089000340202412291417409000"
TUM_1E = ("04" "0000300089000340" "01" "08001900300000" "000001F4" "00000E01" "20241229141740" "1000"
          "01011000FFFFFFFF" "000000000000" "9000")


def decoded(capsys, *argv: str) -> dict:
    code, out, err = ykt(capsys, "decode", *argv, "--json")
    assert (code, err) == (0, ""), err
    return json.loads(out)


def test_a_captured_fci_with_its_status_word_and_its_text_fields(capsys):
    fci = decoded(capsys, "fci", NFCDEMO_FCI)  # NFCDEMO
    assert (fci["sw"], fci["meaning"]) == ("9000", "success")
    assert (fci["label"], fci["preferred_name"], fci["priority"]) == ("MOT_T_EP", "CARD IMAGE 0001", 2)
    assert fci["file15"]["card_number"] == "3104991585000011383" and fci["file15"]["expiry_date"] == "2025-09-30"
    assert "warnings" not in fci and "warnings" not in fci["file15"]
    assert decoded(capsys, "fci", FCI + "9000")["file15"]["serial"] == "03104770040067442802"  # SH


def test_a_select_answer_is_recognised_by_itself(capsys):
    response = decoded(capsys, "response", NFCDEMO_FCI)  # NFCDEMO: no --command needed
    assert response["sw"] == "9000" and response["decoded"]["label"] == "MOT_T_EP"


def test_records_with_their_status_word(capsys):
    log = decoded(capsys, "file:18", TUM_18)  # TUM: a 5.00 CNY composite purchase at a Beijing metro terminal
    assert (log["sw"], log["atc"], log["amount"], log["transaction_type_name"]) == \
        ("9000", 0x042D, 500, "composite_purchase")
    assert (log["terminal_number"], log["date"], log["time"]) == ("300089000340", "2024-12-29", "14:17:40")
    transit = decoded(capsys, "file:1e", TUM_1E)  # TUM: the same ride's 0x1E record, a metro exit
    assert (transit["record_type_name"], transit["industry_code_name"]) == ("exit/alight", "metro")
    assert (transit["amount"], transit["balance"], transit["place"]) == (500, 3585, "08001900300000")
    assert (transit["acceptor_city"], transit["acceptor_institution"]) == ("1000", "01011000FFFFFFFF")
    assert "warnings" not in transit


@pytest.mark.parametrize("command, answer, expected", [
    ("805C000204", "00000AC39000", {"balance": 2755}),  # TUM
    ("00B201C400", TUM_18, {"atc": 0x042D, "transaction_type_name": "composite_purchase"}),  # TUM
    ("00B201F400", TUM_1E, {"record_type_name": "exit/alight", "industry_code_name": "metro"}),  # TUM
    ("805001020B01000010000011223344550F", "000000000000000000010011223344 9000",  # BLOG-P
     {"balance": 0, "offline_atc": 0, "key_version": 1, "random": "11223344"}),
    ("805000010B0100001000001122334455 10", "00000000 0000 02 00 11223344 2988AE5A 9000",  # BLOG-L
     {"online_atc": 0, "key_version": 2, "mac1": "2988AE5A"}),
    ("00A4040008A000000632010105", NFCDEMO_FCI, {"label": "MOT_T_EP"}),  # NFCDEMO
])
def test_a_response_decoded_by_the_command_it_answers(capsys, command, answer, expected):
    response = decoded(capsys, "response", answer, "--command", command)
    assert response["sw"] == "9000"
    assert {key: response["decoded"][key] for key in expected} == expected


def test_an_error_answer_is_not_decoded_as_data(capsys):
    response = decoded(capsys, "response", "6A83", "--command", "00B20BC400")
    assert response == {"data": "", "sw": "6A83", "meaning": "record not found"}


def test_reads_of_another_length_are_decoded_as_far_as_they_go(capsys):
    # nfsee reads 11 bytes of 0x17 (00B097000B); TRIP's Beijing T-Union card answers so.
    management = decoded(capsys, "file:17", "0000015610001000000101 9000")
    assert (management["city_code"], management["interop_class"], management["card_type_name"]) == \
        ("1000", 1, "normal")
    assert management["warnings"] == [
        "file 0x17 (management info): 11 of its 60 bytes; not in the data: settlement_number, rfu"]
    assert "settlement_number" not in management  # never a guess
    # NFSEE: a Shenzhen Tong card's 28-byte 0x15; TRIP: its FCI carries 32.
    szt = decoded(capsys, "file:15", "0000000000000000FD21000051800000A344C21320170314202703149000",
                  "--scheme", "shenzhen-tong")
    assert (szt["printed_number"], szt["start_date"], szt["expiry_date"]) == ("331498659(2)", "2017-03-14",
                                                                             "2027-03-14")
    assert szt["warnings"] == ["file 0x15: 28 of its 32 bytes; not in the data: unknown_tail"]
    # NFSEE: a Chongqing MOHURD card's 9F0C is 32 bytes, and its layout is not the MOHURD one
    cq = decoded(capsys, "fci", "6F348409A00000000386980701A5279F0801999F0C2000014000201412032099123100000000000000"
                                "000000000000000000000000009000")
    assert cq["scheme"] == "MOHURD city card 住建部城市一卡通" and cq["file15"]["extra"] == "0000"
    assert cq["file15"]["warnings"][0] == "9F0C (file 0x15): 2 bytes beyond its 30, shown raw as extra"
    assert cq["file15"]["warnings"][1].startswith("city 4000 (Chongqing): nfsee reads these cards' dates")
    # a 0x18 record cut short: the fields inside it, the one it ends in raw, the rest named
    cut = decoded(capsys, "file:18", TUM_18[:26], "--no-sw")
    assert (cut["atc"], cut["amount"], cut["transaction_type"], cut["terminal_number"]) == \
        (0x042D, 500, 9, "300089")
    assert cut["warnings"] == [
        "file 0x18 record (transaction log): 13 of its 23 bytes; not in the data: terminal_number, date, time",
        "terminal_number: the data ends inside it; its 3 bytes shown raw"]


def test_balance_and_initialize_answers_have_kinds(capsys):
    balance = decoded(capsys, "balance", "8000164E9000")  # NFSEE: every mock card's balance, top bit set
    assert (balance["balance"], balance["balance_without_top_bit"]) == (0x8000164E, 5710)
    assert balance["warnings"] == [("balance 8000164E has its top bit set: some schemes use it as a flag and their "
                                    "readers show the other 31 bits, 5710 fen")]
    # TRIP (a comment in the emulator): a card's INITIALIZE FOR PURCHASE answer
    init = decoded(capsys, "init-purchase", "00000B2200020000000100E9F0DEEA9000")
    assert (init["balance"], init["offline_atc"], init["key_version"], init["random"]) == (2850, 2, 1, "E9F0DEEA")
    load = decoded(capsys, "init-load", "0000000000000200112233442988AE5A")  # BLOG-L, without its status word
    assert (load["online_atc"], load["mac1"]) == (0, "2988AE5A") and "sw" not in load


@pytest.mark.parametrize("record, record_type, industry, flagged", [
    # TRIP, rides recorded by Trip Reader's author: a Yueyang bus (type 02 with a 4.00 fare: a single ride, no load)
    ("0200004131061023040240550000000000000001900000044C20190810135400557003935570FFFFFFFF000000000000",
     "single_ride", "bus", []),
    # a Shanghai metro exit, line 18
    ("0400000000182115030100180021000000000001900000085C20201227140456290012002900FFFFFFFF000000000000",
     "exit/alight", "metro", []),
    # a Guangzhou metro fare adjustment (补票): type 08 has no public meaning
    ("0830500000014004130100080021000000000000000000044C19900301190734581012205810FFFFFFFF000000000000",
     None, "metro", ["record_type 08: not a known code (shown raw)"]),
    # a Nanjing supermarket: industry FF
    ("060000000005380171FF08910171000100000012C00000000020200121110637301010083010FFFFFFFF000000000000",
     "single_fare", None, ["industry_code FF: not a known code (shown raw)"]),
])
def test_transit_codes_named_from_real_records(capsys, record, record_type, industry, flagged):
    decoded_record = decoded(capsys, "file:1e", record)
    assert (decoded_record["record_type_name"], decoded_record["industry_code_name"]) == (record_type, industry)
    assert decoded_record.get("warnings", []) == flagged


def test_other_schemes_are_named_and_never_read_with_the_t_union_layout(capsys):
    # TRIP: a Hangzhou MOHURD card; the T-Union layout would give card number 1003100000151073028
    hz = decoded(capsys, "fci", "6F2E8409A00000000386980701A5219F0C1E8475310000000000000031003100000151073028201912"
                                "252069122500009000")
    assert hz["scheme"] == "MOHURD city card 住建部城市一卡通"
    assert (hz["file15"]["card_number"], hz["file15"]["city_code"], hz["file15"]["expiry_date"]) == \
        ("3100000151073028", "3100", "2069-12-25")
    assert "serial" not in hz["file15"]
    # TRIP: Shenzhen Tong
    szt = decoded(capsys, "fci", "6F3284075041592E535A54A5279F0801029F0C200000000000000000FD44000051800000E63C1D2920"
                                 "17120120271201101000009000")
    assert (szt["df_name_text"], szt["scheme"], szt["file15"]["printed_number"]) == \
        ("PAY.SZT", "Shenzhen Tong 深圳通", "689781990(3)")
    # TRIP: Lingnan Pass names itself; its 9F0C has no public layout, so it is shown raw with the scheme named
    yct = decoded(capsys, "fci", "6F3484085041592E5449434CA5289F0801029F0C21FFFFFFFFFFFFFFFF00000000000000000000000000"
                                 "0000002019120700000186A09000")
    assert yct["scheme"] == "Lingnan Pass 岭南通" and yct["discretionary_data"].startswith("FFFFFFFFFFFFFFFF")
    assert yct["warnings"] == ["9F0C: no public layout for Lingnan Pass 岭南通; shown raw"]
    # TRIP: a T-Union card's PPSE lists its cash application and its purse, labels as text
    ppse = decoded(capsys, "fci", "6F49840E325041592E5359532E4444463031A537BF0C3461194F08A000000632010106500A4D4F545F"
                                  "545F4341534887010161174F08A00000063201010550084D4F545F545F45508701029000")
    assert [(e["label"], e["scheme"], e["priority"]) for e in ppse["directory"]] == [
        ("MOT_T_CASH", "T-Union cash application", 1), ("MOT_T_EP", "T-Union purse 交通联合", 2)]
    # an application no public source names: said so, 9F0C raw
    unknown = decoded(capsys, "fci", "6F168407A0000001234567A50B9F0C08010203040506070890 00")
    assert unknown["scheme"] is None and unknown["discretionary_data"] == "0102030405060708"
    assert unknown["warnings"][0].startswith("DF name A0000001234567: no public source names this application")


def test_no_sw_decodes_every_byte(capsys):
    raw = "02002900FFFFFFFF0201031047700400674428022020011520401231"  # SH's 0x15 without its last 2 bytes
    assert decoded(capsys, "file:15", raw + "0114")["issuer_defined"] == "0114"  # 30 bytes: no status word
    short = decoded(capsys, "file:15", raw[:48] + "9000")  # 24 bytes read, and the status word
    assert short["sw"] == "9000" and short["warnings"] == [
        "file 0x15: 24 of its 30 bytes; not in the data: expiry_date, issuer_defined"]
    as_data = decoded(capsys, "file:15", raw[:48] + "9000", "--no-sw")  # the same bytes, all of them data
    assert "sw" not in as_data and as_data["warnings"] == [
        "file 0x15: 26 of its 30 bytes; not in the data: expiry_date, issuer_defined",
        "expiry_date: the data ends inside it; its 2 bytes shown raw"]


def test_command_goes_with_response_only(capsys):
    code, _, err = ykt(capsys, "decode", "fci", FCI, "--command", "00A4040008A000000632010105")
    assert code == 2 and "--command goes with 'response' only" in err


def test_trace_show_reads_files_in_the_selected_applications_layout():
    """After a SELECT, files are decoded with that application's scheme; after an application nobody names, raw."""
    from protocols.hexutil import parse_hex
    from sim.cli.trace import decode_exchange
    from terminal.trace import Exchange

    def exchanges(*pairs: tuple[str, str]) -> list[dict]:
        waiting: dict = {}
        selected: dict = {}
        return [decode_exchange(Exchange("reader", parse_hex(c), parse_hex(r), 0, 0), "card", n, waiting, selected)
                for n, (c, r) in enumerate(pairs, 1)]

    szt_15 = "0000000000000000FD21000051800000A344C21320170314202703149000"  # NFSEE
    shown = exchanges(("00A404000E325041592E5359532E444446303100", "6A82"),
                      ("00A40400075041592E535A54", "6F0984075041592E535A549000"),  # a bare SZT FCI
                      ("00B095001C", szt_15))
    assert shown[2]["response"]["decoded"]["printed_number"] == "331498659(2)"
    unnamed = exchanges(("00A4040007A0000001234567", "6F098407A00000012345679000"), ("00B095001C", szt_15))
    assert unnamed[1]["response"]["decoded"] == {
        "raw": parse_hex(szt_15[:-4]),
        "warnings": ["file 0x15: no public layout for an application no public source names; shown raw"]}
