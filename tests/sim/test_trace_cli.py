"""``ykt trace show`` (every command and answer by name), ``ykt trace export`` (ISO 14443 frames in pcap/pcapng), and
``--trace`` on ``validate``, ``demo`` and ``tap``."""

from __future__ import annotations

import datetime as dt
import json
import struct
from pathlib import Path

import pytest

from protocols.iso14443 import crc_a
from sim.cli import run
from sim.pcap import BlockFramer, trace_packets
from terminal.link import Activation
from terminal.tracefile import parse_trace, read_trace

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "sim" / "fixtures"
AT = "2026-03-02 08:00:00"
HEADER = ('{"format": "yikatong-trace", "version": 1, "created": "2026-03-02T00:30:00+00:00", "tool": "test", '
          '"links": [{"name": "reader", "role": "card"}, {"name": "psam", "role": "sam"}]}')
ACTIVATION = ('{"event": "activation", "link": "reader", "t_ns": 500, "activation": {"protocol": "T=CL", '
              '"uid": "737C3EF7", "atqa": "0004", "sak": 32, "ats": "0575777002", "atr": null}}')
SELECT = ('{"event": "exchange", "link": "reader", "t_ns": 1000, "duration_ns": 250, '
          '"command": "00A4040008A000000632010105", "response": "9000"}')
CREATED_NS = int(dt.datetime(2026, 3, 2, 0, 30, tzinfo=dt.UTC).timestamp()) * 1_000_000_000


def tap_trace(tmp_path: Path, fixture: str = "demo-card.json", name: str = "t.jsonl") -> Path:
    path = tmp_path / name
    assert run(["tap", "--card", str(FIXTURES / fixture), "--at", AT, "--trace", str(path), "--json"]) == 0
    return path


def shown(capsys, path: Path) -> dict:
    capsys.readouterr()
    assert run(["trace", "show", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# --- trace show ----------------------------------------------------------------------------------------------------

def test_show_names_every_command_and_decodes_the_answers(tmp_path, capsys):
    doc = shown(capsys, tap_trace(tmp_path))
    assert doc["trace"]["tool"].startswith("ykt tap (yikatong ") and doc["trace"]["validator_settings_recorded"]
    exchanges = [e for e in doc["events"] if e["event"] == "exchange"]
    assert [(e["number"], e["link"], e["command"]["name"]) for e in exchanges] == [
        (1, "psam", "READ BINARY 0x16"), (2, "psam", "SELECT 8011"), (3, "psam", "GET RESPONSE"),
        (4, "psam", "READ BINARY 0x17"), (5, "reader", "SELECT A000000632010105"), (6, "reader", "READ BINARY 0x17"),
        (7, "reader", "INITIALIZE FOR CAPP PURCHASE"), (8, "psam", "INIT SAM FOR PURCHASE"),
        (9, "psam", "GET RESPONSE"), (10, "reader", "UPDATE CAPP DATA CACHE 0x1E"),
        (11, "reader", "DEBIT FOR PURCHASE"),
        (12, "psam", "CREDIT SAM FOR PURCHASE")]
    by = {e["number"]: e for e in exchanges}
    assert by[1]["response"]["decoded"] == {"terminal_number": "200041599997"}
    assert by[4]["response"]["decoded"] == {"key_index": 1}
    assert (by[2]["response"]["sw"], by[2]["response"]["meaning"]) == \
        ("6106", "6 response bytes available (GET RESPONSE)")
    file15 = by[5]["response"]["decoded"]["file15"]
    assert file15["serial"] == "03104991585000011383" and file15["expiry_date"] == "2040-12-31"
    assert by[6]["response"]["decoded"]["card_type_name"] == "normal"
    init = by[7]["response"]["decoded"]
    assert (init["balance"], init["offline_atc"], init["key_version"]) == (10000, 0, 1)
    assert (by[7]["command"]["fields"]["amount"], by[7]["command"]["fields"]["terminal_number"]) == \
        (200, "200041599997")
    sam = by[8]["command"]["fields"]
    assert (sam["random"], sam["amount"], sam["when"], sam["transaction_type"]) == \
        (init["random"], 200, "2026-03-02T08:00:00", 9)
    assert by[8]["response"]["sw"] == "6108" and "decoded" not in by[8]["response"]
    tsn_mac1 = by[9]["response"]["decoded"]  # GET RESPONSE brings 8070's answer: decoded as TSN and MAC1
    debit = by[11]["command"]["fields"]
    assert (debit["tsn"], debit["mac1"], debit["when"]) == (tsn_mac1["tsn"], tsn_mac1["mac1"], "2026-03-02T08:00:00")
    record = by[10]["command"]["data_decoded"]
    assert (record["record_type_name"], record["amount"], record["balance"]) == ("single_fare", 200, 9800)
    proof = by[11]["response"]["decoded"]
    assert set(proof) == {"tac", "mac2"} and by[12]["command"]["fields"]["mac"] == proof["mac2"]
    assert by[12]["response"] == {"apdu": "9000", "data": "", "sw": "9000", "meaning": "success"}
    activations = [e for e in doc["events"] if e["event"] == "activation"]
    assert [(a["link"], a["activation"]["protocol"], a["clock"]) for a in activations] == [
        ("psam", "T=0", "2026-03-02T08:00:00"), ("reader", "T=CL", "2026-03-02T08:00:00")]
    assert all(e["model"]["line_us"] > 0 for e in exchanges)


def test_show_as_text(tmp_path, capsys):
    path = tap_trace(tmp_path, "low-balance-student.json")
    capsys.readouterr()
    assert run(["trace", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: made " in out and "links reader (card), psam (PSAM); validator settings recorded" in out
    assert "reader: card activated, T=CL, uid " in out and "validator clock 2026-03-02 08:00:00" in out
    assert "#7 reader: INITIALIZE FOR CAPP PURCHASE  (took " in out and "modeled air 2.344 ms, card 1.000 ms)" in out
    assert "< 9401 (insufficient balance)" in out
    assert "#8 reader: GET BALANCE" in out and "balance: 50" in out


def test_show_failed_unknown_and_cut_exchanges(tmp_path, capsys):
    path = tmp_path / "t.jsonl"
    failed = SELECT.replace('"9000"', 'null').replace("}", ', "error": "CardRemoved: reader: the card left"}')
    odd = SELECT.replace("00A4040008A000000632010105", "FFFF0000").replace('"9000"', '"6D00"')
    path.write_text("\n".join((HEADER, ACTIVATION, failed, odd, SELECT[:20])), encoding="utf-8")
    assert run(["trace", "show", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "#1 reader: SELECT A000000632010105  (took 0.000 ms)\n" in out
    assert "< no answer: CardRemoved: reader: the card left" in out
    assert "#2 reader: FFFF (unknown command)" in out and "< 6D00 (instruction code not supported)" in out
    assert "note: not a known card or PSAM command" in out
    assert "the last line was cut short" in err


def test_show_refuses_a_bad_trace(tmp_path, capsys):
    path = tmp_path / "t.jsonl"
    path.write_text(HEADER + "\n" + SELECT.replace('"reader"', '"nfc"') + "\n", encoding="utf-8")
    assert run(["trace", "show", str(path)]) == 2
    assert capsys.readouterr().err == f"ykt: {path}: line 2: link: 'nfc' is not one of the header's links " \
                                      f"(reader, psam)\n"


# --- --trace on the commands that run a validator -------------------------------------------------------------------

def test_validate_writes_a_trace(tmp_path, capsys):
    path = tmp_path / "v.jsonl"
    assert run(["validate", "--reader", f"sim:{FIXTURES / 'demo-card.json'}", "--sam", "sim:psam", "--journal",
                str(tmp_path / "v.db"), "--taps", "2", "--trace", str(path), "--json"]) == 0
    trace = read_trace(path)
    card_link = f"sim:{FIXTURES / 'demo-card.json'}"
    assert [(link.name, link.role) for link in trace.header.links] == [(card_link, "card"), ("sim:psam", "sam")]
    assert trace.header.tool.startswith("ykt validate (yikatong ") and trace.header.validator is not None
    assert sum(1 for e in trace.events if getattr(e, "link", None) == card_link and not hasattr(e, "command")) == 2
    debits = [e for e in trace.exchanges(card_link) if e.command[:2] == b"\x80\x54"]
    assert len(debits) == 1  # the second tap is a repeat within 60 s: declined before any debit
    assert run(["validate", "--reader", "sim:random", "--sam", "sim:psam", "--journal", str(tmp_path / "v.db"),
                "--trace", str(path)]) == 2
    assert "exists; a trace is never overwritten" in capsys.readouterr().err


def test_demo_writes_a_trace(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    assert run(["demo", "--taps", "20", "--journal", str(tmp_path / "d.db"), "--trace", str(path), "--json"]) == 0
    trace = read_trace(path)
    assert [(link.name, link.role) for link in trace.header.links] == [("reader", "card"), ("sam", "sam")]
    activations = [e for e in trace.events if not hasattr(e, "command") and e.link == "reader"]
    assert len(activations) >= 20
    assert activations[0].clock is not None and activations[0].clock >= dt.datetime(2026, 3, 2, 7, 30)
    assert "[place]\ncity_code = \"3640\"" in trace.header.validator.config


# --- trace export ---------------------------------------------------------------------------------------------------

def pcap_records(data: bytes) -> tuple[tuple, list[tuple[int, int, bytes]]]:
    header = struct.unpack("<IHHiIII", data[:24])
    records, offset = [], 24
    while offset < len(data):
        seconds, nanos, caught, length = struct.unpack("<IIII", data[offset:offset + 16])
        assert caught == length
        records.append((seconds, nanos, data[offset + 16:offset + 16 + caught]))
        offset += 16 + caught
    return header, records


def test_export_pcap_bytes(tmp_path, capsys):
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join((HEADER, ACTIVATION, SELECT)) + "\n", encoding="utf-8")
    capture = tmp_path / "t.pcap"
    assert run(["trace", "export", str(trace), "--pcap", str(capture)]) == 0
    assert capsys.readouterr().out == (f"wrote 11 packets to {capture} (pcap, LINKTYPE_ISO_14443); decode the APDUs "
                                       f"with: tshark -r {capture} -d iso14443.subdissector,iso7816\n")
    header, records = pcap_records(capture.read_bytes())
    assert header == (0xA1B23C4D, 2, 4, 0, 0, 65535, 264)
    uid = bytes.fromhex("737C3EF7")
    bcc = bytes((0x73 ^ 0x7C ^ 0x3E ^ 0xF7,))
    select = bytes.fromhex("00A4040008A000000632010105")

    def crc(frame: bytes) -> bytes:
        return frame + crc_a(frame)

    expected = [
        (500, "FC", b""), (500, "FE", b"\x26"), (500, "FF", bytes.fromhex("0004")), (500, "FE", b"\x93\x20"),
        (500, "FF", uid + bcc), (500, "FE", crc(b"\x93\x70" + uid + bcc)), (500, "FF", crc(b"\x20")),
        (500, "FE", bytes.fromhex("E0803173")), (500, "FF", crc(bytes.fromhex("0575777002"))),
        (1000, "FE", crc(b"\x02" + select)), (1250, "FF", crc(b"\x02\x90\x00"))]
    assert [(s * 1_000_000_000 + n - CREATED_NS, r) for s, n, r in records] == [
        (at, bytes((0, int(event, 16))) + struct.pack(">H", len(frame)) + frame) for at, event, frame in expected]


def test_block_framing_chains_for_the_card_and_the_reader():
    """FSC 16 (ATS T0 70: FSCI 0): a 20-byte command in two I-blocks, the card's R(ACK) between; a 300-byte answer
    in two I-blocks for FSD 256, the reader's R(ACK) between; block numbers toggling as ISO 14443-4 asks, across
    exchanges."""
    framer = BlockFramer(Activation("T=CL", ats=bytes.fromhex("0570777002")))
    assert framer.fsc == 16
    command, answer = bytes(range(20)), bytes(range(256)) + bytes(42) + b"\x90\x00"
    sent, received = framer.exchange(command, answer)

    def crc(frame: bytes) -> bytes:
        return frame + crc_a(frame)

    assert sent == [(0xFE, crc(b"\x12" + command[:13])), (0xFF, crc(b"\xa2")), (0xFE, crc(b"\x03" + command[13:]))]
    assert received == [(0xFF, crc(b"\x13" + answer[:253])), (0xFE, crc(b"\xa2")), (0xFF, crc(b"\x02" + answer[253:]))]
    sent, received = framer.exchange(b"\x00\xb0\x95\x00\x1e", None)
    assert sent == [(0xFE, crc(b"\x03\x00\xb0\x95\x00\x1e"))] and received == []
    sent, received = framer.exchange(b"\x00\xb0\x95\x00\x1e", b"\x90\x00")
    assert sent[0][1][0] == 0x02 and received == [(0xFF, crc(b"\x02\x90\x00"))]


def test_export_pcapng_names_each_link(tmp_path, capsys):
    capture = tmp_path / "t.pcapng"
    path = tap_trace(tmp_path)
    assert run(["trace", "export", str(path), "--pcap", str(capture)]) == 0
    data = capture.read_bytes()
    blocks, offset = [], 0
    while offset < len(data):
        kind, length = struct.unpack("<II", data[offset:offset + 8])
        assert struct.unpack("<I", data[offset + length - 4:offset + length])[0] == length and length % 4 == 0
        blocks.append((kind, data[offset + 8:offset + length - 4]))
        offset += length
    assert [kind for kind, _ in blocks[:2]] == [0x0A0D0D0A, 1]
    assert blocks[0][1][:4] == struct.pack("<I", 0x1A2B3C4D) and b"ykt tap (yikatong" in blocks[0][1]
    linktype, _, snaplen = struct.unpack("<HHI", blocks[1][1][:8])
    assert (linktype, snaplen) == (264, 65535)
    assert blocks[1][1][8:20] == struct.pack("<HH", 2, 6) + b"reader\0\0" and b"\x09\x00\x01\x00\x09" in blocks[1][1]
    packets = [body for kind, body in blocks[2:]]
    assert all(kind == 6 for kind, _ in blocks[2:]) and len(packets) == len(trace_packets(read_trace(path),
                                                                                        ["reader"]))
    interface, high, low, caught, length = struct.unpack("<IIIII", packets[0][:20])
    created = read_trace(path).header.created
    assert interface == 0 and caught == length == 4 and packets[0][20:24] == b"\x00\xfc\x00\x00"
    assert ((high << 32) | low) // 1000 >= int(created.timestamp() * 1_000_000) - 1


@pytest.mark.parametrize("args, message", [
    (["--link", "psam"], "ykt: link 'psam' reaches a sam: only contactless card links have an ISO 14443 capture\n"),
    (["--link", "nfc"], "ykt: the trace has no link named 'nfc'\n"),
])
def test_export_refuses_links_it_cannot_describe(tmp_path, capsys, args, message):
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join((HEADER, ACTIVATION, SELECT)) + "\n", encoding="utf-8")
    assert run(["trace", "export", str(trace), "--pcap", str(tmp_path / "t.pcap"), *args]) == 2
    assert capsys.readouterr().err == message


def test_export_classic_pcap_holds_one_link(tmp_path):
    from sim.pcap import CaptureError, export_capture

    trace = parse_trace(HEADER.replace('"role": "sam"', '"role": "card"') + "\n" + ACTIVATION + "\n", "t")
    with pytest.raises(CaptureError, match="a pcap file holds one link, and 2 were chosen"):
        export_capture(trace, tmp_path / "t.pcap")
    assert export_capture(trace, tmp_path / "t.pcapng") == 9  # field on, 8 activation frames
